package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/buytracker/buytracker/hack/bench/result"
)

// printSummary writes a few human-readable lines about r.
func printSummary(w io.Writer, r *result.Run) {
	name := r.Label
	if name == "" {
		name = r.Mode
	}
	load := fmt.Sprintf("%d conns", r.Conns)
	if r.Loop == result.OpenLoop {
		load = fmt.Sprintf("%.1f req/s offered, up to %d conns per target", r.OfferedRate, r.Conns)
	}
	fmt.Fprintf(w, "%s: %s loop, %s, mix %s, %d target(s), %.1fs measured\n",
		name, r.Loop, load, r.Mix, len(r.Targets), r.DurationS)
	fmt.Fprintf(w, "  requests %d, successes %d (%.1f/s), errors %d%s\n",
		r.Requests, r.Successes, r.Throughput, r.ErrorCount(), formatCounts(r.Errors))
	fmt.Fprintf(w, "  latency ms: %s\n", formatSummary(r.Latency))
	fmt.Fprintf(w, "  client CPU: %.2f cores\n", r.ClientCores)
	if len(r.ByKind) > 1 {
		for _, kind := range slices.Sorted(maps.Keys(r.ByKind)) {
			k := r.ByKind[kind]
			fmt.Fprintf(w, "  %-6s %d requests, %d errors, ms: %s\n", kind, k.Requests, k.Requests-k.Successes, formatSummary(k.Latency))
		}
	}
	if r.IssueLag != nil {
		fmt.Fprintf(w, "  sent late by ms (client lag): p50 %.3f, p99 %.3f, max %.3f\n", r.IssueLag.P50Ms, r.IssueLag.P99Ms, r.IssueLag.MaxMs)
	}
	for _, key := range slices.Sorted(maps.Keys(r.ErrorSamples)) {
		fmt.Fprintf(w, "  first %s: %s\n", key, r.ErrorSamples[key])
	}
}

func formatSummary(s result.Summary) string {
	return fmt.Sprintf("p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f",
		s.P50Ms, s.P90Ms, s.P99Ms, s.P999Ms, s.MaxMs, s.MeanMs)
}

func formatCounts(counts map[string]int64) string {
	if len(counts) == 0 {
		return ""
	}
	parts := make([]string, 0, len(counts))
	for _, key := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s: %d", key, counts[key]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
