package clustertest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestALeaderWithAFastClockStampsNothing is issue 10's scenario 6: a leader
// whose clock runs 25 h ahead must not stamp purchases with it (recorded_at
// never goes back, so every later purchase would stay ahead and count in
// every window for a day). It stops stamping and hands leadership over;
// writes go on under a leader whose clock agrees with the others.
func TestALeaderWithAFastClockStampsNothing(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(30 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	w := startAckingWriters(ctx, c, "clock", 4)
	w.awaitMore(100, 20*time.Second, "purchases before the clock jump")

	c.SetClock(leader, 25*time.Hour)
	c.Eventually(20*time.Second, "leadership leaves the node whose clock jumped", func() error {
		now := c.WaitLeader(10 * time.Second)
		if now == leader {
			return fmt.Errorf("%s still leads", leader.ID)
		}
		return nil
	})
	w.awaitMore(100, 20*time.Second, "writes go on under the new leader")
	acked := w.finish(t)

	limit := time.Now().Add(time.Minute)
	for key, a := range acked {
		at, err := time.Parse(time.RFC3339Nano, a.RecordedAt)
		if err != nil {
			t.Fatalf("%s: recorded_at %q: %v", key, a.RecordedAt, err)
		}
		if at.After(limit) {
			t.Fatalf("%s was stamped %v, ahead of the real clock: the leader stamped with its skewed clock", key, at)
		}
	}
	if v, err := c.Metric(leader, "buytracker_clock_skew_handovers_total"); err != nil || v < 1 {
		t.Errorf("%s: buytracker_clock_skew_handovers_total = %v (%v), want at least 1", leader.ID, v, err)
	}
	checkEveryAckedPurchaseEverywhere(t, c, acked)
}

// TestReadWindowsEndAtTheLeadersClock: a follower whose clock runs 2 h
// ahead answers a linearizable read of the last hour exactly as the leader
// does at the same index (the window ends at the leader's clock at the
// read's round), and its own skew does not stop writes.
func TestReadWindowsEndAtTheLeadersClock(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(30 * time.Second)
	follower := c.Followers(leader)[0]
	c.SetClock(follower, 2*time.Hour)
	for i := range 5 {
		if ans, err := c.Buy(t.Context(), follower.HTTPURL, "", i+1); err != nil || ans.Status != 201 {
			t.Fatalf("purchase %d through the skewed follower: %+v %v", i, ans, err)
		}
	}
	type window struct {
		Total  uint64 `json:"total_buys"`
		Recent uint64 `json:"n_recent_buys"`
		Index  uint64 `json:"index"`
	}
	read := func(n *Node) window {
		var w window
		if status, err := c.GetJSON(n.HTTPURL+"/stats?timeframe_hours=1", &w); err != nil || status != 200 {
			t.Fatalf("stats on %s: %d %v", n.ID, status, err)
		}
		return w
	}
	onLeader, onFollower := read(leader), read(follower)
	if onLeader.Recent != 5 || onFollower.Recent != 5 {
		t.Fatalf("purchases of the last hour: %d on the leader, %d on the follower whose clock is 2 h ahead; want 5 on both (leader %+v, follower %+v)",
			onLeader.Recent, onFollower.Recent, onLeader, onFollower)
	}
}
