package clustertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestALostVolumeLosesNoAcknowledgedPurchase is issue 10's scenario 1: a
// member whose volume is lost while the only other holder of the latest
// purchases is down must not help a stale member win an election.
func TestALostVolumeLosesNoAcknowledgedPurchase(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(30 * time.Second)
	followers := c.Followers(leader)
	a, b := followers[0], followers[1]

	// B misses the purchases; the leader and A hold them.
	c.Pause(b)
	const n = 50
	for i := range n {
		ans, err := c.Buy(t.Context(), leader.HTTPURL, fmt.Sprintf("lost-volume-%d", i), i+1)
		if err != nil || ans.Status != 201 {
			t.Fatalf("purchase %d while %s is paused: %+v %v", i, b.ID, ans, err)
		}
	}

	// The leader and A crash; A comes back on an empty volume.
	c.Kill(leader)
	c.Kill(a)
	c.WipeData(a)
	c.Restart(a)
	c.Resume(b)
	// B campaigns. Either A's vote makes it leader without the purchases
	// (the defect), or A refuses to vote while it is not a member again.
	c.Eventually(30*time.Second, b.ID+" won an election or "+a.ID+" refused its vote", func() error {
		if strings.Contains(c.Log(a), "Refused a Raft request") {
			return nil
		}
		st, err := c.Admin(b).Status(t.Context())
		if err == nil && st.State == "Leader" {
			return nil
		}
		return fmt.Errorf("neither yet (status of %s: %+v, %v)", b.ID, st, err)
	})
	c.Restart(leader)

	c.WaitLeader(60 * time.Second)
	for _, node := range c.Nodes() {
		c.Eventually(60*time.Second, node.ID+" holds every acknowledged purchase", func() error {
			s, status, err := c.Stats(node.HTTPURL, "linearizable")
			if err != nil || status != 200 {
				return fmt.Errorf("stats: %d %v", status, err)
			}
			if s.TotalBuys != n {
				return fmt.Errorf("total_buys %d, want %d", s.TotalBuys, n)
			}
			return nil
		})
	}
	purchases, err := c.AllPurchases(a.HTTPURL, "stale")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range purchases {
		if want := fmt.Sprintf("lost-volume-%d", i); p.PurchaseID != uint64(i+1) || p.IdempotencyKey != want {
			t.Fatalf("purchase %d on %s: id %d key %q, want id %d key %q", i, a.ID, p.PurchaseID, p.IdempotencyKey, i+1, want)
		}
	}
	c.Eventually(30*time.Second, a.ID+" is a voter again as a new incarnation", func() error {
		if !strings.Contains(c.Log(a), "Rejoined the cluster as a new incarnation") {
			return fmt.Errorf("no rejoin logged")
		}
		cl, err := c.Admin(b).Cluster(t.Context())
		if err != nil {
			return err
		}
		for _, m := range cl.Members {
			if m.ID == a.ID && m.Suffrage != "voter" {
				return fmt.Errorf("%s is a %s", a.ID, m.Suffrage)
			}
		}
		return nil
	})
}

// TestANodeRefusesADataDirItCannotTrust: a data dir of another node, of
// another cluster, or with its Raft log and stable store gone while other
// state remains makes the node stop with a clear message instead of starting
// with a forgotten term and vote.
func TestANodeRefusesADataDirItCannotTrust(t *testing.T) {
	c := Start(t, 3, "--cluster-id=cluster-a")
	leader := c.WaitLeader(30 * time.Second)
	for i := range 5 {
		if ans, err := c.Buy(t.Context(), leader.HTTPURL, "", i+1); err != nil || ans.Status != 201 {
			t.Fatalf("purchase %d: %+v %v", i, ans, err)
		}
	}
	f := c.Followers(leader)[0]
	// A snapshot, so that deleting raft.db leaves other Raft state behind.
	if _, err := c.Admin(f).Snapshot(t.Context()); err != nil {
		t.Fatalf("snapshot on %s: %v", f.ID, err)
	}
	c.Stop(f)

	t.Run("another cluster", func(t *testing.T) {
		flags := c.ExtraFlags
		c.ExtraFlags = []string{"--cluster-id=cluster-b"}
		defer func() { c.ExtraFlags = flags }()
		code, log := c.StartOnce(f, 30*time.Second)
		if code == 0 || !strings.Contains(log, `belongs to cluster "cluster-a"`) {
			t.Fatalf("exit %d; want a refusal naming cluster-a; log:\n%s", code, tail(log, 10))
		}
	})
	t.Run("raft.db lost", func(t *testing.T) {
		raftDB := filepath.Join(f.DataDir(), "raft", "raft.db")
		moved := raftDB + ".moved"
		if err := os.Rename(raftDB, moved); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(moved, raftDB)
		code, log := c.StartOnce(f, 30*time.Second)
		if code == 0 || !strings.Contains(log, "raft.db is missing") {
			t.Fatalf("exit %d; want a refusal naming the missing raft.db; log:\n%s", code, tail(log, 10))
		}
	})
	t.Run("another node", func(t *testing.T) {
		other := c.Followers(leader)[0]
		if other == f {
			other = leader
		}
		saved := f.dataDir
		f.dataDir = other.DataDir()
		defer func() { f.dataDir = saved }()
		c.Stop(other)
		defer c.Restart(other)
		code, log := c.StartOnce(f, 30*time.Second)
		if code == 0 || !strings.Contains(log, `belongs to node "`+other.ID) {
			t.Fatalf("exit %d; want a refusal naming %s; log:\n%s", code, other.ID, tail(log, 10))
		}
	})

	// Untouched, the node rejoins with its data.
	c.Restart(f)
	c.WaitLeader(60 * time.Second)
	s, status, err := c.Stats(f.HTTPURL, "linearizable")
	if err != nil || status != 200 || s.TotalBuys != 5 {
		t.Fatalf("after the refusals %s answers %+v (%d, %v), want 5 purchases", f.ID, s, status, err)
	}
}

// TestAMemberStartedLateJoinsTheClusterTheOthersCreated: creation is not
// mistaken for a lost volume, and a lost volume is not mistaken for
// creation. Two initial members create the cluster while the third is down;
// the third, starting empty, learns the cluster exists, comes back as a new
// incarnation and ends a voter with every purchase.
func TestAMemberStartedLateJoinsTheClusterTheOthersCreated(t *testing.T) {
	c := StartSome(t, 3, "n1", "n2")
	leader := c.WaitLeader(30 * time.Second)
	for i := range 10 {
		if ans, err := c.Buy(t.Context(), leader.HTTPURL, "", i+1); err != nil || ans.Status != 201 {
			t.Fatalf("purchase %d: %+v %v", i, ans, err)
		}
	}
	late := c.Node("n3")
	c.Restart(late)
	c.Eventually(60*time.Second, "n3 is a voter with every purchase", func() error {
		cl, err := c.Admin(leader).Cluster(t.Context())
		if err != nil {
			return err
		}
		for _, m := range cl.Members {
			if m.ID == late.ID && m.Suffrage != "voter" {
				return fmt.Errorf("n3 is a %s", m.Suffrage)
			}
		}
		s, status, err := c.Stats(late.HTTPURL, "stale")
		if err != nil || status != 200 || s.TotalBuys != 10 {
			return fmt.Errorf("n3 answers %+v (%d, %v)", s, status, err)
		}
		return nil
	})
}
