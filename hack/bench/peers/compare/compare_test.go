package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buytracker/buytracker/hack/bench/result"
)

// writeRun puts a run where run.sh would.
func writeRun(t *testing.T, dir string, round int, system, key string, r result.Run) {
	t.Helper()
	path := filepath.Join(dir, "r"+string(rune('0'+round)), system, key+".json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(r)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func exampleResults(t *testing.T) string {
	dir := t.TempDir()
	for round, base := range map[int]float64{1: 10_000, 2: 20_000} {
		writeRun(t, dir, round, "buytracker", "buy", result.Run{Label: "POST /buy, 64 conns", Throughput: base, Latency: result.Summary{P50Ms: 5, P99Ms: 20}})
		writeRun(t, dir, round, "etcd", "buy", result.Run{Throughput: base / 40, Latency: result.Summary{P50Ms: 50, P99Ms: 900},
			Errors: map[string]int64{"504": 3}})
		writeRun(t, dir, round, "buytracker", "preload", result.Run{Mode: "preload", Loop: "closed", Conns: 256, Successes: 999_000, DurationS: 100, Throughput: 9990})
	}
	// etcd's preload ran out of time in round 2 and left no stats run.
	writeRun(t, dir, 1, "etcd", "preload", result.Run{Mode: "preload", Loop: "bulk", Successes: 1_000_000, DurationS: 50, Throughput: 20_000})
	writeRun(t, dir, 1, "etcd", "stats", result.Run{Throughput: 30})
	writeRun(t, dir, 1, "buytracker", "stats", result.Run{Throughput: 30_000})
	writeRun(t, dir, 2, "buytracker", "stats", result.Run{Throughput: 31_000})
	return dir
}

func TestTableGivesEachRoundAndTheRatioToTheBaselineOfThatRound(t *testing.T) {
	dir := exampleResults(t)
	var out strings.Builder
	err := run([]string{"-results", dir, "-systems", "buytracker,etcd", "-load", "buy=buy 64", "-load", "stats=stats 1M"}, &out, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| POST /buy, 64 conns | buytracker | 10,000 / 20,000 | 1.0 / 1.0 | 5.00 / 5.00 | 20.0 / 20.0 | 0 / 0 |",
		"|  | etcd | 250 / 500 | 0.025 / 0.025 | 50.0 / 50.0 | 900 / 900 | 3 (504: 3) / 3 (504: 3) |",
		"|  | etcd | 30 / — | 0.0010 / — |",
		"| etcd | bulk (etcd's own) | 1,000,000 / — | 50.0 / — | 20,000 / — |",
		"| buytracker | HTTP, 256 conns | 999,000 / 999,000 |",
		"Each cell: round 1 / round 2.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestTablesCanBePrintedAlone(t *testing.T) {
	dir := exampleResults(t)
	var out strings.Builder
	if err := run([]string{"-results", dir, "-systems", "buytracker,etcd", "-load", "buy=buy 64", "-tables", "preload"}, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "POST /buy") || !strings.Contains(out.String(), "| system | path |") {
		t.Errorf("-tables preload printed:\n%s", out.String())
	}
	if err := run([]string{"-results", dir, "-load", "buy=b", "-tables", "plots"}, &out, os.Stderr); err == nil {
		t.Error("an unknown table was accepted")
	}
}

func TestPlotIsWellFormedWithABarPerSystemAndLoad(t *testing.T) {
	dir := exampleResults(t)
	svgPath := filepath.Join(t.TempDir(), "plot.svg")
	var out strings.Builder
	if err := run([]string{"-results", dir, "-systems", "buytracker,etcd", "-load", "buy=buy 64", "-load", "stats=stats 1M", "-svg", svgPath}, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Rects []struct {
			Title string `xml:"title"`
		} `xml:"rect"`
		Circles []struct{} `xml:"circle"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("the plot is not well-formed XML: %v", err)
	}
	bars := 0
	for _, r := range doc.Rects {
		if r.Title != "" {
			bars++
		}
	}
	// Two panels × (buy: 2 systems, stats: 2 systems) = 8 bars; one dot per run:
	// 2 panels × (4 buy runs + 3 stats runs) = 14.
	if bars != 8 || len(doc.Circles) != 14 {
		t.Errorf("%d bars and %d dots, want 8 and 14", bars, len(doc.Circles))
	}
}

func TestMedianOfRounds(t *testing.T) {
	th := func(r *result.Run) float64 { return r.Throughput }
	runs := []*result.Run{{Throughput: 9}, nil, {Throughput: 1}, {Throughput: 4}}
	if v, ok := median(runs, th); !ok || v != 4 {
		t.Errorf("median = %g, %v; want 4", v, ok)
	}
	if v, _ := median(runs[:2], th); v != 9 {
		t.Errorf("median of one = %g, want 9", v)
	}
	if v, _ := median([]*result.Run{{Throughput: 2}, {Throughput: 3}}, th); v != 2.5 {
		t.Errorf("median of two = %g, want 2.5", v)
	}
	if _, ok := median([]*result.Run{nil}, th); ok {
		t.Error("median of no run reported a value")
	}
}
