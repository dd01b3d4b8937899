package rawhttp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The client must frame every answer net/http's server can send:
// Content-Length, chunked, and a connection the server closes.
func TestReadsEveryAnswerFraming(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/buy":
			if r.Header.Get("Content-Type") != "application/json" || string(body) != `{"a":1}` {
				http.Error(w, "bad request "+string(body), http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"success":true}`)
		case "/chunked":
			for range 3 {
				_, _ = io.WriteString(w, strings.Repeat("x", 3000))
				w.(http.Flusher).Flush()
			}
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		case "/error":
			http.Error(w, `{"error":{"code":"no_leader"}}`, http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	c := New(Options{MaxConns: 2, Timeout: 5 * time.Second})
	defer c.CloseIdle()
	ctx := context.Background()
	for range 3 {
		for _, tc := range []struct {
			method, target, body string
			dropBodyOf, status   int
			kept                 string
		}{
			{"POST", "/buy", `{"a":1}`, 201, 201, ""},
			{"POST", "/buy", `{"a":1}`, 0, 201, `{"success":true}`},
			{"GET", "/chunked", "", 200, 200, ""},
			{"GET", "/close", "", 0, 200, "bye"},
			{"GET", "/error", "", 200, 503, `{"error":{"code":"no_leader"}}`},
			{"GET", "/chunked", "", 201, 200, strings.Repeat("x", 256)},
		} {
			req := &Request{BaseURL: srv.URL, Method: tc.method, Target: tc.target, MaxBody: 256, DropBodyOf: tc.dropBodyOf}
			if tc.body != "" {
				req.Body = []byte(tc.body)
				req.Header = "Content-Type: application/json\r\n"
			}
			resp, err := c.Do(ctx, req)
			if err != nil || resp.Status != tc.status || strings.TrimSpace(string(resp.Body)) != tc.kept {
				t.Fatalf("%s %s: %d %q %v; want %d %q", tc.method, tc.target, resp.Status, resp.Body, err, tc.status, tc.kept)
			}
		}
	}
	if got := requests.Load(); got != 18 {
		t.Fatalf("server saw %d requests, want 18", got)
	}
}

// Extra header lines reach the server and a large body comes back whole.
func TestSendsHeadersAndKeepsWholeBody(t *testing.T) {
	answer := bytes.Repeat([]byte("0123456789"), 10_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/octet-stream" || !bytes.Equal(body, []byte{0, 1, 2}) {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		_, _ = w.Write(answer)
	}))
	defer srv.Close()
	c := New(Options{MaxConns: 1, Timeout: 5 * time.Second})
	defer c.CloseIdle()
	req := &Request{
		BaseURL: srv.URL, Method: "POST", Target: "/internal",
		Header: "Content-Type: application/octet-stream\r\nAuthorization: Bearer tok\r\n",
		Body:   []byte{0, 1, 2}, MaxBody: 1 << 20,
	}
	resp, err := c.Do(context.Background(), req)
	if err != nil || resp.Status != 200 || !bytes.Equal(resp.Body, answer) {
		t.Fatalf("status %d, %d bytes, err %v; want 200 with %d bytes", resp.Status, len(resp.Body), err, len(answer))
	}
	req.MaxBody = 10
	resp, err = c.Do(context.Background(), req)
	if err != nil || string(resp.Body) != "0123456789" {
		t.Fatalf("MaxBody 10: %q %v", resp.Body, err)
	}
}

// A connection the server closed while it sat idle is never written to: the
// next request goes over a new connection and succeeds.
func TestDropsConnectionsTheServerClosed(t *testing.T) {
	var opened atomic.Int64
	closed := make(chan struct{}, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			closed <- struct{}{}
		}
	}
	srv.Start()
	defer srv.Close()
	c := New(Options{MaxConns: 1, Timeout: 5 * time.Second})
	defer c.CloseIdle()
	get := func() {
		t.Helper()
		resp, err := c.Do(context.Background(), &Request{BaseURL: srv.URL, Method: "GET", Target: "/", MaxBody: 16})
		if err != nil || resp.Status != 200 || string(resp.Body) != "ok" {
			t.Fatalf("GET: %d %q %v", resp.Status, resp.Body, err)
		}
	}
	get()
	get()
	if n := opened.Load(); n != 1 {
		t.Fatalf("%d connections for two requests, want 1 kept alive", n)
	}
	srv.CloseClientConnections()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not close the idle connection within 5s")
	}
	get()
	if n := opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: the closed one replaced", n)
	}
}

// A bad URL or a refused dial says that nothing was sent; a request the
// server received and never answered does not.
func TestDialErrorSaysNothingWasSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := New(Options{MaxConns: 1, Timeout: time.Second})
	_, err = c.Do(context.Background(), &Request{BaseURL: "http://" + addr, Method: "GET", Target: "/"})
	var opErr *net.OpError
	if !errors.Is(err, ErrNotSent) || !errors.As(err, &opErr) || opErr.Op != "dial" {
		t.Fatalf("err %v, want ErrNotSent and the dialer's *net.OpError", err)
	}
	if _, err := c.Do(context.Background(), &Request{BaseURL: "https://" + addr, Method: "GET", Target: "/"}); !errors.Is(err, ErrNotSent) {
		t.Fatalf("https base URL: err %v, want ErrNotSent", err)
	}
	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer hangUp.Close()
	_, err = c.Do(context.Background(), &Request{BaseURL: hangUp.URL, Method: "POST", Target: "/", Body: []byte("x")})
	if err == nil || errors.Is(err, ErrNotSent) {
		t.Fatalf("server hung up after reading the request: err %v, want an error without ErrNotSent", err)
	}
}

func TestGivesUpAtTheDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	c := New(Options{MaxConns: 1, Timeout: 100 * time.Millisecond})
	defer c.CloseIdle()
	_, err := c.Do(context.Background(), &Request{BaseURL: srv.URL, Method: "GET", Target: "/"})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err %v, want a deadline error", err)
	}
	// The slot of the failed connection is free again, and a context
	// deadline bounds the request too.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Do(ctx, &Request{BaseURL: srv.URL, Method: "GET", Target: "/"})
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second request: err %v, want a deadline error", err)
	}
}
