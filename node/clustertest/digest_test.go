package clustertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/testhook"
)

// TestAMemberThatAppliesDifferentlyIsTakenOutOfService: a follower whose
// state machine stores every amount one cent off (a test hook standing in for
// a bug or corruption that no checksum sees) reaches the same indexes with a
// different state. The members' digest comparison finds it: the majority
// agrees, so that follower halts and answers no read, and the others go on.
func TestAMemberThatAppliesDifferentlyIsTakenOutOfService(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(30 * time.Second)
	for i := range 10 {
		if ans, err := c.Buy(t.Context(), leader.HTTPURL, "", i+1); err != nil || ans.Status != 201 {
			t.Fatalf("purchase %d: %+v %v", i, ans, err)
		}
	}
	bad := c.Followers(leader)[0]
	c.Stop(bad)
	bad.Env = []string{testhook.MisapplyCentsEnv + "=1"}
	c.Restart(bad)

	c.Eventually(30*time.Second, bad.ID+" is taken out of service", func() error {
		status, reason := c.readiness(bad)
		if status == 200 {
			return fmt.Errorf("%s is ready", bad.ID)
		}
		if !strings.Contains(reason, "digest differs from a majority") {
			return fmt.Errorf("%s not ready for another reason: %s", bad.ID, reason)
		}
		return nil
	})
	for _, consistency := range []string{"stale", "linearizable"} {
		if s, status, _ := c.Stats(bad.HTTPURL, consistency); status == 200 {
			t.Fatalf("%s read on the diverged member answered %+v", consistency, s)
		}
	}
	if v, err := c.Metric(leader, "buytracker_digest_mismatches"); err != nil || v < 1 {
		t.Errorf("the leader's buytracker_digest_mismatches = %v (%v), want at least 1", v, err)
	}
	for i := range 5 {
		if ans, err := c.Buy(t.Context(), leader.HTTPURL, "", 100+i); err != nil || ans.Status != 201 {
			t.Fatalf("purchase %d after the divergence: %+v %v", i, ans, err)
		}
	}
	for _, n := range c.Followers(leader) {
		if n == bad {
			continue
		}
		s, status, err := c.Stats(n.HTTPURL, "linearizable")
		if err != nil || status != 200 || s.TotalBuys != 15 {
			t.Fatalf("healthy %s: %+v %d %v, want 15 purchases", n.ID, s, status, err)
		}
	}
}
