package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/buytracker/buytracker/hack/bench/result"
)

// ceilingsByMode holds the ceiling server's run for each mode it was
// measured in.
type ceilingsByMode map[string]*result.Run

// ratio is r's throughput as a multiple of the ceiling's for its mode, or
// false when there is nothing to compare with: open-loop runs offer a fixed
// rate, so only their latency says anything.
func (c ceilingsByMode) ratio(r *result.Run) (float64, bool) {
	mode := r.Mode
	if mode == "preload" {
		mode = "buy"
	}
	ceiling, ok := c[mode]
	if !ok || r.Loop != result.ClosedLoop || ceiling.Throughput <= 0 {
		return 0, false
	}
	return r.Throughput / ceiling.Throughput, true
}

// writeTables prints one row per run, then the open-loop runs by request kind.
func writeTables(w io.Writer, runs []*result.Run, ceilings ceilingsByMode) error {
	var b strings.Builder
	b.WriteString("| run | load | successes/s | × ceiling | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | client cores |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n")
	for _, r := range runs {
		ratio := "—"
		if x, ok := ceilings.ratio(r); ok {
			ratio = fmt.Sprintf("%.2f", x)
		}
		l := r.Latency
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %.2f |\n",
			label(r), describeLoad(r), r.Throughput, ratio,
			result.Millis(l.P50Ms), result.Millis(l.P90Ms), result.Millis(l.P99Ms), result.Millis(l.P999Ms), result.Millis(l.MaxMs), r.ErrorSummary(), r.ClientCores)
	}

	var mixed []*result.Run
	for _, r := range runs {
		if r.Loop == result.OpenLoop && len(r.ByKind) > 1 {
			mixed = append(mixed, r)
		}
	}
	if len(mixed) > 0 {
		b.WriteString("\nOpen-loop runs by request kind:\n\n")
		b.WriteString("| run | kind | requests | p50 ms | p99 ms | max ms | errors | client sent late, p99 ms |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |\n")
		for _, r := range mixed {
			lag := "—"
			if r.IssueLag != nil {
				lag = result.Millis(r.IssueLag.P99Ms)
			}
			for _, kind := range slices.Sorted(maps.Keys(r.ByKind)) {
				k := r.ByKind[kind]
				fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s |\n", label(r), kind, k.Requests,
					result.Millis(k.Latency.P50Ms), result.Millis(k.Latency.P99Ms), result.Millis(k.Latency.MaxMs), result.DescribeErrors(k.Requests-k.Successes, k.Errors), lag)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func label(r *result.Run) string {
	if r.Label != "" {
		return r.Label
	}
	return r.Mode
}

func describeLoad(r *result.Run) string {
	targets := fmt.Sprintf("%d target", len(r.Targets))
	if len(r.Targets) != 1 {
		targets += "s"
	}
	switch {
	case r.Loop == result.OpenLoop:
		return fmt.Sprintf("open loop %.0f req/s (%s), ≤%d conns/target, %s", r.OfferedRate, r.Mix, r.Conns, targets)
	case r.Mode == "preload":
		return fmt.Sprintf("preload %d purchases, %d conns, %s", r.Successes, r.Conns, targets)
	default:
		return fmt.Sprintf("closed loop %d conns, %s", r.Conns, targets)
	}
}
