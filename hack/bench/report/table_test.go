package main

import (
	"strings"
	"testing"

	"github.com/buytracker/buytracker/hack/bench/result"
)

func TestRatiosCompareClosedLoopRunsWithTheCeilingOfTheirMode(t *testing.T) {
	ceilings := ceilingsByMode{
		"buy":   {Mode: "buy", Loop: result.ClosedLoop, Throughput: 40_000},
		"stats": {Mode: "stats", Loop: result.ClosedLoop, Throughput: 50_000},
	}
	for _, tc := range []struct {
		name   string
		run    result.Run
		want   float64
		wantOK bool
	}{
		{"buy", result.Run{Mode: "buy", Loop: result.ClosedLoop, Throughput: 20_000}, 0.5, true},
		{"stats", result.Run{Mode: "stats", Loop: result.ClosedLoop, Throughput: 30_000}, 0.6, true},
		{"preload is buys", result.Run{Mode: "preload", Loop: result.ClosedLoop, Throughput: 10_000}, 0.25, true},
		{"open loop has no ratio", result.Run{Mode: "buy", Loop: result.OpenLoop, Throughput: 100}, 0, false},
		{"no health ceiling", result.Run{Mode: "health", Loop: result.ClosedLoop, Throughput: 100}, 0, false},
	} {
		got, ok := ceilings.ratio(&tc.run)
		if ok != tc.wantOK || got != tc.want {
			t.Errorf("%s: ratio = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestTableHasOneRowPerRunAndKindRowsForOpenLoopMixes(t *testing.T) {
	ceiling := &result.Run{Label: "ceiling buy", Mode: "buy", Loop: result.ClosedLoop, Conns: 256, Throughput: 40_000,
		Targets: []string{"http://127.0.0.1:18090"}}
	buy := &result.Run{Label: "buytracker buy", Mode: "buy", Loop: result.ClosedLoop, Conns: 256, Throughput: 10_000,
		Targets: []string{"a", "b", "c"}, Errors: map[string]int64{"503": 3, "timeout": 1},
		Latency: result.Summary{P99Ms: 12.345}, ClientCores: 0.834}
	open := &result.Run{Label: "50 users", Mode: "mix", Mix: "buy=60,stats=30,health=10", Loop: result.OpenLoop,
		OfferedRate: 21, Conns: 50, Throughput: 21, Targets: []string{"a"},
		ByKind: map[string]result.Kind{"buy": {Requests: 6}, "stats": {Requests: 3}, "health": {Requests: 1}}}
	var out strings.Builder
	if err := writeTables(&out, []*result.Run{ceiling, buy, open}, ceilingsByMode{"buy": ceiling}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"| ceiling buy | closed loop 256 conns, 1 target | 40000 | 1.00 |",
		"| buytracker buy | closed loop 256 conns, 3 targets | 10000 | 0.25 |",
		"| 12.3 |",
		"| 4 (503: 3, timeout: 1) | 0.83 |",
		"| 50 users | open loop 21 req/s (buy=60,stats=30,health=10), ≤50 conns/target, 1 target | 21 | — |",
		"| 50 users | buy | 6 |",
		"| 50 users | health | 1 |",
		"| 50 users | stats | 3 |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	if rows := strings.Count(text, "\n| "); rows != 2+3+1+3 {
		t.Errorf("table has %d rows (headers included), want 9:\n%s", rows, text)
	}
}
