package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
)

// refusedRecovery asks n to recover and fails the test unless it answers
// 409; it returns the refusal.
func refusedRecovery(t *testing.T, admin map[string]*adminapi.Client, n *Node, lastIndex uint64, why string) *adminapi.RecoverRefusedError {
	t.Helper()
	res, err := admin[n.ID].RecoverQuorum(t.Context(), lastIndex)
	var refused *adminapi.RecoverRefusedError
	if !errors.As(err, &refused) || !adminapi.IsStatus(err, http.StatusConflict) {
		t.Fatalf("recover on %s (%s): answered %+v, %v; want a 409 refusal", n.ID, why, res, err)
	}
	return refused
}

// purchaseKeys reads a node's export (stale: it may be the only member) as
// id -> Idempotency-Key.
func purchaseKeys(t *testing.T, c *Cluster, n *Node) map[uint64]string {
	t.Helper()
	all, err := c.AllPurchases(n.HTTPURL, "stale")
	if err != nil {
		t.Fatalf("export of %s: %v", n.ID, err)
	}
	out := make(map[uint64]string, len(all))
	for _, p := range all {
		out[p.PurchaseID] = p.IdempotencyKey
	}
	return out
}

// TestRecoveryFromALostQuorum is issue 13's node scenario: two of three
// volumes are lost for good. The survivor and the two empty members cannot
// form a quorum, so nothing is accepted; recovering on the survivor makes it
// the only voter, the two come back through the ordinary membership path,
// and every purchase the survivor held is on all three.
func TestRecoveryFromALostQuorum(t *testing.T) {
	c := Start(t, 3)
	survivor := c.WaitLeader(30 * time.Second)
	lost := c.Followers(survivor)
	const n = 40
	for i := range n {
		if ans, err := c.Buy(t.Context(), survivor.HTTPURL, fmt.Sprintf("before-loss-%d", i), i+1); err != nil || ans.Status != 201 {
			t.Fatalf("purchase %d: %+v %v", i, ans, err)
		}
	}
	want := purchaseKeys(t, c, survivor)
	// One admin client per node, reused: polling with new ones would open
	// connections up to the admin listener's cap.
	admin := map[string]*adminapi.Client{}
	for _, node := range c.Nodes() {
		admin[node.ID] = c.Admin(node)
	}
	if len(want) != n {
		t.Fatalf("the survivor exports %d purchases, want %d", len(want), n)
	}

	// A healthy cluster refuses, on the leader and on a follower, and
	// nothing changes.
	for _, node := range c.Nodes() {
		st, err := admin[node.ID].Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		refusedRecovery(t, admin, node, st.LastIndex, "healthy cluster")
	}
	if _, err := admin[survivor.ID].RecoverQuorum(t.Context(), 0); !adminapi.IsStatus(err, http.StatusBadRequest) {
		t.Fatalf("recover without a last index: %v, want 400", err)
	}
	waitSuffrage(t, c, survivor, map[string]adminapi.Suffrage{"n1": adminapi.Voter, "n2": adminapi.Voter, "n3": adminapi.Voter})

	// Two volumes lost for good. The members come back empty once the
	// survivor has stepped down: a leader still in office would simply take
	// them back (one member at a time, that is the ordinary lost volume).
	for _, node := range lost {
		c.Stop(node)
		c.WipeData(node)
	}
	c.Eventually(30*time.Second, survivor.ID+" steps down without a quorum", func() error {
		st, err := admin[survivor.ID].Status(t.Context())
		if err != nil {
			return err
		}
		if st.Leader != "" {
			return fmt.Errorf("it follows %q", st.Leader)
		}
		return nil
	})
	for _, node := range lost {
		c.Restart(node)
	}
	for _, node := range lost {
		c.Eventually(30*time.Second, node.ID+" is an empty member waiting to rejoin", func() error {
			st, err := admin[node.ID].Status(t.Context())
			if err != nil {
				return err
			}
			if !st.Joining || st.HasData {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
	}
	var last uint64
	c.Eventually(30*time.Second, survivor.ID+" knows no leader", func() error {
		st, err := admin[survivor.ID].Status(t.Context())
		if err != nil {
			return err
		}
		if st.Leader != "" {
			return fmt.Errorf("it follows %q", st.Leader)
		}
		last = st.LastIndex
		return nil
	})
	// Without a quorum the cluster stops answering rather than answering
	// wrong: no purchase is accepted anywhere.
	for _, node := range c.Nodes() {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		ans, err := c.Buy(ctx, node.HTTPURL, "during-loss-"+node.ID, 999)
		cancel()
		if err == nil && ans.Status/100 == 2 {
			t.Fatalf("%s accepted a purchase without a quorum: %+v", node.ID, ans)
		}
	}

	// Refusals that change nothing: an empty member, a wrong index.
	refusedRecovery(t, admin, lost[0], last, "empty member asked with the survivor's index")
	// Right after it stepped down the survivor still refuses for having
	// heard from a leader (itself) within an election timeout; then for the
	// index alone.
	c.Eventually(10*time.Second, "a refusal for the wrong last index", func() error {
		refusal := refusedRecovery(t, admin, survivor, last+1, "wrong last index")
		if refusal.LastIndex != last {
			t.Fatalf("the refusal carries last index %d, want %d", refusal.LastIndex, last)
		}
		if !strings.Contains(refusal.Message, fmt.Sprintf("last index is %d, not %d", last, last+1)) {
			return refusal
		}
		return nil
	})
	if st, err := admin[survivor.ID].Status(t.Context()); err != nil || st.LastIndex != last || st.Leader != "" {
		t.Fatalf("after the refusals the survivor is %+v (%v); want it unchanged at %d without a leader", st, err, last)
	}

	// The recovery.
	res, err := admin[survivor.ID].RecoverQuorum(t.Context(), last)
	if err != nil {
		t.Fatalf("recover on %s at %d: %v\nlog:\n%s", survivor.ID, last, err, tail(c.Log(survivor), 30))
	}
	if !res.Recovered || res.LastIndex != last || res.Term == 0 {
		t.Fatalf("recover answered %+v, want recovered at %d with a term", res, last)
	}
	again, err := admin[survivor.ID].RecoverQuorum(t.Context(), last)
	if err != nil || !again.Recovered || again.LastIndex != last {
		t.Fatalf("a repeated recover answered %+v, %v; want 200 at %d", again, err, last)
	}
	waitSuffrage(t, c, survivor, map[string]adminapi.Suffrage{survivor.ID: adminapi.Voter})
	// The recovered configuration comes from the snapshot the recovery
	// wrote, not from an applied entry, at the index hashicorp/raft records
	// it at (1): GET /cluster gives it as the committed one.
	if cl, err := admin[survivor.ID].Cluster(t.Context()); err != nil || cl.ConfigurationIndex != 1 || cl.ConfigurationPending || len(cl.Members) != 1 {
		t.Fatalf("GET /cluster after the recovery at %d: %+v %v, want the recovered configuration (index 1), not pending", last, cl, err)
	}
	var id struct {
		Recovered *struct {
			LastIndex uint64    `json:"last_index"`
			At        time.Time `json:"at"`
		} `json:"recovered"`
	}
	raw, err := os.ReadFile(filepath.Join(survivor.DataDir(), "identity.json"))
	if err == nil {
		err = json.Unmarshal(raw, &id)
	}
	if err != nil || id.Recovered == nil || id.Recovered.LastIndex != last || id.Recovered.At.IsZero() {
		t.Fatalf("identity.json records no recovery at %d: %s (%v)", last, raw, err)
	}

	// The empty members come back through the ordinary path.
	for _, node := range lost {
		if _, err := admin[survivor.ID].AddMember(t.Context(), node.ID, node.RaftAddr); err != nil {
			t.Fatalf("add %s: %v", node.ID, err)
		}
	}
	waitSuffrage(t, c, survivor, map[string]adminapi.Suffrage{"n1": adminapi.Voter, "n2": adminapi.Voter, "n3": adminapi.Voter})
	c.WaitLeader(60 * time.Second)
	c.Eventually(30*time.Second, "the grown configuration committed after the recovered one", func() error {
		cl, err := admin[survivor.ID].Cluster(t.Context())
		if err != nil || cl.ConfigurationIndex <= last || cl.ConfigurationPending || len(cl.Members) != 3 {
			return fmt.Errorf("GET /cluster: %+v %v, want 3 members committed after %d", cl, err, last)
		}
		return nil
	})
	holdsWhatTheSurvivorHeld(t, c, n, want)
	for i := range 5 {
		node := c.Nodes()[i%3]
		if ans, err := c.Buy(t.Context(), node.HTTPURL, fmt.Sprintf("after-recovery-%d", i), 100+i); err != nil || ans.Status != 201 || ans.PurchaseID != uint64(n+1+i) {
			t.Fatalf("purchase %d after the recovery via %s: %+v %v", i, node.ID, ans, err)
		}
	}
}

// holdsWhatTheSurvivorHeld waits until every member counts n purchases, then
// checks that each exports exactly the purchases want (id -> key).
func holdsWhatTheSurvivorHeld(t *testing.T, c *Cluster, n uint64, want map[uint64]string) {
	t.Helper()
	for _, node := range c.Nodes() {
		c.Eventually(30*time.Second, node.ID+" holds every purchase the survivor held", func() error {
			s, status, err := c.Stats(node.HTTPURL, "stale")
			if err != nil || status != 200 || s.TotalBuys != n {
				return fmt.Errorf("stats %+v (%d, %v), want %d purchases", s, status, err, n)
			}
			return nil
		})
		if got := purchaseKeys(t, c, node); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s exports %v, want %v", node.ID, got, want)
		}
	}
}
