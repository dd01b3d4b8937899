package nemesis

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/test/chaos/cluster"
	"github.com/buytracker/buytracker/test/chaos/history"
	"github.com/buytracker/buytracker/test/chaos/netns"
)

// TestEveryKindAppliesAndHeals runs one step of every fault class against
// three members and a spare in network namespaces, and checks that each
// healed cluster converges with the purchase made before it on every
// member.
func TestEveryKindAppliesAndHeals(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: network namespaces, iptables and tmpfs mounts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "buytracker-node")
	if out, err := exec.Command("go", "build", "-tags", "testhooks", "-o", bin, "github.com/buytracker/buytracker/node/cmd/buytracker-node").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	net, err := netns.New(ctx, netns.PIDPrefix("btn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = net.Close() })
	c, err := cluster.Start(ctx, net, cluster.Config{Bin: bin, Dir: dir, Members: 3, Spares: 1, DiskBytes: 64 << 20,
		ExtraFlags: []string{"--snapshot-threshold=64", "--trailing-logs=16", "--min-free-disk=8Mi"}, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes() {
				raw, _ := os.ReadFile(c.LogPath(n))
				lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
				t.Logf("--- %s (last 15 lines) ---\n%s", n.ID, strings.Join(lines[max(0, len(lines)-15):], "\n"))
			}
		}
		_ = c.Close()
	})
	nodes := c.Nodes()
	start := time.Now()
	r := &Runner{Net: net, Cluster: c, Members: nodes[:3], Spare: nodes[3],
		Since: func() time.Duration { return time.Since(start) }, Logf: t.Logf, ConvergeTimeout: time.Minute}
	// Twice through the list, so the membership change both adds and
	// removes the spare.
	kinds := append(append([]Kind(nil), AllKinds...), MembershipChange)
	for i, kind := range kinds {
		key := fmt.Sprintf("before-%d-%s", i, kind)
		buy(ctx, t, c, key)
		step := Step{N: i + 1, Kind: kind, Pick: i, Hold: 1500 * time.Millisecond, Gap: 0}
		if kind == ClockSkew {
			step.ClockOffsets = []time.Duration{0, 3 * time.Second, 0}
		}
		if kind == Compound {
			step.Parts = []Kind{PartitionLeaderMinority, KillFollower}
		}
		applied, err := r.Run(ctx, Schedule{Steps: []Step{step}})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if len(applied) != 1 || len(applied[0].Targets) == 0 {
			t.Fatalf("%s: applied %+v, want one step with its targets", kind, applied)
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		err = c.AwaitConverged(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("after %s: %v", kind, err)
		}
		members := r.members()
		for _, m := range members {
			recs, err := c.Export(ctx, m)
			if err != nil {
				t.Fatalf("after %s: export of %s: %v", kind, m.ID, err)
			}
			if !hasKey(recs, key) {
				t.Fatalf("after %s: %s has no purchase %s (%d records)", kind, m.ID, key, len(recs))
			}
		}
	}
	if len(c.Crashed()) > 0 {
		t.Fatalf("nodes exited on their own: %v", c.Crashed())
	}
}

// buy records one purchase with key through any node, retrying until it is
// acknowledged.
func buy(ctx context.Context, t *testing.T, c *cluster.Cluster, key string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; ; attempt++ {
		n := c.Nodes()[attempt%3]
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.HTTPURL+"/buy",
			strings.NewReader(`{"user_id":1,"promotion_id":1,"product_id":1,"product_amount":"1.00"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := c.HTTPClient().Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("purchase %s not acknowledged within a minute (last: %v %v)", key, resp, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func hasKey(recs []history.Record, key string) bool {
	for _, r := range recs {
		if r.IdempotencyKey == key {
			return true
		}
	}
	return false
}
