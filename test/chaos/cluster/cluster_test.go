package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/test/chaos/netns"
)

// nodeBin is the node binary TestMain builds once.
var nodeBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "chaos-cluster-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	nodeBin = filepath.Join(dir, "buytracker-node")
	build := exec.Command("go", "build", "-tags", "testhooks", "-o", nodeBin, "github.com/buytracker/buytracker/node/cmd/buytracker-node")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the node binary:", err)
		return 1
	}
	return m.Run()
}

// startCluster starts a cluster in a network of its own; both are removed
// at the test's end, and the nodes' logs printed when it failed.
func startCluster(t *testing.T, cfg Config) (*Cluster, *netns.Network) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("chaos cluster tests need root: nodes run in network namespaces with tmpfs data dirs (run as root, as CI does)")
	}
	cfg.Bin, cfg.Dir, cfg.Logf = nodeBin, t.TempDir(), t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	net, err := netns.New(ctx, netns.PIDPrefix("btc"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := net.Close(); err != nil {
			t.Errorf("close the network: %v", err)
		}
	})
	c, err := Start(ctx, net, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes() {
				raw, _ := os.ReadFile(c.LogPath(n))
				lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
				t.Logf("--- %s (last 30 lines) ---\n%s", n.ID, strings.Join(lines[max(0, len(lines)-30):], "\n"))
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("close the cluster: %v", err)
		}
	})
	return c, net
}

// within returns a context that ends after d, cancelled at the test's end.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// buy posts one purchase with an Idempotency-Key and returns the status.
func buy(t *testing.T, c *Cluster, n *Node, key string) int {
	t.Helper()
	body := `{"user_id":1,"promotion_id":1,"product_id":2,"product_amount":"1.25"}`
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.HTTPURL+"/buy", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// awaitLeader polls Leader until pick accepts the leader or ctx ends.
func awaitLeader(t *testing.T, ctx context.Context, c *Cluster, pick func(*Node) bool) *Node {
	t.Helper()
	for {
		l, err := c.Leader(ctx)
		if err == nil && pick(l) {
			return l
		}
		if ctx.Err() != nil {
			t.Fatalf("no fitting leader in time: last %v, %v", l, err)
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// followers returns the running members other than leader.
func followers(c *Cluster, leader *Node) []*Node {
	var out []*Node
	for _, n := range c.members() {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// assertExports checks that every running member exports exactly the keys
// in want (every acknowledged purchase, nothing else).
func assertExports(t *testing.T, c *Cluster, want []string) {
	t.Helper()
	ctx := within(t, 30*time.Second)
	for _, n := range c.members() {
		recs, err := c.Export(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, r := range recs {
			got[r.IdempotencyKey] = true
		}
		for _, k := range want {
			if !got[k] {
				t.Errorf("%s: acknowledged purchase %s missing from its export of %d", n.ID, k, len(recs))
			}
		}
		if len(recs) != len(want) {
			t.Errorf("%s: %d records, want %d", n.ID, len(recs), len(want))
		}
	}
}
