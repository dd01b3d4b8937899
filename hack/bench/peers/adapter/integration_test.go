//go:build integration

// Tests of each backend against its real server, started by the test:
//
//	ETCD_BIN=$(hack/build-k8s-assets.sh -q etcd)/etcd go -C hack test -tags integration ./bench/peers/adapter/
//
// They need etcd (ETCD_BIN), redis-server and PostgreSQL's initdb and
// pg_ctl (PG_BIN, or Debian's /usr/lib/postgresql/*/bin), and fail, not
// skip, when one is missing. hack/bench/peers/run.sh runs them before it
// measures anything.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServer runs a server process until the test ends.
func startServer(t *testing.T, name string, cmd *exec.Cmd) {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("%s log:\n%s", name, out)
		}
	})
}

// openWithin retries open until it succeeds or 20 s pass: servers take a
// moment to listen.
func openWithin[B backend](t *testing.T, open func(context.Context) (B, error)) B {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		b, err := open(ctx)
		cancel()
		if err == nil {
			t.Cleanup(b.close)
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend not reachable after 20s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// buyConcurrently makes workers×each buys spread over the backends, and
// checks that the ids handed out are exactly 1..n, each once, and so are the
// totals. (PostgreSQL's ids come from a sequence at INSERT, its totals from
// the counter row in lock order, so one purchase's two need not match.)
func buyConcurrently(t *testing.T, backends []backend, workers, each int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var ids, totals []int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			b := backends[w%len(backends)]
			for i := range each {
				p := syntheticPurchase(int64(w*each + i))
				rec, err := b.buy(ctx, p, time.Now())
				if err != nil {
					t.Errorf("worker %d buy %d: %v", w, i, err)
					return
				}
				mu.Lock()
				ids = append(ids, rec.PurchaseID)
				totals = append(totals, rec.TotalBuys)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for name, got := range map[string][]int64{"purchase ids": ids, "totals": totals} {
		if len(got) != workers*each {
			t.Fatalf("%d %s for %d buys", len(got), name, workers*each)
		}
		slices.Sort(got)
		for i, v := range got {
			if v != int64(i+1) {
				t.Fatalf("%s sorted: position %d holds %d (want 1..%d, each once)", name, i, v, workers*each)
			}
		}
	}
}

// checkStats asks for the last hour's counts, and, when the backend takes
// its clock from the adapter (not PostgreSQL, whose NOW() is the server's),
// for the hour before a moment two hours from now: every buy is older.
func checkStats(t *testing.T, b backend, wantTotal int64) {
	t.Helper()
	ctx := context.Background()
	c, err := b.stats(ctx, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.TotalBuys != wantTotal || c.RecentBuys != wantTotal {
		t.Errorf("stats over the last hour = %+v, want total and recent %d", c, wantTotal)
	}
	if _, serverClock := b.(*postgresBackend); serverClock {
		return
	}
	if c, err := b.stats(ctx, time.Hour, time.Now().Add(2*time.Hour)); err != nil || c.TotalBuys != wantTotal || c.RecentBuys != 0 {
		t.Errorf("stats of a window that begins after the buys = %+v, %v; want total %d, recent 0", c, err, wantTotal)
	}
}

func TestEtcdCompareAndSwapHandsOutEveryIDOnce(t *testing.T) {
	bin := os.Getenv("ETCD_BIN")
	if bin == "" {
		t.Fatal("ETCD_BIN is not set: ETCD_BIN=$(hack/build-k8s-assets.sh -q etcd)/etcd")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("ETCD_BIN=%s: %v (build it with hack/build-k8s-assets.sh etcd)", bin, err)
	}
	client, peer := freePort(t), freePort(t)
	clientURL, peerURL := fmt.Sprintf("http://127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
	startServer(t, "etcd", exec.Command(bin, "--name=t1", "--data-dir="+t.TempDir(),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=t1="+peerURL, "--log-level=warn"))
	open := func(ctx context.Context) (*etcdBackend, error) { return newEtcdBackend(ctx, []string{clientURL}) }
	// Two adapters on one etcd: only the compare-and-swap keeps them apart.
	a, b := openWithin(t, open), openWithin(t, open)

	buyConcurrently(t, []backend{a, b}, 16, 20)
	attempts, successes := a.attempts()
	attemptsB, successesB := b.attempts()
	if successes+successesB != 320 || attempts < successes || attemptsB < successesB {
		t.Errorf("attempts %d+%d, successes %d+%d; want 320 successes, never more than the attempts", attempts, attemptsB, successes, successesB)
	}
	checkStats(t, a, 320)

	if done, err := a.preload(context.Background(), 1000, time.Now()); err != nil || done != 1000 {
		t.Fatalf("preload = %d, %v", done, err)
	}
	checkStats(t, b, 1320)
	// b's guess is stale since the preload: its next buy must still get 1321.
	if rec, err := b.buy(context.Background(), syntheticPurchase(1), time.Now()); err != nil || rec.PurchaseID != 1321 {
		t.Errorf("buy after the preload = %+v, %v; want purchase 1321", rec, err)
	}
}

func TestRedisScriptHandsOutEveryIDOnce(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: apt-get install -y redis-server")
	}
	port := freePort(t)
	startServer(t, "redis", exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--appendonly", "yes", "--appendfsync", "always", "--save", ""))
	b := openWithin(t, func(ctx context.Context) (*redisBackend, error) {
		return newRedisBackend(ctx, fmt.Sprintf("127.0.0.1:%d", port), 8)
	})
	buyConcurrently(t, []backend{b}, 16, 20)
	checkStats(t, b, 320)
	if done, err := b.preload(context.Background(), 25_000, time.Now()); err != nil || done != 25_000 {
		t.Fatalf("preload = %d, %v", done, err)
	}
	checkStats(t, b, 25_320)
}

// postgresBin finds initdb and pg_ctl: PG_BIN, else Debian's newest.
func postgresBin(t *testing.T) string {
	if dir := os.Getenv("PG_BIN"); dir != "" {
		return dir
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Sort(dirs)
	if len(dirs) == 0 {
		t.Fatal("PostgreSQL not found (set PG_BIN, or apt-get install -y postgresql)")
	}
	return dirs[len(dirs)-1]
}

func TestPostgresTransactionHandsOutEveryIDOnce(t *testing.T) {
	bin := postgresBin(t)
	dir := t.TempDir()
	// PostgreSQL refuses to run as root: run it as the postgres user then.
	asServer := func(name string, args ...string) *exec.Cmd {
		if os.Geteuid() != 0 {
			return exec.Command(filepath.Join(bin, name), args...)
		}
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root and no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for d := dir; d != filepath.Dir(os.TempDir()); d = filepath.Dir(d) {
			_ = os.Chmod(d, 0o755) // t.TempDir()'s parents are 0700
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := asServer("initdb", "-D", data, "-U", "bench", "--auth=trust", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := freePort(t)
	startServer(t, "postgres", asServer("postgres", "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "synchronous_commit=on"))
	b := openWithin(t, func(ctx context.Context) (*postgresBackend, error) {
		return newPostgresBackend(ctx, fmt.Sprintf("postgres://bench@127.0.0.1:%d/postgres", port), 8)
	})
	buyConcurrently(t, []backend{b}, 16, 20)
	checkStats(t, b, 320)
	if done, err := b.preload(context.Background(), 60_000, time.Now()); err != nil || done != 60_000 {
		t.Fatalf("preload = %d, %v", done, err)
	}
	checkStats(t, b, 60_320)
}
