package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Scenario 5 of issue 10: a node's data dir fills up. Every node's data dir
// is on its own small tmpfs, so every member fills at about the same time,
// as they do in a real cluster whose volumes are all the same size.

// TestFullDiskAnswers507AndRecovers: with a free-space watermark, purchases
// are refused with 507 before the disk is full, nothing refused is recorded,
// nothing acknowledged is lost, no node exits, /ready says why, and writes
// come back by themselves once the disk grows.
func TestFullDiskAnswers507AndRecovers(t *testing.T) {
	disks := mountDisks(t, 3, "20m")
	c := StartWithDataDirs(t, 3, func(id string) string { return filepath.Join(disks[id], "data") }, "--min-free-disk=6Mi")
	w := newDiskWriter(c)

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	w.run(ctx, 8, func() bool { return w.counts().refused >= 50 })
	if got := w.counts(); got.refused < 50 {
		t.Fatalf("no 507 seen after %d acknowledged purchases (%d other answers)", got.acked, got.other)
	}
	t.Logf("before the watermark: %+v", w.counts())
	c.requireAllRunning()

	pressured := 0
	for _, n := range c.Nodes() {
		status, reason := c.readiness(n)
		if !strings.Contains(reason, "disk pressure") {
			continue
		}
		pressured++
		if status != http.StatusServiceUnavailable {
			t.Errorf("%s reports %q with status %d, want 503", n.ID, reason, status)
		}
		if v, err := c.Metric(n, "buytracker_disk_pressure"); err != nil || v != 1 {
			t.Errorf("%s: buytracker_disk_pressure = %v (%v), want 1", n.ID, v, err)
		}
		st, err := c.Admin(n).Status(t.Context())
		if err != nil || !st.DiskPressure || st.DiskFreeBytes >= 6<<20 || st.DiskTotalBytes != 20<<20 {
			t.Errorf("%s: status %+v (%v), want disk pressure with under 6 MiB free of 20 MiB", n.ID, st, err)
		}
	}
	if pressured == 0 {
		t.Fatal("507s were answered but no node's /ready reports disk pressure")
	}

	// Reads and retries of recorded purchases keep working under pressure.
	key, first := w.anyAcked()
	for _, n := range c.Nodes() {
		again, err := c.Buy(t.Context(), n.HTTPURL, key, first.userID)
		if err != nil || again.Status != 201 || !again.Replayed || again.PurchaseID != first.PurchaseID {
			t.Fatalf("retry of acknowledged %s through %s under disk pressure: %+v %v; want the first answer %+v",
				key, n.ID, again, err, first.BuyAnswer)
		}
	}
	w.checkEverywhere(t, "linearizable")

	for id, dir := range disks {
		remount(t, dir, "200m")
		t.Logf("grew %s's disk to 200 MiB", id)
	}
	// The nodes notice by themselves: no restart.
	c.Eventually(30*time.Second, "every node takes purchases again", func() error {
		for _, n := range c.Nodes() {
			if a, err := w.buy(t.Context(), n.HTTPURL); err != nil || a.Status != 201 {
				return fmt.Errorf("%s answered %d (%v)", n.ID, a.Status, err)
			}
		}
		return nil
	})
	c.WaitLeader(30 * time.Second)
	for _, n := range c.Nodes() {
		if v, err := c.Metric(n, "buytracker_disk_pressure"); err != nil || v != 0 {
			t.Errorf("%s: buytracker_disk_pressure = %v (%v) after the disk grew, want 0", n.ID, v, err)
		}
	}
	c.requireAllRunning()
	w.checkEverywhere(t, "linearizable")
}

// TestDiskFilledWithoutWatermarkNeitherPanicsNorLoses: with no watermark the
// leader's disk really fills (the layout: only its data dir is on a
// small disk). The cluster goes on without it; write errors make no node
// exit while it keeps trying to catch up, nothing acknowledged is lost, and
// it catches up once its disk grows.
func TestDiskFilledWithoutWatermarkNeitherPanicsNorLoses(t *testing.T) {
	disks := mountDisks(t, 3, "200m")
	remount(t, disks["n1"], "20m")
	c := StartWithDataDirs(t, 3, func(id string) string { return filepath.Join(disks[id], "data") },
		"--min-free-disk=0", "--snapshot-threshold=1024", "--trailing-logs=512", "--snapshot-interval=1s")
	small := c.Node("n1")
	if leader := c.WaitLeader(10 * time.Second); leader != small {
		if _, err := c.Admin(leader).TransferLeadership(t.Context(), small.ID); err != nil {
			t.Fatalf("move leadership to %s: %v", small.ID, err)
		}
		if leader := c.WaitLeader(20 * time.Second); leader != small {
			t.Fatalf("leadership went to %s, not %s", leader.ID, small.ID)
		}
	}
	w := newDiskWriter(c)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	// Full: n1's disk has less than 1 MiB left. The others go on; keep
	// writing while n1 tries to catch up, which is when the node
	// panicked.
	ackedAtFull := -1
	w.run(ctx, 8, func() bool {
		got := w.counts()
		if ackedAtFull < 0 && minFree(map[string]string{"n1": disks["n1"]}) < 1<<20 {
			ackedAtFull = got.acked
		}
		return ackedAtFull >= 0 && got.acked >= ackedAtFull+5000
	})
	if ackedAtFull < 0 {
		t.Fatalf("n1's disk never filled: %+v", w.counts())
	}
	t.Logf("n1's disk full after %d acknowledged purchases; then %+v", ackedAtFull, w.counts())
	c.requireAllRunning()

	remount(t, disks["n1"], "200m")
	c.Eventually(60*time.Second, "every node takes purchases again", func() error {
		for _, n := range c.Nodes() {
			if a, err := w.buy(t.Context(), n.HTTPURL); err != nil || a.Status != 201 {
				return fmt.Errorf("%s answered %d (%v)", n.ID, a.Status, err)
			}
		}
		return nil
	})
	c.WaitLeader(60 * time.Second)
	c.requireAllRunning()
	w.checkEverywhere(t, "linearizable")
}

// mountDisks mounts one tmpfs of size per node n1..nN and unmounts them when
// the test ends, failed or not (after the nodes were stopped: cleanups run
// last-registered first, and the cluster registers its own later).
func mountDisks(t *testing.T, n int, size string) map[string]string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; CI runs these tests as root")
	}
	disks := map[string]string{}
	for i := 1; i <= n; i++ {
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
			t.Fatalf("mount a %s tmpfs at %s: %v: %s", size, dir, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Logf("umount %s: %v: %s; detaching it lazily", dir, err, out)
				_ = exec.Command("umount", "-l", dir).Run()
			}
		})
		disks[fmt.Sprintf("n%d", i)] = dir
	}
	return disks
}

func remount(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs at %s to %s: %v: %s", dir, size, err, out)
	}
}

func minFree(disks map[string]string) uint64 {
	least := ^uint64(0)
	for _, dir := range disks {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil {
			least = min(least, st.Bavail*uint64(st.Bsize))
		}
	}
	return least
}

// requireAllRunning fails the test when any node process has exited: a
// full disk must never stop a node.
func (c *Cluster) requireAllRunning() {
	c.t.Helper()
	for _, n := range c.Nodes() {
		if !n.Running() {
			c.t.Fatalf("%s exited; log:\n%s", n.ID, tail(c.Log(n), 40))
		}
	}
}

// readiness returns a node's /ready status and, when not ready, its reason.
func (c *Cluster) readiness(n *Node) (int, string) {
	resp, err := c.client.Get(n.HTTPURL + "/ready")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &body)
	return resp.StatusCode, body.Error.Message
}

// diskWriter sends purchases with long Idempotency-Keys (so that the disks
// fill in fewer requests) and remembers every answer.
type diskWriter struct {
	c       *Cluster
	mu      sync.Mutex
	next    int
	acked   map[string]ackedBuy
	refused map[string]bool // answered 507
	other   int             // 503, 504 and transport errors: outcome not asserted
}

type ackedBuy struct {
	BuyAnswer
	userID int
}

type writeCounts struct{ acked, refused, other int }

func newDiskWriter(c *Cluster) *diskWriter {
	return &diskWriter{c: c, acked: map[string]ackedBuy{}, refused: map[string]bool{}}
}

func (w *diskWriter) counts() writeCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return writeCounts{len(w.acked), len(w.refused), w.other}
}

func (w *diskWriter) anyAcked() (string, ackedBuy) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, a := range w.acked {
		return k, a
	}
	w.c.t.Fatal("no purchase was acknowledged")
	return "", ackedBuy{}
}

// buy sends one new purchase to baseURL and records its answer.
func (w *diskWriter) buy(ctx context.Context, baseURL string) (BuyAnswer, error) {
	w.mu.Lock()
	w.next++
	i := w.next
	w.mu.Unlock()
	key := fmt.Sprintf("disk-%08d-", i)
	key += strings.Repeat("k", 128-len(key))
	user := i%1000 + 1
	reqCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	a, err := w.c.Buy(reqCtx, baseURL, key, user)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil && a.Status == http.StatusCreated:
		w.acked[key] = ackedBuy{BuyAnswer: a, userID: user}
	case err == nil && a.Status == http.StatusInsufficientStorage:
		w.refused[key] = true
	default:
		w.other++
	}
	return a, err
}

// run sends purchases from workers goroutines, spread over every node, until
// done reports true or ctx ends.
func (w *diskWriter) run(ctx context.Context, workers int, done func() bool) {
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ctx.Err() == nil && !done(); i++ {
				nodes := w.c.Nodes()
				_, _ = w.buy(ctx, nodes[i%len(nodes)].HTTPURL)
			}
		}()
	}
	wg.Wait()
}

// checkEverywhere checks, on every node, that each acknowledged purchase is
// there with the id its client was told, that no refused one is, and that
// every node holds the same purchases.
func (w *diskWriter) checkEverywhere(t *testing.T, consistency string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var first map[string]uint64
	var firstID string
	for _, n := range w.c.Nodes() {
		var records []Purchase
		w.c.Eventually(30*time.Second, n.ID+" answers GET /buys", func() error {
			var err error
			records, err = w.c.AllPurchases(n.HTTPURL, consistency)
			return err
		})
		byKey := make(map[string]uint64, len(records))
		for i, r := range records {
			if r.PurchaseID != uint64(i+1) {
				t.Fatalf("%s: purchase ids not dense: %d at position %d", n.ID, r.PurchaseID, i)
			}
			if _, dup := byKey[r.IdempotencyKey]; dup {
				t.Fatalf("%s: key %s recorded twice", n.ID, r.IdempotencyKey)
			}
			byKey[r.IdempotencyKey] = r.PurchaseID
		}
		for key, a := range w.acked {
			id, ok := byKey[key]
			if !ok {
				t.Fatalf("%s lost acknowledged purchase %s (id %d)", n.ID, key, a.PurchaseID)
			}
			if id != a.PurchaseID {
				t.Fatalf("%s: %s has id %d, the client was told %d", n.ID, key, id, a.PurchaseID)
			}
		}
		for key := range w.refused {
			if id, ok := byKey[key]; ok {
				t.Fatalf("%s recorded purchase %s as id %d though it was answered 507", n.ID, key, id)
			}
		}
		if first == nil {
			first, firstID = byKey, n.ID
			continue
		}
		if len(byKey) != len(first) {
			t.Fatalf("%s holds %d purchases, %s holds %d", n.ID, len(byKey), firstID, len(first))
		}
		for key, id := range first {
			if byKey[key] != id {
				t.Fatalf("%s has %s as id %d, %s as id %d", n.ID, key, byKey[key], firstID, id)
			}
		}
	}
	t.Logf("every node holds the same %d purchases: %d acknowledged, %d refused with 507, %d with other answers",
		len(first), len(w.acked), len(w.refused), w.other)
}
