package peer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/pki"
)

// testCA is a cluster CA's PEM files.
type testCA struct{ cert, key []byte }

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	cert, key, err := pki.NewCA(name, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert, key}
}

// identity issues id a certificate of ca (CN=id, IP SAN 127.0.0.1, the
// given DNS SANs), writes it with the trusted CAs as ca.crt into a new
// directory and loads it, as a node does with --tls-dir.
func (ca testCA) identity(t *testing.T, id string, trusted []testCA, dnsNames ...string) *pki.Reloader {
	t.Helper()
	cert, key, err := pki.IssueMember(ca.cert, ca.key, id, dnsNames, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now().Add(12*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var bundle []byte
	for _, c := range trusted {
		bundle = append(bundle, c.cert...)
	}
	dir := t.TempDir()
	if err := pki.WriteDir(dir, bundle, cert, key); err != nil {
		t.Fatal(err)
	}
	r, err := pki.NewReloader(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// directory maps peer addresses to server IDs: every endpoint's ResolveID.
type directory struct {
	mu     sync.Mutex
	byAddr map[string]string
}

func (d *directory) set(addr, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.byAddr[addr] = id
}

func (d *directory) lookup(addr string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.byAddr[addr]
	return id, ok
}

// testNet builds endpoints that know each other, with or without TLS.
type testNet struct {
	t   *testing.T
	tls bool
	ca  testCA
	dir *directory
}

func newTestNet(t *testing.T, withTLS bool) *testNet {
	n := &testNet{t: t, tls: withTLS, dir: &directory{byAddr: make(map[string]string)}}
	if withTLS {
		n.ca = newTestCA(t, "cluster-ca")
	}
	return n
}

// forEachMode runs f once over plain TCP and once over mutual TLS.
func forEachMode(t *testing.T, f func(t *testing.T, n *testNet)) {
	for _, withTLS := range []bool{false, true} {
		name := "plain"
		if withTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) { f(t, newTestNet(t, withTLS)) })
	}
}

// endpoint listens on a free port of 127.0.0.1 as member id and advertises
// the bound address; mod may change the config first. The caller registers
// handlers and calls Serve; the test's end closes it.
func (n *testNet) endpoint(id string, mod func(*Config)) *Endpoint {
	t := n.t
	t.Helper()
	cfg := Config{Bind: "127.0.0.1:0", Advertise: "127.0.0.1:0", Logger: testLogger(t)}
	if n.tls {
		cfg.TLS = n.ca.identity(t, id, []testCA{n.ca})
		cfg.NamesID = pki.NamesID
		cfg.ResolveID = n.dir.lookup
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The port is known only now; Advertise is read by the Raft layer only.
	e.cfg.Advertise = e.Addr().String()
	n.dir.set(e.Addr().String(), id)
	t.Cleanup(func() { e.Close() })
	return e
}

// server is an endpoint serving the given handlers.
func (n *testNet) server(id string, handlers map[Method]Handler, mod func(*Config)) *Endpoint {
	n.t.Helper()
	e := n.endpoint(id, mod)
	for m, h := range handlers {
		e.Handle(m, h)
	}
	e.Serve()
	return e
}

// Test methods, apart from the store's.
const (
	methodEcho   Method = 200
	methodSlow   Method = 201
	methodSized  Method = 202
	methodCaller Method = 203
)

func echo(_ context.Context, _ Caller, payload []byte) ([]byte, error) {
	return append([]byte("echo:"), payload...), nil
}

// idleCount is how many idle connections e's pool keeps for addr.
func idleCount(e *Endpoint, addr string) int {
	e.clients.mu.Lock()
	defer e.clients.mu.Unlock()
	return len(e.clients.idle[addr])
}

// rawRPC is an RPC connection driven by hand, to send what Call never would.
type rawRPC struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

func dialRawRPC(t *testing.T, addr string) *rawRPC {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte{channelRPC}); err != nil {
		t.Fatal(err)
	}
	return &rawRPC{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
}

// call sends one request and reads its answer, bounded by 10 s.
func (c *rawRPC) call(m Method, payload []byte) (byte, []byte, error) {
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeFrame(c.w, byte(m), payload); err != nil {
		return 0, nil, err
	}
	return readFrame(c.r, MaxAnswer)
}

// expectClosedByPeer reads from conn until it ends and fails the test unless
// the peer closed it (rather than the 10 s bound running out).
func expectClosedByPeer(t *testing.T, conn net.Conn, r io.Reader) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, r)
	if err == nil || !isTimeout(err) {
		if n > 0 {
			t.Fatalf("the peer sent %d bytes before closing; want it to close without an answer", n)
		}
		return
	}
	t.Fatalf("the connection stayed open: %v", err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// waitFor polls cond every 10 ms until it holds, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s: %s", timeout, what)
		}
		<-tick.C
	}
}

// endpointGoroutines lists the stacks of goroutines running an endpoint's
// own code (accept loop, connection handlers, the Raft proxy).
func endpointGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	markers := []string{
		"peer.(*Endpoint).acceptLoop", "peer.(*Endpoint).handleConn", "peer.(*Endpoint).serveRPC",
		"peer.(*Endpoint).serveRaft", "peer.(*checkedConn).run",
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, m := range markers {
			if strings.Contains(g, m) {
				found = append(found, g)
				break
			}
		}
	}
	return found
}

// testLogger writes an endpoint's warnings to the test log until the test
// ends (a late line would otherwise panic the test binary).
func testLogger(t *testing.T) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testLogWriter struct {
	t    *testing.T
	done atomic.Bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
