package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The raw client must frame every answer net/http's server can send:
// Content-Length, chunked, and a connection the server closes.
func TestRawClientReadsEveryAnswerFraming(t *testing.T) {
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
	c := newRawClient(2, 5*time.Second)
	defer c.closeIdle()
	ctx := context.Background()
	for range 3 {
		for _, tc := range []struct {
			method, target, body string
			want, status         int
			detail               string
		}{
			{"POST", "/buy", `{"a":1}`, 201, 201, ""},
			{"GET", "/chunked", "", 200, 200, ""},
			{"GET", "/close", "", 200, 200, ""},
			{"GET", "/error", "", 200, 503, `{"error":{"code":"no_leader"}}`},
			{"GET", "/chunked", "", 201, 200, strings.Repeat("x", 256)},
		} {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			status, detail, err := c.do(ctx, srv.URL, tc.method, tc.target, body, tc.want)
			if err != nil || status != tc.status || strings.TrimSpace(string(detail)) != tc.detail {
				t.Fatalf("%s %s: %d %q %v; want %d %q", tc.method, tc.target, status, detail, err, tc.status, tc.detail)
			}
		}
	}
	if got := requests.Load(); got != 15 {
		t.Fatalf("server saw %d requests, want 15", got)
	}
}

func TestRawClientGivesUpAtTheDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	c := newRawClient(1, 100*time.Millisecond)
	defer c.closeIdle()
	_, _, err := c.do(context.Background(), srv.URL, "GET", "/", nil, 200)
	if transportErrorKey(err) != "timeout" {
		t.Fatalf("err %v (%s), want a timeout", err, transportErrorKey(err))
	}
	// The slot of the failed connection is free again.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = c.do(ctx, srv.URL, "GET", "/", nil, 200)
	if transportErrorKey(err) != "timeout" {
		t.Fatalf("second request: err %v (%s), want a timeout", err, transportErrorKey(err))
	}
}
