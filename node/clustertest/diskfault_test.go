package clustertest

import (
	"context"
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
	}{
		{"WriteOnLeader", "write", true},
		{"FsyncOnLeader", "fsync", true},
		{"FsyncOnFollower", "fsync", false},
		{"WriteOnFollower", "write", false},
	} {
		t.Run(tc.name, func(t *testing.T) { testDiskFault(t, tc.mode, tc.onLeader) })
	}
}

func testDiskFault(t *testing.T, mode string, onLeader bool) {
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

	c.SetDiskFault(faulty, "")
	w.awaitMore(100, 30*time.Second, "writes after the disk heals")
	acked := w.finish(t)
	c.requireAllRunning()
	checkEveryAckedPurchaseEverywhere(t, c, acked)
	t.Logf("%s fault on %s (leader %v): %d writes refused, %d purchases acknowledged", mode, faulty.ID, onLeader, injected, len(acked))
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
