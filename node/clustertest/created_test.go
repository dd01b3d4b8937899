package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
)

// TestEmptyMembersOfACreatedClusterNeverBootstrap: two of three volumes are
// lost while the survivor is down. The two empty members answer each other
// "nothing here", which without more would make them bootstrap a new, empty
// cluster under the same ID (reads of 0 purchases, new purchases a returning
// survivor could truncate). Told by --cluster-created-file that the cluster
// was created, they wait to rejoin instead and answer nothing; once the
// survivor is back the quorum is lost as in TestRecoveryFromALostQuorum, and
// recovering on it brings back every purchase.
func TestEmptyMembersOfACreatedClusterNeverBootstrap(t *testing.T) {
	createdFile := filepath.Join(t.TempDir(), "created")
	c := Start(t, 3, "--cluster-created-file="+createdFile)
	survivor := c.WaitLeader(30 * time.Second)
	lost := c.Followers(survivor)
	const n = 20
	for i := range n {
		if ans, err := c.Buy(t.Context(), survivor.HTTPURL, fmt.Sprintf("before-loss-%d", i), i+1); err != nil || ans.Status != 201 {
			t.Fatalf("purchase %d: %+v %v", i, ans, err)
		}
	}
	want := purchaseKeys(t, c, survivor)
	if len(want) != n {
		t.Fatalf("the survivor exports %d purchases, want %d", len(want), n)
	}
	// What the operator does once the cluster was Available (a ConfigMap
	// mounted into every pod); the harness runs without --cluster-id.
	if err := os.WriteFile(createdFile, []byte("true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := map[string]*adminapi.Client{}
	for _, node := range c.Nodes() {
		admin[node.ID] = c.Admin(node)
	}

	// Two volumes lost, and the survivor down while the two start empty.
	for _, node := range lost {
		c.Stop(node)
		c.WipeData(node)
	}
	c.Stop(survivor)
	for _, node := range lost {
		c.Restart(node)
	}
	// Each keeps asking to be taken back: a bounded number of rounds shows
	// they stay waiting, rather than a sleep standing in for "nothing
	// happens".
	const rounds = 6
	for _, node := range lost {
		c.Eventually(60*time.Second, fmt.Sprintf("%s is an empty member that asked %d times to rejoin", node.ID, rounds), func() error {
			st, err := admin[node.ID].Status(t.Context())
			if err != nil {
				return err
			}
			if !st.Joining || st.HasData || st.State == "Leader" || st.Leader != "" {
				return fmt.Errorf("status %+v", st)
			}
			asked, err := c.Metric(node, "buytracker_rejoin_attempts_total")
			if err != nil {
				return err
			}
			if asked < rounds {
				return fmt.Errorf("asked %v times", asked)
			}
			return nil
		})
	}
	for _, node := range lost {
		if st, err := admin[node.ID].Status(t.Context()); err != nil || !st.Joining || st.HasData || st.Leader != "" {
			t.Fatalf("%s after its rounds: %+v (%v); want an empty member waiting without a leader", node.ID, st, err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		ans, err := c.Buy(ctx, node.HTTPURL, "during-loss-"+node.ID, 999)
		cancel()
		if err == nil && ans.Status/100 == 2 {
			t.Fatalf("%s accepted a purchase in a cluster it must not have created: %+v", node.ID, ans)
		}
		for _, consistency := range []string{"linearizable", "lease"} {
			s, status, _ := c.Stats(node.HTTPURL, consistency)
			if status != http.StatusServiceUnavailable {
				t.Fatalf("%s answered %s stats %+v with %d, want 503", node.ID, consistency, s, status)
			}
		}
		if ok := c.Log(node); !strings.Contains(ok, "was created") {
			t.Fatalf("%s did not log why it waits; log:\n%s", node.ID, tail(ok, 20))
		}
	}

	// The survivor returns: the quorum is lost (two new incarnations and
	// one voter with data), the state the operator recovers from.
	c.Restart(survivor)
	var last uint64
	c.Eventually(60*time.Second, "a recovery on "+survivor.ID+" succeeds", func() error {
		st, err := admin[survivor.ID].Status(t.Context())
		if err != nil {
			return err
		}
		if !st.HasData || st.Leader != "" {
			return fmt.Errorf("survivor status %+v", st)
		}
		last = st.LastIndex
		res, err := admin[survivor.ID].RecoverQuorum(t.Context(), last)
		if err != nil {
			return err
		}
		if !res.Recovered || res.LastIndex != last {
			t.Fatalf("recover answered %+v, want recovered at %d", res, last)
		}
		return nil
	})
	for _, node := range lost {
		if _, err := admin[survivor.ID].AddMember(t.Context(), node.ID, node.RaftAddr); err != nil {
			t.Fatalf("add %s: %v", node.ID, err)
		}
	}
	waitSuffrage(t, c, survivor, map[string]adminapi.Suffrage{"n1": adminapi.Voter, "n2": adminapi.Voter, "n3": adminapi.Voter})
	c.WaitLeader(60 * time.Second)
	holdsWhatTheSurvivorHeld(t, c, n, want)
}
