package checker

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Report is what Check found.
type Report struct {
	Ops     int
	Buys    int // buy operations (not replays)
	Acked   int // answered 201, including buys answered while settling
	Failed  int // definitely not recorded (every attempt 503/507 or never sent)
	Unknown int // never answered
	// AckedAfterRetry counts acknowledged buys that needed more than one
	// attempt; AckedAsReplay those answered as a replay (an earlier attempt
	// whose answer was lost had recorded the purchase).
	AckedAfterRetry, AckedAsReplay int
	Replays                        int // replay operations answered
	Reads                          int // reads answered 200
	// ReadsByConsistency counts answered reads per consistency level.
	ReadsByConsistency map[string]int
	FailedReads        int
	// UnknownHappened and UnknownDropped split the unknown buys by whether
	// the exports hold their keys: the ones held took effect at their
	// exported id, the others did not take effect at all.
	UnknownHappened, UnknownDropped int
	// FinalPurchases is the number of purchases in the exports (the first
	// member's, by id); FinalChecked says whether exports were given.
	FinalPurchases int
	FinalChecked   bool
	// Linearizable is porcupine's verdict on the buys and reads.
	Linearizable  porcupine.CheckResult
	CheckDuration time.Duration
	// Visualization is the HTML file written when porcupine rejected the
	// history ("" when none was written).
	Visualization string
	Anomalies     []string
}

// OK reports whether the history passed every check.
func (r Report) OK() bool { return len(r.Anomalies) == 0 && r.Linearizable == porcupine.Ok }

// Summary is one line of figures for logs.
func (r Report) Summary() string {
	levels := make([]string, 0, len(r.ReadsByConsistency))
	for c, n := range r.ReadsByConsistency {
		levels = append(levels, fmt.Sprintf("%s %d", c, n))
	}
	sort.Strings(levels)
	return fmt.Sprintf("%d ops: %d buys (%d acknowledged, %d of them after retries, %d answered as replays of a lost answer; %d failed, %d unknown: %d took effect, %d did not), %d replays, %d reads (%s), %d failed reads, %d purchases exported; porcupine %s in %v; %d anomalies",
		r.Ops, r.Buys, r.Acked, r.AckedAfterRetry, r.AckedAsReplay, r.Failed, r.Unknown, r.UnknownHappened, r.UnknownDropped, r.Replays, r.Reads,
		strings.Join(levels, ", "), r.FailedReads, r.FinalPurchases, r.Linearizable, r.CheckDuration.Round(time.Millisecond), len(r.Anomalies))
}

// anomalyList keeps the first few anomalies of each kind, so that one
// systematic fault does not bury the others under thousands of lines.
type anomalyList struct {
	list    []string
	perKind map[string]int
}

const anomaliesPerKind = 20

func (a *anomalyList) add(kind, format string, args ...any) {
	if a.perKind == nil {
		a.perKind = map[string]int{}
	}
	a.perKind[kind]++
	if a.perKind[kind] <= anomaliesPerKind {
		a.list = append(a.list, kind+": "+fmt.Sprintf(format, args...))
	}
}

func (a *anomalyList) done() []string {
	kinds := make([]string, 0, len(a.perKind))
	for k, n := range a.perKind {
		if n > anomaliesPerKind {
			kinds = append(kinds, k)
		}
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		a.list = append(a.list, fmt.Sprintf("%s: %d more not listed", k, a.perKind[k]-anomaliesPerKind))
	}
	return a.list
}
