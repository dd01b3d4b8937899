package httpapi

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/admin"
	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/listen"
)

// serveOn serves h on a capped listener on 127.0.0.1 until the test ends.
func serveOn(t *testing.T, h http.Handler, limits listen.Limits, maxConns int) *listen.Listener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := listen.New(inner, listen.Options{MaxConns: maxConns})
	srv := listen.NewServer(h, limits, testnode.Logger(t))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln
}

// TestAFloodOfTricklingClientsIsCutOffWhileTheAdminPortAnswersProbes opens
// more connections than the client listener's cap, each sending POST /buy
// with a body trickled a byte at a time: the connections past the cap are
// answered 503 at once, the others are cut off at the read timeout, and
// meanwhile /health and /ready answer on the admin listener.
func TestAFloodOfTricklingClientsIsCutOffWhileTheAdminPortAnswersProbes(t *testing.T) {
	const (
		maxConns = 200
		flood    = 250
	)
	st := testnode.OpenSingle(t)
	api := New(st, Options{Logger: testnode.Logger(t)})
	adminAPI, err := admin.New(st, "admin-token", testnode.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer adminAPI.Close()
	limits := listen.ClientLimits(0)
	limits.ReadTimeout = 2 * time.Second
	clientLn := serveOn(t, api, limits, maxConns)
	adminLn := serveOn(t, adminAPI, listen.AdminLimits(), 16)

	conns := make([]net.Conn, flood)
	for i := range conns {
		c, err := net.Dial("tcp", clientLn.Addr().String())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns[i] = c
	}
	// One goroutine trickles a byte a second to every connection: a whole
	// body would take 1000 s.
	stop := make(chan struct{})
	var trickler sync.WaitGroup
	trickler.Add(1)
	go func() {
		defer trickler.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, c := range conns {
					_, _ = c.Write([]byte{' '})
				}
			}
		}
	}()
	defer func() { close(stop); trickler.Wait() }()

	answers := make([]string, flood)
	var readers sync.WaitGroup
	for i, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			raw, err := io.ReadAll(c)
			if err != nil && len(raw) == 0 {
				answers[i] = "error: " + err.Error()
				return
			}
			answers[i] = string(raw)
			c.Close()
		}()
	}

	// While the client listener is full, probes answer on the admin port
	// without a token.
	waitForOpen(t, clientLn, maxConns)
	for _, path := range []string{"/health", "/ready"} {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + adminLn.Addr().String() + path)
		if err != nil {
			t.Fatalf("%s on the admin port during the flood: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s on the admin port during the flood: %d", path, resp.StatusCode)
		}
	}

	readers.Wait()
	refused, cutOff := 0, 0
	for i, a := range answers {
		switch {
		case strings.HasPrefix(a, "HTTP/1.1 503") && strings.Contains(a, "too_many_connections"):
			refused++
		case strings.HasPrefix(a, "error: "):
			t.Fatalf("connection %d ended without an answer or a clean close: %s", i, a)
		default:
			cutOff++ // a 400 for the unreadable body, or a plain close
		}
	}
	if refused != flood-maxConns || cutOff != maxConns {
		t.Fatalf("%d connections refused with 503 and %d cut off; want %d and %d", refused, cutOff, flood-maxConns, maxConns)
	}
	waitForOpen(t, clientLn, 0)
	if n := totalBuys(t, "http://"+clientLn.Addr().String()); n != 0 {
		t.Fatalf("the flood recorded %v purchases", n)
	}
}

func waitForOpen(t *testing.T, ln *listen.Listener, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for ln.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %d open connections; %d are open", n, ln.Open())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
