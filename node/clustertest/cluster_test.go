package clustertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
)

// retryingBuy sends one purchase with a fixed Idempotency-Key to the nodes
// in turn until one acknowledges it, as a well-behaved client does.
func retryingBuy(ctx context.Context, c *Cluster, key string, user int, start int) (BuyAnswer, error) {
	for attempt := start; ; attempt++ {
		nodes := c.Nodes()
		n := nodes[attempt%len(nodes)]
		if n.Running() {
			reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			a, err := c.Buy(reqCtx, n.HTTPURL, key, user)
			cancel()
			if err == nil && a.Status == 201 {
				return a, nil
			}
		}
		select {
		case <-ctx.Done():
			return BuyAnswer{}, fmt.Errorf("purchase %s never acknowledged: %w", key, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestFollowersForwardWritesAndServeLinearizableReads(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	for i, f := range c.Followers(leader) {
		a, err := c.Buy(t.Context(), f.HTTPURL, "", i+1)
		if err != nil || a.Status != 201 {
			t.Fatalf("buy through follower %s: %+v, %v", f.ID, a, err)
		}
		if a.PurchaseID != uint64(i+1) {
			t.Fatalf("purchase id %d through %s, want %d", a.PurchaseID, f.ID, i+1)
		}
		s, status, err := c.Stats(f.HTTPURL, "linearizable")
		if err != nil || status != 200 {
			t.Fatalf("linearizable stats through %s: %d %v", f.ID, status, err)
		}
		// The follower asks the leader for a read index and answers once it
		// has applied it: the purchase just acknowledged is counted.
		if s.ServedBy != f.ID || s.TotalBuys != uint64(i+1) {
			t.Fatalf("linearizable stats through follower %s: %+v, want served by it with %d buys", f.ID, s, i+1)
		}
		lease, _, err := c.Stats(f.HTTPURL, "lease")
		if err != nil || lease.ServedBy != leader.ID || lease.TotalBuys != uint64(i+1) {
			t.Fatalf("lease stats through follower %s: %+v %v, want forwarded to %s", f.ID, lease, err, leader.ID)
		}
		stale, _, err := c.Stats(f.HTTPURL, "stale")
		if err != nil || stale.ServedBy != f.ID {
			t.Fatalf("stale stats through %s: %+v, %v; want served locally", f.ID, stale, err)
		}
	}
	// The stage histograms saw each step of those purchases: one forwarded
	// batch per follower, two entries committed by the leader, and log
	// writes on every node.
	for _, f := range c.Followers(leader) {
		if v, err := c.Metric(f, "buytracker_buy_forward_duration_seconds_count"); err != nil || v != 1 {
			t.Errorf("%s forwarded %v batches (%v), want 1", f.ID, v, err)
		}
	}
	if v, err := c.Metric(leader, "buytracker_buy_commit_duration_seconds_count"); err != nil || v != 2 {
		t.Errorf("leader committed %v batches of purchases (%v), want 2", v, err)
	}
	for _, n := range c.Nodes() {
		if v, err := c.Metric(n, "buytracker_raft_log_store_duration_seconds_count"); err != nil || v < 2 {
			t.Errorf("%s timed %v log writes (%v), want at least 2", n.ID, v, err)
		}
	}
}

func TestLeaderKilledUnderLoadLosesNothing(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	w := startAckingWriters(ctx, c, "killed", 8)
	w.awaitMore(200, 20*time.Second, "some purchases acknowledged before the crash")
	c.Kill(leader)
	w.awaitMore(200, 30*time.Second, "writes resume after the leader is killed")
	c.Restart(leader)
	acked := w.finish(t)
	c.WaitLeader(30 * time.Second)
	checkEveryAckedPurchaseEverywhere(t, c, acked)
}

// checkEveryAckedPurchaseEverywhere checks that every node holds exactly the
// acknowledged purchases: none lost, none counted twice.
func checkEveryAckedPurchaseEverywhere(t *testing.T, c *Cluster, acked map[string]BuyAnswer) {
	t.Helper()
	leader := c.WaitLeader(30 * time.Second)
	want, _, err := c.Stats(leader.HTTPURL, "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	if want.TotalBuys != uint64(len(acked)) {
		t.Fatalf("cluster counts %d purchases, clients had %d acknowledged", want.TotalBuys, len(acked))
	}
	for _, n := range c.Nodes() {
		if !n.Running() {
			continue
		}
		c.Eventually(30*time.Second, n.ID+" catches up", func() error {
			s, _, err := c.Stats(n.HTTPURL, "stale")
			if err != nil {
				return err
			}
			if s.TotalBuys != want.TotalBuys {
				return fmt.Errorf("%s has %d of %d", n.ID, s.TotalBuys, want.TotalBuys)
			}
			return nil
		})
		records, err := c.AllPurchases(n.HTTPURL, "stale")
		if err != nil {
			t.Fatal(err)
		}
		byKey := map[string]Purchase{}
		for i, r := range records {
			if r.PurchaseID != uint64(i+1) {
				t.Fatalf("%s: purchase ids not dense: %d at position %d", n.ID, r.PurchaseID, i)
			}
			if i > 0 && r.RecordedAt < records[i-1].RecordedAt && len(r.RecordedAt) == len(records[i-1].RecordedAt) {
				t.Fatalf("%s: recorded_at went backwards at purchase %d", n.ID, r.PurchaseID)
			}
			if _, dup := byKey[r.IdempotencyKey]; dup {
				t.Fatalf("%s: key %s recorded twice", n.ID, r.IdempotencyKey)
			}
			byKey[r.IdempotencyKey] = r
		}
		for key, a := range acked {
			r, ok := byKey[key]
			if !ok {
				t.Fatalf("%s lost acknowledged purchase %s (id %d)", n.ID, key, a.PurchaseID)
			}
			if r.PurchaseID != a.PurchaseID {
				t.Fatalf("%s: %s has id %d, the client was told %d", n.ID, key, r.PurchaseID, a.PurchaseID)
			}
		}
	}
}

func TestRestartedNodeCatchesUp(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	follower := c.Followers(leader)[0]
	c.Stop(follower)
	for i := range 50 {
		if a, err := c.Buy(t.Context(), leader.HTTPURL, "", i+1); err != nil || a.Status != 201 {
			t.Fatalf("buy %d with a follower down: %+v %v", i, a, err)
		}
	}
	c.Restart(follower)
	c.Eventually(30*time.Second, "the restarted follower has every purchase", func() error {
		s, _, err := c.Stats(follower.HTTPURL, "stale")
		if err != nil {
			return err
		}
		if s.TotalBuys != 50 {
			return fmt.Errorf("%d of 50", s.TotalBuys)
		}
		return nil
	})
	// Stop every node cleanly, start them again: all data comes back.
	for _, n := range c.Nodes() {
		c.Stop(n)
	}
	for _, n := range c.Nodes() {
		c.Restart(n)
	}
	leader = c.WaitLeader(30 * time.Second)
	if s, _, err := c.Stats(leader.HTTPURL, "linearizable"); err != nil || s.TotalBuys != 50 {
		t.Fatalf("after a full restart: %+v %v", s, err)
	}
}

func TestIdempotencyHoldsAcrossLeaderChangeAndRestart(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	first, err := c.Buy(t.Context(), leader.HTTPURL, "order-42", 7)
	if err != nil || first.Status != 201 {
		t.Fatalf("first buy: %+v %v", first, err)
	}
	if _, err := c.Admin(leader).TransferLeadership(t.Context(), ""); err != nil {
		t.Fatalf("transfer leadership: %v", err)
	}
	newLeader := c.WaitLeader(20 * time.Second)
	if newLeader == leader {
		t.Fatalf("leadership did not move from %s", leader.ID)
	}
	for _, n := range c.Nodes() {
		again, err := c.Buy(t.Context(), n.HTTPURL, "order-42", 7)
		if err != nil || again.Status != 201 || !again.Replayed || again.PurchaseID != first.PurchaseID || again.RecordedAt != first.RecordedAt {
			t.Fatalf("retry through %s after the leader changed: %+v %v; want the first answer %+v", n.ID, again, err, first)
		}
	}
	c.Kill(newLeader)
	c.Restart(newLeader)
	c.WaitLeader(30 * time.Second)
	again, err := retryingBuy(t.Context(), c, "order-42", 7, 0)
	if err != nil || !again.Replayed || again.PurchaseID != first.PurchaseID {
		t.Fatalf("retry after a crash and restart: %+v %v", again, err)
	}
	if s, _, _ := c.Stats(c.WaitLeader(10*time.Second).HTTPURL, "linearizable"); s.TotalBuys != 1 {
		t.Fatalf("retries were counted: total %d, want 1", s.TotalBuys)
	}
}

func TestNodeAddedAfterCompactionCatchesUpBySnapshot(t *testing.T) {
	c := Start(t, 3, "--snapshot-threshold=32", "--trailing-logs=8", "--snapshot-interval=200ms")
	leader := c.WaitLeader(10 * time.Second)
	for i := range 300 {
		if a, err := c.Buy(t.Context(), leader.HTTPURL, fmt.Sprintf("k%d", i), i+1); err != nil || a.Status != 201 {
			t.Fatalf("buy %d: %+v %v", i, a, err)
		}
	}
	c.Eventually(30*time.Second, "the leader has taken a snapshot", func() error {
		v, err := c.Metric(leader, `buytracker_snapshot_persist_total{result="success"}`)
		if err != nil || v < 1 {
			return fmt.Errorf("snapshots: %v %v", v, err)
		}
		return nil
	})
	// A snapshot on demand through the admin API compacts the log too.
	res, err := c.Admin(leader).Snapshot(t.Context())
	if err != nil || res.Index == 0 {
		t.Fatalf("snapshot on demand: %+v %v", res, err)
	}
	n4 := c.AddNode("n4")
	if _, err = c.Admin(c.Followers(leader)[0]).AddMember(t.Context(), "n4", n4.RaftAddr); err != nil {
		t.Fatalf("add n4 through a follower's admin API: %v", err)
	}
	waitSuffrage(t, c, leader, map[string]adminapi.Suffrage{"n1": adminapi.Voter, "n2": adminapi.Voter, "n3": adminapi.Voter, "n4": adminapi.Voter})
	if v, err := c.Metric(n4, `buytracker_snapshot_restore_total{result="success"}`); err != nil || v < 1 {
		t.Fatalf("n4 did not catch up by snapshot: restores %v, %v", v, err)
	}
	want, err := c.AllPurchases(leader.HTTPURL, "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	c.Eventually(20*time.Second, "n4 holds exactly the leader's records", func() error {
		got, err := c.AllPurchases(n4.HTTPURL, "stale")
		if err != nil {
			return err
		}
		if len(got) != len(want) {
			return fmt.Errorf("%d records, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				return fmt.Errorf("record %d differs: %+v vs %+v", i, got[i], want[i])
			}
		}
		return nil
	})
	// An idempotency key recorded before the snapshot is still known on n4
	// once it leads.
	transferTo(t, c, "n4")
	var a BuyAnswer
	c.Eventually(20*time.Second, "n4 answers a retry of k0", func() error {
		a, err = c.Buy(t.Context(), n4.HTTPURL, "k0", 1)
		if err == nil && a.Status != 201 {
			err = fmt.Errorf("status %d", a.Status)
		}
		return err
	})
	if !a.Replayed || a.PurchaseID != 1 {
		t.Fatalf("retry of k0 on n4: %+v, want purchase 1 replayed", a)
	}
}

// transferTo moves leadership to id through the admin API, asking again
// when a transfer times out (the target may still be catching up), until id
// reports itself leader.
func transferTo(t *testing.T, c *Cluster, id string) {
	t.Helper()
	c.Eventually(30*time.Second, id+" leads", func() error {
		st, err := c.Admin(c.Node(id)).Status(t.Context())
		if err == nil && st.State == "Leader" {
			return nil
		}
		_, err = c.Admin(c.Node(id)).TransferLeadership(t.Context(), id)
		return fmt.Errorf("%s is %v (transfer: %v)", id, st, err)
	})
}

func waitSuffrage(t *testing.T, c *Cluster, via *Node, want map[string]adminapi.Suffrage) {
	t.Helper()
	c.Eventually(60*time.Second, fmt.Sprintf("membership %v", want), func() error {
		var cl *adminapi.Cluster
		var err error
		for _, n := range c.Nodes() {
			if n.Running() {
				if cl, err = c.Admin(n).Cluster(t.Context()); err == nil {
					break
				}
			}
		}
		if err != nil {
			return err
		}
		got := map[string]adminapi.Suffrage{}
		for _, m := range cl.Members {
			got[m.ID] = m.Suffrage
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("members %v", got)
		}
		return nil
	})
}

func TestMembershipThreeToFiveToThree(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	admin := c.Admin(leader)
	buys := 0
	buy := func() {
		t.Helper()
		buys++
		if _, err := retryingBuy(t.Context(), c, fmt.Sprintf("m%d", buys), buys, buys); err != nil {
			t.Fatal(err)
		}
	}
	buy()
	for _, id := range []string{"n4", "n5"} {
		n := c.AddNode(id)
		res, err := admin.AddMember(t.Context(), id, n.RaftAddr)
		if err != nil {
			t.Fatalf("add %s: %v", id, err)
		}
		if res.Index == 0 {
			t.Fatalf("adding %s reported no change", id)
		}
		// Repeating a finished change succeeds without a change.
		if again, err := admin.AddMember(t.Context(), id, n.RaftAddr); err != nil || again.Index != 0 {
			t.Fatalf("repeat add %s: %+v %v", id, again, err)
		}
		buy()
	}
	voters5 := map[string]adminapi.Suffrage{"n1": "voter", "n2": "voter", "n3": "voter", "n4": "voter", "n5": "voter"}
	waitSuffrage(t, c, leader, voters5)
	buy()
	// Move leadership to n1 so removing n4 and n5 never removes the leader.
	transferTo(t, c, "n1")
	var removedAt uint64
	for _, id := range []string{"n5", "n4"} {
		res, err := c.Admin(c.Node("n2")).RemoveMember(t.Context(), id)
		if err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
		removedAt = res.Index
		if again, err := c.Admin(c.Node("n1")).RemoveMember(t.Context(), id); err != nil || again.Index != 0 {
			t.Fatalf("repeat remove %s: %+v %v", id, again, err)
		}
		c.Stop(c.Node(id))
		buy()
	}
	waitSuffrage(t, c, leader, map[string]adminapi.Suffrage{"n1": "voter", "n2": "voter", "n3": "voter"})
	// GET /cluster gives the configuration with the index it committed at.
	if cl, err := c.Admin(c.Node("n1")).Cluster(t.Context()); err != nil || cl.ConfigurationIndex != removedAt || cl.ConfigurationPending {
		t.Fatalf("GET /cluster after the last removal (at %d): %+v %v, want that configuration index, not pending", removedAt, cl, err)
	}
	final, _, err := c.Stats(c.Node("n1").HTTPURL, "linearizable")
	if err != nil || final.TotalBuys != uint64(buys) {
		t.Fatalf("after 3 -> 5 -> 3: %+v %v, want %d buys", final, err, buys)
	}
}

func TestAdminAPIRequiresTheToken(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	for _, token := range []string{"", "wrong"} {
		bad, err := adminapi.NewClient(leader.AdminURL, token, c.AdminHTTPClient())
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.RemoveMember(t.Context(), "n2")
		if !adminapi.IsStatus(err, 401) {
			t.Fatalf("remove with token %q: %v, want 401", token, err)
		}
	}
	cl, err := c.Admin(leader).Cluster(t.Context())
	if err != nil || len(cl.Members) != 3 {
		t.Fatalf("membership changed after refused calls: %+v %v", cl, err)
	}
}

// GET /cluster is the leader's own knowledge: it asks no member, so a
// frozen member (SIGSTOP: its sockets stay open and nothing answers) does
// not hold the answer up. The deadline is below the node's 5 s bound on
// the old per-member fan-out, which waited on the frozen member.
func TestClusterAnswersWhileAMemberIsFrozen(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	followers := c.Followers(leader)
	frozen, asked := followers[0], followers[1]
	c.Pause(frozen)
	for _, via := range []*Node{leader, asked} { // a follower forwards it to the leader
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		cl, err := c.Admin(via).Cluster(ctx)
		cancel()
		if err != nil {
			t.Fatalf("GET /cluster via %s with %s frozen: %v", via.ID, frozen.ID, err)
		}
		if cl.ServedBy != leader.ID || cl.Leader != leader.ID || len(cl.Members) != 3 {
			t.Fatalf("GET /cluster via %s: served by %q, leader %q, %d members; want %s and 3", via.ID, cl.ServedBy, cl.Leader, len(cl.Members), leader.ID)
		}
		if cl.ConfigurationIndex == 0 || cl.ConfigurationIndex > cl.CommitIndex {
			t.Fatalf("configuration index %d, commit index %d: want 0 < configuration <= commit", cl.ConfigurationIndex, cl.CommitIndex)
		}
		for _, m := range cl.Members {
			if (m.ID == leader.ID) != (m.LastIndex != nil) {
				t.Fatalf("member %s last index %v: only the answering leader gives its own", m.ID, m.LastIndex)
			}
		}
	}
	c.Resume(frozen)
}
