package checker

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/buytracker/buytracker/test/chaos/history"
)

// TestCheckerScalesToLongHistories checks a valid history of 20,000
// operations by 16 concurrent clients, with unanswered and refused buys, and
// logs how long porcupine took (not asserted: the machine is shared).
func TestCheckerScalesToLongHistories(t *testing.T) {
	if testing.Short() {
		t.Skip("long history")
	}
	h := synthesize(1, 16, 20000)
	start := time.Now()
	r := Check(h.ops, h.exports, Options{Timeout: 5 * time.Minute})
	t.Logf("20,000-op history checked in %v (porcupine %v): %s", time.Since(start).Round(time.Millisecond), r.CheckDuration.Round(time.Millisecond), r.Summary())
	if !r.OK() {
		t.Fatalf("a valid synthetic history was rejected: %s\n%v", r.Summary(), r.Anomalies)
	}
	if r.UnknownHappened == 0 || r.UnknownDropped == 0 || r.Failed == 0 || r.Replays == 0 {
		t.Fatalf("the synthetic history lacks a kind of operation: %s", r.Summary())
	}
	start = time.Now()
	r = Check(h.ops, nil, Options{Timeout: 5 * time.Minute})
	t.Logf("without exports (unanswered buys may or may not have happened): %v, porcupine %s", time.Since(start).Round(time.Millisecond), r.Linearizable)
	if !r.OK() {
		t.Fatalf("the valid history without exports was rejected: %v", r.Anomalies)
	}
}

func BenchmarkCheck20000Ops(b *testing.B) {
	h := synthesize(1, 16, 20000)
	for b.Loop() {
		if r := Check(h.ops, h.exports, Options{}); !r.OK() {
			b.Fatal(r.Anomalies)
		}
	}
}

// TestAStaleReadAtTheEndOfALongHistoryIsRejectedQuickly: the read bounds
// name it and keep it out of the search, which would otherwise try every
// other order of 20,000 operations before giving up.
func TestAStaleReadAtTheEndOfALongHistoryIsRejectedQuickly(t *testing.T) {
	if testing.Short() {
		t.Skip("long history")
	}
	h := synthesize(2, 16, 20000)
	ops := append([]history.Op(nil), h.ops...)
	last := ops[len(ops)-1]
	ops = append(ops, history.Op{Client: 16, Kind: history.KindRead, Node: "http://n1", Consistency: "lease",
		Call: last.Call + time.Second, Return: last.Call + 2*time.Second, Outcome: history.OK, ReadBuys: 5, ReadAmountCents: 500})
	start := time.Now()
	r := Check(ops, h.exports, Options{Timeout: 5 * time.Minute})
	t.Logf("checked in %v: %s", time.Since(start).Round(time.Millisecond), r.Summary())
	if r.Linearizable != porcupine.Illegal || len(r.Anomalies) != 1 || !strings.Contains(r.Anomalies[0], "stale read: op 20000") {
		t.Fatalf("verdict %s, anomalies %q", r.Linearizable, r.Anomalies)
	}
}
