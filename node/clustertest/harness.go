// Package clustertest runs clusters of real buytracker-node processes on
// 127.0.0.1 for end-to-end tests of the node: real Raft over TCP, bbolt on
// disk, SIGKILL for crashes.
package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/testhook"
)

// Binary builds the node binary once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "buytracker-node-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "buytracker-node")
		// The testhooks tag lets a test shift one node's clock (SetClock)
		// without touching the machine's.
		cmd := exec.Command("go", "build", "-tags", "testhooks", "-o", builtBin, "github.com/buytracker/buytracker/node/cmd/buytracker-node")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("build node binary: %v", buildErr)
	}
	return builtBin
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// Cluster is a set of node processes sharing an admin token.
type Cluster struct {
	t     testing.TB
	dir   string
	bin   string
	token string
	// ExtraFlags are passed to every node started after they are set.
	ExtraFlags []string
	mu         sync.Mutex
	nodes      map[string]*Node
	initial    string
	client     *http.Client
	// ca issues the members' certificates; nil when the cluster runs on
	// plain TCP (StartPlain).
	ca *clusterCA
}

// Node is one node process.
type Node struct {
	ID       string
	HTTPURL  string
	AdminURL string
	RaftAddr string
	httpAddr string
	admAddr  string
	dataDir  string
	logPath  string
	initial  bool
	cmd      *exec.Cmd
	// exited is closed when the current process ends; writers running
	// beside a restart read it, so it is swapped atomically.
	exited atomic.Pointer[chan struct{}]
	// stopped is set when the test stopped or killed the node on purpose.
	stopped bool
	// paused is set while the node is stopped with SIGSTOP.
	paused bool
	// Env is added to the node's environment at its next start (test
	// hooks, node/testhook).
	Env []string
}

// Start starts an initial cluster of n nodes named n1..nN and waits for a
// ready leader.
func Start(t testing.TB, n int, extraFlags ...string) *Cluster {
	t.Helper()
	return startWith(t, n, nil, extraFlags)
}

// StartSome lays out an initial cluster of n nodes named n1..nN but starts
// only the ones named; the others can be started later with Restart. It does
// not wait for a leader.
func StartSome(t testing.TB, n int, ids ...string) *Cluster {
	t.Helper()
	c := newCluster(t, n, nil, nil)
	for _, id := range ids {
		node := c.Node(id)
		if node == nil {
			t.Fatalf("StartSome: no node %s among %d", id, n)
		}
		node.start(c)
	}
	for _, node := range c.Nodes() {
		if node.cmd == nil {
			node.stopped = true
		}
	}
	return c
}

// StartPlain is Start without --tls-dir: members talk plain TCP, as a node
// run for local development without certificates does.
func StartPlain(t testing.TB, n int, extraFlags ...string) *Cluster {
	t.Helper()
	c := newClusterWith(t, n, nil, extraFlags, false)
	for _, node := range c.Nodes() {
		node.start(c)
	}
	c.WaitLeader(30 * time.Second)
	return c
}

func startWith(t testing.TB, n int, dataDir func(id string) string, extraFlags []string) *Cluster {
	t.Helper()
	c := newCluster(t, n, dataDir, extraFlags)
	for _, node := range c.Nodes() {
		node.start(c)
	}
	c.WaitLeader(30 * time.Second)
	return c
}

func newCluster(t testing.TB, n int, dataDir func(id string) string, extraFlags []string) *Cluster {
	return newClusterWith(t, n, dataDir, extraFlags, true)
}

func newClusterWith(t testing.TB, n int, dataDir func(id string) string, extraFlags []string, withTLS bool) *Cluster {
	c := &Cluster{
		t: t, dir: t.TempDir(), bin: Binary(t), token: "test-token",
		ExtraFlags: extraFlags, nodes: map[string]*Node{},
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	if withTLS {
		c.ca = newClusterCA(t, filepath.Join(c.dir, "tls"))
	}
	var parts []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		node := c.newNode(id, true)
		if dataDir != nil {
			node.dataDir = dataDir(id)
		}
		parts = append(parts, id+"="+node.RaftAddr)
	}
	c.initial = strings.Join(parts, ",")
	// Written once: a node reading it while another start rewrote it would
	// see an empty token.
	if err := os.WriteFile(filepath.Join(c.dir, "token"), []byte(c.token), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "client-auth.json"), []byte(clientAuthFile), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stopAll)
	return c
}

// freeAddr returns a 127.0.0.1 address that could be bound a moment ago.
// Ports come from below Linux's ephemeral range (32768 and up), so that an
// outgoing connection cannot take a port between this check and the node's
// bind; a process-wide set keeps two nodes from getting the same one.
func freeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsTaken[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		portsTaken[port] = true
		return addr
	}
	t.Fatal("no free port found below the ephemeral range")
	return ""
}

var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{}
)

func (c *Cluster) newNode(id string, initial bool) *Node {
	n := &Node{
		ID: id, RaftAddr: freeAddr(c.t), httpAddr: freeAddr(c.t), admAddr: freeAddr(c.t),
		dataDir: filepath.Join(c.dir, id), logPath: filepath.Join(c.dir, id+".log"), initial: initial,
	}
	n.HTTPURL, n.AdminURL = "http://"+n.httpAddr, "http://"+n.admAddr
	if c.ca != nil {
		n.AdminURL = "https://" + n.admAddr
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

// AddNode starts a node that is not in the initial cluster; it waits to be
// added through the admin API.
func (c *Cluster) AddNode(id string) *Node {
	n := c.newNode(id, false)
	n.start(c)
	return n
}

func (n *Node) start(c *Cluster) {
	tokenFile := filepath.Join(c.dir, "token")
	args := []string{
		"--id=" + n.ID, "--data-dir=" + n.dataDir,
		"--http-addr=" + n.httpAddr, "--admin-addr=" + n.admAddr, "--raft-addr=" + n.RaftAddr,
		"--admin-token-file=" + tokenFile, "--client-auth-file=" + filepath.Join(c.dir, "client-auth.json"),
		"--heartbeat-timeout=500ms", "--election-timeout=500ms",
	}
	if n.initial {
		args = append(args, "--initial-cluster="+c.initial)
	}
	if c.ca != nil {
		args = append(args, "--tls-dir="+c.ca.issue(c.t, n.ID))
	}
	args = append(args, c.ExtraFlags...)
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	n.cmd = exec.Command(c.bin, args...)
	n.cmd.Env = append(append(os.Environ(),
		testhook.ClockOffsetFileEnv+"="+c.clockFile(n), testhook.DiskFaultFileEnv+"="+c.diskFaultFile(n)), n.Env...)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	if err := n.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", n.ID, err)
	}
	exited := make(chan struct{})
	n.exited.Store(&exited)
	cmd := n.cmd
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
}

// Kill stops a node with SIGKILL: a crash.
func (c *Cluster) Kill(n *Node) {
	c.t.Helper()
	n.stopped = true
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-*n.exited.Load()
}

// Stop stops a node with SIGTERM and waits for a clean exit.
func (c *Cluster) Stop(n *Node) {
	c.t.Helper()
	n.stopped = true
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-*n.exited.Load():
		if code := n.cmd.ProcessState.ExitCode(); code != 0 {
			c.t.Errorf("%s exited with %d after SIGTERM; log:\n%s", n.ID, code, c.Log(n))
		}
	case <-time.After(30 * time.Second):
		c.t.Errorf("%s did not stop within 30s of SIGTERM", n.ID)
		c.Kill(n)
	}
}

// Restart starts a stopped or killed node again with the same data dir.
func (c *Cluster) Restart(n *Node) {
	n.stopped = false
	n.start(c)
}

// Running reports whether the node's process is alive.
func (n *Node) Running() bool {
	if n.exited.Load() == nil {
		return false
	}
	select {
	case <-*n.exited.Load():
		return false
	default:
		return true
	}
}

func (c *Cluster) stopAll() {
	for _, n := range c.Nodes() {
		if n.Running() {
			_ = n.cmd.Process.Signal(syscall.SIGKILL)
			<-*n.exited.Load()
		}
	}
	if c.t.Failed() {
		for _, n := range c.Nodes() {
			c.t.Logf("--- log of %s (last 40 lines) ---\n%s", n.ID, tail(c.Log(n), 40))
		}
	}
}

// Log returns a node's log so far.
func (c *Cluster) Log(n *Node) string {
	raw, _ := os.ReadFile(n.logPath)
	return string(raw)
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// Nodes returns every node, running or not, ordered by id.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Node, 0, len(c.nodes))
	for i := 1; i <= 99 && len(out) < len(c.nodes); i++ {
		if n, ok := c.nodes[fmt.Sprintf("n%d", i)]; ok {
			out = append(out, n)
		}
	}
	return out
}

// Node returns a node by id.
func (c *Cluster) Node(id string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Admin returns an admin client for n.
func (c *Cluster) Admin(n *Node) *adminapi.Client {
	cl, err := adminapi.NewClient(n.AdminURL, c.token, c.AdminHTTPClient())
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// AdminHTTPClient is an HTTP client for the nodes' admin APIs: it trusts
// the cluster's CA when the members run with TLS.
func (c *Cluster) AdminHTTPClient() *http.Client {
	if c.ca == nil {
		return nil
	}
	return c.ca.adminHTTPClient()
}

// TokenFile is the file holding the nodes' admin token.
func (c *Cluster) TokenFile() string { return filepath.Join(c.dir, "token") }

// CAFile writes the PEM of the CA the members' certificates chain to and
// returns its path; empty when the cluster runs without TLS.
func (c *Cluster) CAFile() string {
	c.t.Helper()
	if c.ca == nil {
		return ""
	}
	path := filepath.Join(c.dir, "ca.crt")
	if err := os.WriteFile(path, c.ca.certPEM, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// Eventually polls cond until it returns nil or timeout passes, then fails
// the test with the last error.
func (c *Cluster) Eventually(timeout time.Duration, what string, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not true within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitLeader waits until every running node is ready and agrees on a
// leader, and returns the leader.
func (c *Cluster) WaitLeader(timeout time.Duration) *Node {
	c.t.Helper()
	var leader *Node
	c.Eventually(timeout, "a leader every running node agrees on", func() error {
		leader = nil
		var leaderID string
		for _, n := range c.Nodes() {
			if !n.Running() {
				if !n.stopped {
					c.t.Fatalf("%s exited on its own; log:\n%s", n.ID, tail(c.Log(n), 40))
				}
				continue
			}
			var ready struct {
				Leader string `json:"leader"`
			}
			if status, err := c.GetJSON(n.HTTPURL+"/ready", &ready); err != nil || status != 200 {
				return fmt.Errorf("%s not ready (status %d, %v)", n.ID, status, err)
			}
			if leaderID != "" && ready.Leader != leaderID {
				return fmt.Errorf("nodes disagree on the leader: %s and %s", leaderID, ready.Leader)
			}
			leaderID = ready.Leader
		}
		leader = c.Node(leaderID)
		if leader == nil || !leader.Running() {
			return fmt.Errorf("leader %q is not a running node", leaderID)
		}
		return nil
	})
	return leader
}

// Followers returns the running nodes other than leader.
func (c *Cluster) Followers(leader *Node) []*Node {
	var out []*Node
	for _, n := range c.Nodes() {
		if n != leader && n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// BuyAnswer is a POST /buy answer.
type BuyAnswer struct {
	Status     int
	PurchaseID uint64 `json:"purchase_id"`
	TotalBuys  uint64 `json:"total_buys"`
	RecordedAt string `json:"recorded_at"`
	Index      uint64 `json:"index"`
	Replayed   bool
}

// Buy sends one purchase to baseURL, with an Idempotency-Key when key is set.
func (c *Cluster) Buy(ctx context.Context, baseURL, key string, userID int) (BuyAnswer, error) {
	body := fmt.Sprintf(`{"user_id":%d,"promotion_id":1,"product_id":2,"product_amount":"1.25"}`, userID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/buy", strings.NewReader(body))
	if err != nil {
		return BuyAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return BuyAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return BuyAnswer{}, err
	}
	a := BuyAnswer{Status: resp.StatusCode, Replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(raw, &a); err != nil {
			return a, fmt.Errorf("decode buy answer %q: %w", raw, err)
		}
	}
	return a, nil
}

// Stats is a GET /stats answer.
type Stats struct {
	TotalBuys   uint64 `json:"total_buys"`
	Index       uint64 `json:"index"`
	ServedBy    string `json:"served_by"`
	Leader      string `json:"leader"`
	Consistency string `json:"consistency"`
}

// Stats reads /stats from baseURL at the given consistency.
func (c *Cluster) Stats(baseURL, consistency string) (Stats, int, error) {
	var s Stats
	status, err := c.GetJSON(baseURL+"/stats?consistency="+consistency, &s)
	return s, status, err
}

// Purchase is one record of GET /buys.
type Purchase struct {
	PurchaseID     uint64 `json:"purchase_id"`
	UserID         int64  `json:"user_id"`
	RecordedAt     string `json:"recorded_at"`
	Index          uint64 `json:"index"`
	IdempotencyKey string `json:"idempotency_key"`
}

// AllPurchases pages through GET /buys on baseURL.
func (c *Cluster) AllPurchases(baseURL, consistency string) ([]Purchase, error) {
	var out []Purchase
	after := uint64(0)
	for {
		var page struct {
			Purchases []Purchase `json:"purchases"`
			NextAfter uint64     `json:"next_after"`
		}
		status, err := c.GetJSON(fmt.Sprintf("%s/buys?after=%d&limit=1000&consistency=%s", baseURL, after, consistency), &page)
		if err != nil || status != 200 {
			return nil, fmt.Errorf("GET /buys after %d: status %d, %v", after, status, err)
		}
		if len(page.Purchases) == 0 {
			return out, nil
		}
		out = append(out, page.Purchases...)
		after = page.NextAfter
	}
}

// ExportToken is the client token with the export role (GET /buys) that
// every node of a Cluster accepts.
const ExportToken = "clustertest-export-token"

// WriteToken is the client token with the write role (POST /buy), for
// nodes that require tokens everywhere; Buy sends none.
const WriteToken = "clustertest-write-token"

const clientAuthFile = `{"tokens": [
	{"name": "clustertest", "token": "` + ExportToken + `", "roles": ["export"]},
	{"name": "clustertest-writer", "token": "` + WriteToken + `", "roles": ["write"]}]}`

// GetJSON GETs url, with the export token, and decodes a 2xx JSON answer
// into v.
func (c *Cluster) GetJSON(url string, v any) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+ExportToken)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s: %d %s", url, resp.StatusCode, bytes.TrimSpace(raw))
	}
	return resp.StatusCode, json.Unmarshal(raw, v)
}

// Metric returns the value of an unlabelled Prometheus sample on n.
func (c *Cluster) Metric(n *Node, name string) (float64, error) {
	resp, err := c.client.Get(n.HTTPURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			return v, err
		}
	}
	return 0, fmt.Errorf("metric %s not found on %s", name, n.ID)
}

// Pause stops a node's process with SIGSTOP: a frozen process (a long GC
// pause, a stalled VM) whose sockets stay open.
func (c *Cluster) Pause(n *Node) {
	c.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatalf("pause %s: %v", n.ID, err)
	}
	n.paused = true
	c.t.Cleanup(func() {
		if n.paused && n.Running() {
			_ = n.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
}

// Resume continues a paused node with SIGCONT.
func (c *Cluster) Resume(n *Node) {
	c.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatalf("resume %s: %v", n.ID, err)
	}
	n.paused = false
}

// WipeData removes a stopped node's data dir: a lost volume.
func (c *Cluster) WipeData(n *Node) {
	c.t.Helper()
	if n.Running() {
		c.t.Fatalf("wipe %s: the node is running", n.ID)
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		c.t.Fatalf("wipe %s: %v", n.ID, err)
	}
}

// DataDir is the node's data directory.
func (n *Node) DataDir() string { return n.dataDir }

// StartOnce starts a stopped node and waits for its process to exit on its
// own, returning its exit code and log: for nodes that must refuse to start.
func (c *Cluster) StartOnce(n *Node, timeout time.Duration) (int, string) {
	c.t.Helper()
	c.Restart(n)
	select {
	case <-*n.exited.Load():
		n.stopped = true
		return n.cmd.ProcessState.ExitCode(), c.Log(n)
	case <-time.After(timeout):
		c.Kill(n)
		c.t.Fatalf("%s kept running for %v; it should have refused to start. Log:\n%s", n.ID, timeout, tail(c.Log(n), 20))
		return 0, ""
	}
}

// --- Data dirs placed by the test ---

// StartWithDataDirs is Start with each node's data dir at dataDir(id), for
// example on a small file system the test mounted.
func StartWithDataDirs(t testing.TB, n int, dataDir func(id string) string, extraFlags ...string) *Cluster {
	t.Helper()
	return startWith(t, n, dataDir, extraFlags)
}

// --- Clocks ---

func (c *Cluster) clockFile(n *Node) string { return filepath.Join(c.dir, n.ID+".clock") }

// SetClock shifts a node's wall clock by offset from now on (the node
// re-reads it within a fraction of a second); the machine's clock is never
// touched.
func (c *Cluster) SetClock(n *Node, offset time.Duration) {
	c.t.Helper()
	if err := os.WriteFile(c.clockFile(n), []byte(offset.String()), 0o600); err != nil {
		c.t.Fatalf("set the clock of %s: %v", n.ID, err)
	}
}

// --- Disk faults ---

func (c *Cluster) diskFaultFile(n *Node) string { return filepath.Join(c.dir, n.ID+".disk-fault") }

// SetDiskFault makes the writes to a node's Raft log store fail from now on
// (the node re-reads it within a fraction of a second): "write" fails them
// before anything is written, "fsync" after the entries reached bbolt, ""
// ends the fault.
func (c *Cluster) SetDiskFault(n *Node, mode string) {
	c.t.Helper()
	if err := os.WriteFile(c.diskFaultFile(n), []byte(mode), 0o600); err != nil {
		c.t.Fatalf("set the disk fault of %s: %v", n.ID, err)
	}
}
