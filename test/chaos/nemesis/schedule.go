// Package nemesis plans and injects the faults of the chaos suite: a seeded
// schedule (Plan) that is the same for the same seed, and a Runner that
// applies each step to a cluster of node processes in network namespaces
// and heals it.
//
// A step names its targets by role ("the leader", "a follower"), as Jepsen's
// nemeses do: roles are resolved when the step runs, so a replayed seed
// injects the same faults in the same order with the same holds, on
// whichever node holds the role then.
package nemesis

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"
)

// Kind is a class of fault.
type Kind string

// The fault classes.
const (
	// PartitionLeaderMinority cuts the leader (with one follower in a
	// five-member cluster) off from the majority, both ways.
	PartitionLeaderMinority Kind = "partition-leader-minority"
	// PartitionLeaderMajority cuts one follower off; the leader keeps its
	// majority.
	PartitionLeaderMajority Kind = "partition-leader-majority"
	// OneWayFromLeader drops the leader's packets to every other member;
	// their packets still reach it.
	OneWayFromLeader Kind = "one-way-from-leader"
	// OneWayToLeader drops every other member's packets to the leader.
	OneWayToLeader Kind = "one-way-to-leader"
	// Bridge splits the members into two halves that share one member,
	// which alone sees both.
	Bridge Kind = "bridge"
	// Flapping cuts and restores a random member's links over and over.
	Flapping Kind = "flapping"
	// PauseLeader and PauseFollower stop a process with SIGSTOP for the
	// hold, then SIGCONT: its sockets stay open, its timers stall.
	PauseLeader   Kind = "pause-leader"
	PauseFollower Kind = "pause-follower"
	// KillLeader and KillFollower SIGKILL a process and restart it after
	// the hold, on the same data dir.
	KillLeader   Kind = "kill-leader"
	KillFollower Kind = "kill-follower"
	// LoseDataDir SIGKILLs a member, deletes its data dir (a lost volume)
	// and starts it again empty.
	LoseDataDir Kind = "lose-data-dir"
	// ClockSkew shifts members' wall clocks through the test clock hook
	// (never the machine's clock), some past the allowed skew.
	ClockSkew Kind = "clock-skew"
	// DiskWriteErrors and DiskFsyncErrors make a member's Raft log store
	// fail its writes (before writing, or after, as a failed fsync).
	DiskWriteErrors Kind = "disk-write-errors"
	DiskFsyncErrors Kind = "disk-fsync-errors"
	// DiskSlowApply makes a member's ledger wait 2 s before each batch it
	// applies (a slow records disk): its state lags its commit index.
	DiskSlowApply Kind = "disk-slow-apply"
	// DiskFull fills a member's data file system to the last byte.
	DiskFull Kind = "disk-full"
	// MembershipChange adds the spare (it joins as a non-voter and is
	// promoted) or removes it, while one follower is partitioned off.
	MembershipChange Kind = "membership-change"
	// SnapshotDuringPartition partitions a follower off, makes every
	// member snapshot and compact its log, then heals: the follower
	// catches up from a snapshot.
	SnapshotDuringPartition Kind = "snapshot-during-partition"
	// Compound injects a network fault and, while it holds, a fault of a
	// process, a clock or a disk (Step.Parts): a leader killed inside a
	// partition, a follower paused across a bridge, a slow disk behind a
	// one-way link.
	Compound Kind = "compound"
)

// compoundNetwork and compoundNode are what a Compound step combines.
var (
	compoundNetwork = []Kind{PartitionLeaderMinority, PartitionLeaderMajority, OneWayFromLeader, OneWayToLeader, Bridge}
	compoundNode    = []Kind{PauseLeader, PauseFollower, KillLeader, KillFollower, ClockSkew, DiskFsyncErrors, DiskSlowApply, DiskFull}
)

// AllKinds is every fault class, in a fixed order.
var AllKinds = []Kind{
	PartitionLeaderMinority, PartitionLeaderMajority, OneWayFromLeader, OneWayToLeader,
	Bridge, Flapping, PauseLeader, PauseFollower, KillLeader, KillFollower, LoseDataDir,
	ClockSkew, DiskWriteErrors, DiskFsyncErrors, DiskSlowApply, DiskFull, MembershipChange, SnapshotDuringPartition,
	Compound,
}

// ParseKinds reads a comma-separated list of kinds; empty means all.
func ParseKinds(list string) ([]Kind, error) {
	if strings.TrimSpace(list) == "" {
		return AllKinds, nil
	}
	known := map[Kind]bool{}
	for _, k := range AllKinds {
		known[k] = true
	}
	var out []Kind
	for _, part := range strings.Split(list, ",") {
		k := Kind(strings.TrimSpace(part))
		if !known[k] {
			return nil, fmt.Errorf("unknown fault kind %q (known: %v)", k, AllKinds)
		}
		out = append(out, k)
	}
	return out, nil
}

// Step is one planned fault.
type Step struct {
	N    int  `json:"n"`
	Kind Kind `json:"kind"`
	// Pick chooses among the candidates for the role when the step runs
	// (index modulo their number), so the choice is seeded too.
	Pick int `json:"pick"`
	// Hold is how long the fault lasts; Gap is the calm after it heals.
	Hold time.Duration `json:"hold"`
	Gap  time.Duration `json:"gap"`
	// ClockOffsets are the clock shifts of a ClockSkew step, one per
	// member in id order (zero: unchanged).
	ClockOffsets []time.Duration `json:"clock_offsets,omitempty"`
	// Parts are a Compound step's network fault and node fault, applied in
	// that order and healed in the reverse.
	Parts []Kind `json:"parts,omitempty"`
}

func (s Step) String() string {
	extra := ""
	if len(s.Parts) > 0 {
		extra += fmt.Sprintf(" parts=%v", s.Parts)
	}
	if len(s.ClockOffsets) > 0 {
		extra += fmt.Sprintf(" offsets=%v", s.ClockOffsets)
	}
	return fmt.Sprintf("#%d %s pick=%d hold=%v gap=%v%s", s.N, s.Kind, s.Pick, s.Hold, s.Gap, extra)
}

// Schedule is the seeded plan of a run.
type Schedule struct {
	Seed  uint64 `json:"seed"`
	Steps []Step `json:"steps"`
}

// Timing bounds the holds and gaps a plan draws from.
type Timing struct {
	MinHold, MaxHold time.Duration
	MinGap, MaxGap   time.Duration
}

// DefaultTiming holds a fault for 1 to 4 s (longer than the nodes'
// election timeout, so leaders really change) with 0.5 to 2 s between.
var DefaultTiming = Timing{MinHold: time.Second, MaxHold: 4 * time.Second, MinGap: 500 * time.Millisecond, MaxGap: 2 * time.Second}

// Plan draws n steps from kinds with a generator seeded by seed. Every kind
// appears at least once when n allows (the first len(kinds) steps are a
// shuffled round of all of them), so a short run still covers each class.
func Plan(seed uint64, n int, kinds []Kind, members int, timing Timing) Schedule {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := Schedule{Seed: seed}
	round := append([]Kind(nil), kinds...)
	rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
	for i := range n {
		kind := kinds[rng.IntN(len(kinds))]
		if i < len(round) {
			kind = round[i]
		}
		step := Step{
			N: i + 1, Kind: kind, Pick: rng.IntN(1 << 16),
			Hold: between(rng, timing.MinHold, timing.MaxHold),
			Gap:  between(rng, timing.MinGap, timing.MaxGap),
		}
		if kind == Compound {
			step.Parts = []Kind{compoundNetwork[rng.IntN(len(compoundNetwork))], compoundNode[rng.IntN(len(compoundNode))]}
		}
		if kind == ClockSkew || (kind == Compound && step.Parts[1] == ClockSkew) {
			step.ClockOffsets = clockOffsets(rng, members)
		}
		s.Steps = append(s.Steps, step)
	}
	return s
}

// clockOffsets shifts one or two members' clocks: small shifts the
// cluster must absorb, and large ones (past the default --max-clock-skew of
// 1 s) a leader must refuse to stamp with.
func clockOffsets(rng *rand.Rand, members int) []time.Duration {
	choices := []time.Duration{
		-30 * time.Second, -3 * time.Second, -1500 * time.Millisecond, -400 * time.Millisecond,
		300 * time.Millisecond, 900 * time.Millisecond, 2 * time.Second, 45 * time.Second,
	}
	out := make([]time.Duration, members)
	for range 1 + rng.IntN(2) {
		out[rng.IntN(members)] = choices[rng.IntN(len(choices))]
	}
	return out
}

func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	// Rounded to 10 ms so that the printed plan reads well.
	d := lo + time.Duration(rng.Int64N(int64(hi-lo)))
	return d.Round(10 * time.Millisecond)
}

// Counts is how many steps of each kind a schedule (or a run) has.
func Counts(steps []Step) map[Kind]int {
	out := map[Kind]int{}
	for _, s := range steps {
		out[s.Kind]++
	}
	return out
}

// WriteJSON writes the schedule to path.
func (s Schedule) WriteJSON(path string) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode schedule: %w", err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return fmt.Errorf("write schedule: %w", err)
	}
	return nil
}
