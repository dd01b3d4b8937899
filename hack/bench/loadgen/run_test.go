package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buytracker/buytracker/hack/bench/result"
)

func testConfig(t *testing.T, args ...string) config {
	t.Helper()
	cfg, err := parseConfig(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestOnlyTheExpectedStatusCountsAsSuccess(t *testing.T) {
	// A server that answers 200 to a buy (not 201) and 503 to stats.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/buy":
			w.WriteHeader(http.StatusOK)
		case "/stats":
			http.Error(w, `{"error":{"code":"no_leader"}}`, http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()

	for _, client := range []string{"raw", "std"} {
		t.Run(client, func(t *testing.T) {
			cfg := testConfig(t, "-url", srv.URL, "-mode", "mix", "-mix", "buy=1,stats=1,health=1",
				"-conns", "4", "-warmup", "0s", "-duration", "200ms", "-timeout", "1s", "-client", client)
			s := newSender(cfg)
			defer s.close()
			checkOnlyExpectedStatusCounts(t, runClosed(context.Background(), cfg, s))
		})
	}
}

func checkOnlyExpectedStatusCounts(t *testing.T, run *result.Run) {

	if run.Requests == 0 {
		t.Fatal("no requests were made")
	}
	if got, want := run.Successes, run.ByKind["health"].Requests; got != want {
		t.Errorf("successes = %d, want %d (only the health checks succeed)", got, want)
	}
	if got, want := run.Errors["200"], run.ByKind["buy"].Requests; got != want || want == 0 {
		t.Errorf(`errors["200"] = %d, want %d (every buy answered 200, not 201)`, got, want)
	}
	if got, want := run.Errors["503"], run.ByKind["stats"].Requests; got != want || want == 0 {
		t.Errorf(`errors["503"] = %d, want %d`, got, want)
	}
	if run.ErrorSamples["503"] == "" {
		t.Error("no sample message kept for the 503s")
	}
}

func TestOpenLoopCountsAStallAgainstEveryRequestDueDuringIt(t *testing.T) {
	// The first request stalls for 300 ms on the only connection. A
	// generator that waited for answers before sending more would see one
	// slow request; an open loop sees every request due during the stall
	// wait behind it, from its scheduled time.
	const stall = 300 * time.Millisecond
	var first sync.Once
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.Do(func() { time.Sleep(stall) })
		served.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	cfg := testConfig(t, "-url", srv.URL, "-mode", "health", "-rate", "100", "-conns", "1",
		"-warmup", "0s", "-duration", "1s", "-timeout", "5s")
	s := newSender(cfg)
	defer s.close()
	run := runOpen(context.Background(), cfg, s)

	if run.Requests != 100 || run.Successes != 100 || served.Load() != 100 {
		t.Fatalf("requests %d, successes %d, served %d; want 100 each", run.Requests, run.Successes, served.Load())
	}
	if run.DurationS != 1 || run.Throughput != 100 {
		t.Errorf("measured %vs at %v/s, want the scheduled 1s at 100/s", run.DurationS, run.Throughput)
	}
	// Requests 0..29 were due in the first 300 ms and answered after it:
	// at least a quarter of all took 10 ms or more.
	if run.Latency.P90Ms < 10 {
		t.Errorf("p90 = %.2f ms, want >= 10 ms: the stall was not charged to the requests queued behind it", run.Latency.P90Ms)
	}
	if run.Latency.MaxMs < float64(stall/time.Millisecond) {
		t.Errorf("max = %.2f ms, want >= %v", run.Latency.MaxMs, stall)
	}
}

func TestPreloadRecordsExactlyTheAskedNumberDespiteRefusals(t *testing.T) {
	var recorded, calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1)%5 == 0 { // every fifth attempt is refused, nothing recorded
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		recorded.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	cfg := testConfig(t, "-url", srv.URL, "-preload", "500", "-conns", "8", "-duration", "20s", "-timeout", "1s")
	s := newSender(cfg)
	defer s.close()
	run, err := runPreload(context.Background(), cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	if recorded.Load() != 500 || run.Successes != 500 {
		t.Fatalf("server recorded %d, run counted %d successes; want 500 both", recorded.Load(), run.Successes)
	}
	if run.Errors["503"] == 0 {
		t.Error("the refusals were not counted as errors")
	}
}

func TestParseConfigRejectsContradictions(t *testing.T) {
	for _, args := range [][]string{
		{"-preload", "10", "-rate", "5"},
		{"-mode", "browse"},
		{"-conns", "0"},
		{"-url", "127.0.0.1:8080"},
		{"-mode", "mix", "-mix", "buy=0"},
		{"-duration", "0s"},
	} {
		if _, err := parseConfig(args, io.Discard); err == nil {
			t.Errorf("parseConfig(%q) succeeded, want an error", args)
		}
	}
}
