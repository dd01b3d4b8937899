package clustertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Disk faults of issue 12: one node's Raft log store fails its writes for a
// few seconds (node/testhook: "write" fails before writing, "fsync" after the
// entries reached bbolt) under acknowledging writers, then heals. Nothing
// acknowledged may be lost, no node may exit, and every node must end with
// the same exact counts under a leader.

// diskFaultHold is how long a fault lasts at least.
const diskFaultHold = 3 * time.Second

func TestDiskFault(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     string
		onLeader bool
		// crash kills the faulty node before its disk heals: it restarts
		// with whatever its failed writes left on disk.
		crash bool
	}{
		{"WriteOnLeader", "write", true, false},
		{"FsyncOnLeader", "fsync", true, false},
		{"FsyncOnLeaderThenCrash", "fsync", true, true},
		{"FsyncOnFollower", "fsync", false, false},
		{"WriteOnFollower", "write", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) { testDiskFault(t, tc.mode, tc.onLeader, tc.crash) })
	}
}

func testDiskFault(t *testing.T, mode string, onLeader, crash bool) {
	c := Start(t, 3)
	leader := c.WaitLeader(30 * time.Second)
	faulty := leader
	if !onLeader {
		faulty = c.Followers(leader)[0]
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	w := startAckingWriters(ctx, c, "disk-"+mode, 4)
	w.awaitMore(100, 20*time.Second, "purchases before the fault")

	c.SetDiskFault(faulty, mode)
	faultAt := time.Now()
	c.Eventually(10*time.Second, "the fault is hit on "+faulty.ID, func() error {
		if n := injectedDiskFaults(c, faulty); n == 0 {
			return fmt.Errorf("no injected fault in %s's log", faulty.ID)
		}
		return nil
	})
	if onLeader {
		// hashicorp/raft steps down when the leader cannot write its own
		// entries; a node that cannot append cannot lead again.
		c.Eventually(20*time.Second, "another node leads", func() error {
			return otherLeader(c, faulty)
		})
	}
	w.awaitMore(100, 30*time.Second, "writes go on while "+faulty.ID+"'s disk fails")
	// The faulty node appends nothing, so it applies nothing new: it falls
	// behind the others while the fault lasts.
	if lag := staleLag(t, c, faulty); lag < 50 {
		t.Errorf("%s is only %d purchases behind while its log store fails every write", faulty.ID, lag)
	}
	if rest := diskFaultHold - time.Since(faultAt); rest > 0 {
		time.Sleep(rest) // the fault's duration, not a wait for a condition
	}
	injected := injectedDiskFaults(c, faulty)
	c.requireAllRunning()

	if crash {
		c.Kill(faulty)
	}
	c.SetDiskFault(faulty, "")
	if crash {
		c.Restart(faulty)
	}
	w.awaitMore(100, 30*time.Second, "writes after the disk heals")
	acked := w.finish(t)
	c.requireAllRunning()
	checkEveryAckedPurchaseEverywhere(t, c, acked)
	t.Logf("%s fault on %s (leader %v): %d log writes failed, %d purchases acknowledged", mode, faulty.ID, onLeader, injected, len(acked))
}

// TestDiskFaultFlappingOnAFollower: a follower's log store fails for a
// moment, again and again, under writes. Each time the follower answers the
// leader's replication with a failure, and each time it must catch up once
// its disk works again.
func TestDiskFaultFlappingOnAFollower(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(30 * time.Second)
	faulty := c.Followers(leader)[0]
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	w := startAckingWriters(ctx, c, "flap", 8)
	w.awaitMore(100, 20*time.Second, "purchases before the faults")

	for round := range 20 {
		before := injectedDiskFaults(c, faulty)
		c.SetDiskFault(faulty, "fsync")
		c.Eventually(10*time.Second, fmt.Sprintf("round %d: the fault is hit on %s", round, faulty.ID), func() error {
			if injectedDiskFaults(c, faulty) == before {
				return errors.New("no new injected fault")
			}
			return nil
		})
		c.SetDiskFault(faulty, "")
		w.awaitMore(50, 30*time.Second, fmt.Sprintf("round %d: writes after the disk healed", round))
		leader = c.WaitLeader(10 * time.Second)
		target, err := c.Metric(leader, "buytracker_raft_commit_index")
		if err != nil {
			t.Fatal(err)
		}
		c.Eventually(20*time.Second, fmt.Sprintf("round %d: %s applies the leader's commit index %v", round, faulty.ID, target), func() error {
			applied, err := c.Metric(faulty, "buytracker_raft_applied_index")
			if err == nil && applied < target {
				err = fmt.Errorf("%s applied up to %v", faulty.ID, applied)
			}
			return err
		})
	}
	acked := w.finish(t)
	c.requireAllRunning()
	checkEveryAckedPurchaseEverywhere(t, c, acked)
}

// injectedDiskFaults counts the faults a node's log store injected so far.
func injectedDiskFaults(c *Cluster, n *Node) int {
	return strings.Count(c.Log(n), "Injected a disk fault")
}

// otherLeader returns nil when a running node other than n is Raft leader.
func otherLeader(c *Cluster, n *Node) error {
	for _, other := range c.Followers(n) {
		if state, err := c.Metric(other, "buytracker_raft_state"); err == nil && state == 2 {
			return nil
		}
	}
	return fmt.Errorf("no node other than %s leads", n.ID)
}

// staleLag is how many purchases n has applied fewer than the most advanced
// other node.
func staleLag(t *testing.T, c *Cluster, n *Node) int {
	t.Helper()
	own, _, err := c.Stats(n.HTTPURL, "stale")
	if err != nil {
		t.Fatalf("stale stats on %s: %v", n.ID, err)
	}
	most := own.TotalBuys
	for _, other := range c.Followers(n) {
		s, _, err := c.Stats(other.HTTPURL, "stale")
		if err != nil {
			t.Fatalf("stale stats on %s: %v", other.ID, err)
		}
		most = max(most, s.TotalBuys)
	}
	return int(most - own.TotalBuys)
}

// TestDiskFaultWhileAFollowerTruncatesItsLog: a leader whose followers
// crashed writes entries that never commit, then crashes too; the followers
// come back and elect a leader without those entries. When the old leader
// returns, the new leader's entries conflict with its uncommitted tail, and
// it deletes that tail while its disk fails ("fsync": the deletion reaches
// the disk, then reports an error). Once the disk heals it must catch up
// without another restart.
func TestDiskFaultWhileAFollowerTruncatesItsLog(t *testing.T) {
	c := Start(t, 3)
	old := c.WaitLeader(30 * time.Second)
	followers := c.Followers(old)
	acked := map[string]BuyAnswer{}
	for i := range 20 {
		key := fmt.Sprintf("before-%d", i)
		a, err := c.Buy(t.Context(), old.HTTPURL, key, i+1)
		if err != nil || a.Status != 201 {
			t.Fatalf("purchase %d: %+v %v", i, a, err)
		}
		acked[key] = a
	}

	// Alone, the leader writes purchases into its own log that nobody
	// acknowledges, then its lease runs out. (SIGKILL, not SIGSTOP: a
	// stopped follower would still find the entries in its socket buffer.)
	for _, f := range followers {
		c.Kill(f)
	}
	orphans := make(chan BuyAnswer, 5)
	for i := range cap(orphans) {
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			a, _ := c.Buy(ctx, old.HTTPURL, fmt.Sprintf("orphan-%d", i), 100+i)
			orphans <- a
		}()
	}
	c.Eventually(10*time.Second, old.ID+" holds entries that never committed and stepped down", func() error {
		last, err1 := c.Metric(old, "buytracker_raft_last_index")
		commit, err2 := c.Metric(old, "buytracker_raft_commit_index")
		state, err3 := c.Metric(old, "buytracker_raft_state")
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		if last <= commit || state == 2 {
			return fmt.Errorf("last index %v, commit index %v, state %v", last, commit, state)
		}
		return nil
	})
	for range cap(orphans) {
		if a := <-orphans; a.Status == 201 {
			t.Fatalf("a purchase was acknowledged by a leader without followers: %+v", a)
		}
	}

	// The followers come back without it, elect a leader and commit more.
	c.Kill(old)
	for _, f := range followers {
		c.Restart(f)
	}
	var leader *Node
	c.Eventually(30*time.Second, "one of the followers leads", func() error {
		for _, f := range followers {
			if state, err := c.Metric(f, "buytracker_raft_state"); err == nil && state == 2 {
				leader = f
				return nil
			}
		}
		return errors.New("no leader among the followers")
	})
	c.Eventually(20*time.Second, "a purchase through the new leader", func() error {
		a, err := c.Buy(t.Context(), leader.HTTPURL, "after-0", 1)
		if err == nil && a.Status != 201 {
			err = fmt.Errorf("status %d", a.Status)
		}
		if err == nil {
			acked["after-0"] = a
		}
		return err
	})

	// The old leader comes back with a failing disk and deletes its tail.
	c.SetDiskFault(old, "fsync")
	c.Restart(old)
	c.Eventually(20*time.Second, old.ID+" deletes its uncommitted tail on a failing disk", func() error {
		if !strings.Contains(c.Log(old), `"op":"DeleteRange"`) {
			return errors.New("no injected fault on DeleteRange yet")
		}
		return nil
	})
	// It waits for its disk rather than go on with a log it misreads, and
	// says so.
	c.Eventually(10*time.Second, old.ID+" reports its failing log writes", func() error {
		status, reason := c.readiness(old)
		blocked, err := c.Metric(old, "buytracker_raft_log_write_blocked")
		if err != nil || status != 503 || !strings.Contains(reason, "writing the Raft log is failing") || blocked != 1 {
			return fmt.Errorf("/ready %d %q, buytracker_raft_log_write_blocked %v (%v)", status, reason, blocked, err)
		}
		return nil
	})
	c.SetDiskFault(old, "")

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	w := startAckingWriters(ctx, c, "healed", 2)
	w.awaitMore(50, 30*time.Second, "purchases after the disk heals")
	for key, a := range w.finish(t) {
		acked[key] = a
	}
	c.requireAllRunning()
	want, _, err := c.Stats(leader.HTTPURL, "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	c.Eventually(30*time.Second, old.ID+" catches up once its disk heals", func() error {
		s, _, err := c.Stats(old.HTTPURL, "stale")
		if err != nil {
			return err
		}
		if s.TotalBuys < want.TotalBuys {
			return fmt.Errorf("%s has %d of %d purchases (log: last index %v, commit index %v)", old.ID, s.TotalBuys, want.TotalBuys,
				metricOr(c, old, "buytracker_raft_last_index"), metricOr(c, old, "buytracker_raft_commit_index"))
		}
		return nil
	})
	checkEveryAckedPurchaseEverywhere(t, c, acked)
	if blocked, err := c.Metric(old, "buytracker_raft_log_write_blocked"); err != nil || blocked != 0 {
		t.Errorf("%s: buytracker_raft_log_write_blocked = %v (%v) after the disk healed, want 0", old.ID, blocked, err)
	}
}

func metricOr(c *Cluster, n *Node, name string) string {
	v, err := c.Metric(n, name)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(v)
}
