package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/clientauth"
	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/listen"
	"github.com/buytracker/buytracker/node/store"
)

// TestSlowBuysReadersHoldBoundedMemory opens clients that ask for a full
// page of GET /buys and read nothing, and checks that the heap each of them
// pins while its answer waits stays far below the page's size.
func TestSlowBuysReadersHoldBoundedMemory(t *testing.T) {
	const (
		records  = 1000
		readers  = 40
		perSlow  = 128 << 10 // the bound per slow reader
		pageSize = "limit=1000"
	)
	st := testnode.OpenSingle(t)
	fillLargeRecords(t, st, records)
	tokens, err := clientauth.Open(authFile(t, false), false, testnode.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	api := New(st, Options{Logger: testnode.Logger(t), Auth: tokens})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	limits := listen.ClientLimits(0)
	limits.WriteTimeout = time.Minute // the readers stay blocked while memory is measured
	srv := listen.NewServer(api, limits, testnode.Logger(t))
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(listen.New(inner, listen.Options{MaxConns: 1000})) }()
	t.Cleanup(func() { _ = srv.Close(); <-served })
	addr := inner.Addr().String()
	request := "GET /buys?" + pageSize + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + auditorToken + "\r\n\r\n"

	// One full read first, so that pools and caches are warm in the baseline.
	pageBytes := readWholeAnswer(t, addr, request)
	baseline := liveHeap()

	var conns []net.Conn
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	for range readers {
		c := dialSmallReceiveBuffer(t, addr)
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
	}
	waitForBlockedWriters(t, readers)
	during := liveHeap()
	growth := int64(during) - int64(baseline)
	t.Logf("page of %d records: %d bytes; live heap %d bytes before, %d with %d slow readers (%d bytes each)",
		records, pageBytes, baseline, during, readers, growth/readers)
	if growth > readers*perSlow {
		t.Fatalf("%d slow readers of GET /buys grew the live heap by %d bytes (%d each); want at most %d each",
			readers, growth, growth/readers, perSlow)
	}
}

// fillLargeRecords records n purchases whose optional fields are as long as
// the spec allows, so that a page of them is as large as pages get.
func fillLargeRecords(t *testing.T, st *store.Store, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.Buy(t.Context(), ledger.Purchase{
				UserID: int64(i + 1), PromotionID: 7, ProductID: 9, AmountCents: 99_999_999_99,
				IP:              "2001:db8:85a3:1234:5678:8a2e:370:7334",
				ClientTimestamp: "2026-11-25T10:00:00.123456789+01:00",
				IdempotencyKey:  fmt.Sprintf("%0128d", i),
				Fingerprint:     uint64(i),
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("record a purchase: %v", err)
		}
	}
}

func readWholeAnswer(t *testing.T, addr, request string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, strings.Replace(request, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(raw), "HTTP/1.1 200") {
		t.Fatalf("GET /buys: %v, answer starts %q", err, raw[:min(len(raw), 200)])
	}
	return len(raw)
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// waitForBlockedWriters waits until n GET /buys handlers are blocked
// writing their answers to sockets that are not read.
func waitForBlockedWriters(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 16<<20)
	deadline := time.Now().Add(30 * time.Second)
	for {
		stacks := string(buf[:runtime.Stack(buf, true)])
		blocked := 0
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "httpapi.(*Server).handleBuys") && strings.Contains(g, "waitWrite") {
				blocked++
			}
		}
		if blocked >= n {
			return
		}
		if time.Now().After(deadline) {
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "waitWrite") || strings.Contains(g, "handleBuys") {
					t.Log(g)
				}
			}
			t.Fatalf("after 30s only %d of %d GET /buys handlers are blocked writing", blocked, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialSmallReceiveBuffer connects with a small receive window, as a client
// that reads slowly over a slow link would.
func dialSmallReceiveBuffer(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = errors.Join(
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096),
				// The segment size of a real network path rather than
				// loopback's 64 KiB, which lets the kernel buffer a
				// whole page on the server's side.
				syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 1400))
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBuysPagesAcrossChunksLoseNothing(t *testing.T) {
	st := testnode.OpenSingle(t)
	fillLargeRecords(t, st, 2*buysChunk+17)
	tokens, err := clientauth.Open(authFile(t, false), false, testnode.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(st, Options{Logger: testnode.Logger(t), Auth: tokens}))
	defer srv.Close()
	cases := []struct {
		query     string
		first     uint64
		n         int
		nextAfter uint64
	}{
		{"limit=1000", 1, 2*buysChunk + 17, 2*buysChunk + 17},
		{"limit=" + strconv.Itoa(buysChunk), 1, buysChunk, buysChunk},
		{"after=3&limit=" + strconv.Itoa(buysChunk+1), 4, buysChunk + 1, buysChunk + 4},
		{"after=" + strconv.Itoa(2*buysChunk), 2*buysChunk + 1, 17, 2*buysChunk + 17},
		{"after=" + strconv.Itoa(2*buysChunk+17), 0, 0, 2*buysChunk + 17},
		{"after=99999", 0, 0, 99999},
	}
	for _, tc := range cases {
		a := call(t, http.MethodGet, srv.URL+"/buys?"+tc.query, "", "", exporter)
		list, _ := a.body["purchases"].([]any)
		if a.status != http.StatusOK || len(list) != tc.n || a.body["next_after"] != float64(tc.nextAfter) {
			t.Fatalf("GET /buys?%s: %d, %d purchases, next_after %v; want %d purchases, next_after %d", tc.query, a.status, len(list), a.body["next_after"], tc.n, tc.nextAfter)
		}
		for i, p := range list {
			if id := p.(map[string]any)["purchase_id"]; id != float64(tc.first+uint64(i)) {
				t.Fatalf("GET /buys?%s: purchase %d has id %v, want %d", tc.query, i, id, tc.first+uint64(i))
			}
		}
	}
}
