package main

import (
	"fmt"
	"strings"

	"github.com/buytracker/buytracker/hack/bench/result"
)

// perRound formats one figure of each round, "a / b"; a missing run is "—".
func perRound(runs []*result.Run, figure func(*result.Run) string) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = "—"
		if r != nil {
			parts[i] = figure(r)
		}
	}
	return strings.Join(parts, " / ")
}

// ratios is each round's throughput of runs as a multiple of the
// baseline's in the same round.
func ratios(runs, baseline []*result.Run) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = "—"
		if r != nil && i < len(baseline) && baseline[i] != nil && baseline[i].Throughput > 0 {
			parts[i] = ratio(r.Throughput / baseline[i].Throughput)
		}
	}
	return strings.Join(parts, " / ")
}

// ratio prints about two significant digits: 0.0031, 0.42, 1.0, 13.
func ratio(x float64) string {
	switch {
	case x >= 10:
		return fmt.Sprintf("%.0f", x)
	case x >= 1:
		return fmt.Sprintf("%.1f", x)
	case x >= 0.1:
		return fmt.Sprintf("%.2f", x)
	case x >= 0.01:
		return fmt.Sprintf("%.3f", x)
	default:
		return fmt.Sprintf("%.4f", x)
	}
}

// thousands prints a rate as a whole number with thousands separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// loadTitle is the run's own label (set by run.sh), else the load's key.
func loadTitle(m *measurements, l load) string {
	for _, system := range m.systems {
		for _, r := range m.get(l.key, system) {
			if r != nil && r.Label != "" {
				return r.Label
			}
		}
	}
	return l.key
}

func writeLoadTable(b *strings.Builder, m *measurements, loads []load) {
	baseline := m.systems[0]
	names := make([]string, m.rounds)
	for i := range names {
		names[i] = fmt.Sprintf("round %d", i+1)
	}
	fmt.Fprintf(b, "Each cell: %s. Ratio: the system's throughput over %s's in the same round.\n\n",
		strings.Join(names, " / "), baseline)
	fmt.Fprintf(b, "| load | system | successes/s | × %s | p50 ms | p99 ms | errors |\n", baseline)
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, l := range loads {
		base := m.get(l.key, baseline)
		for i, system := range m.systems {
			runs := m.get(l.key, system)
			title := ""
			if i == 0 {
				title = loadTitle(m, l)
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", title, system,
				perRound(runs, func(r *result.Run) string { return thousands(r.Throughput) }),
				ratios(runs, base),
				perRound(runs, func(r *result.Run) string { return result.Millis(r.Latency.P50Ms) }),
				perRound(runs, func(r *result.Run) string { return result.Millis(r.Latency.P99Ms) }),
				perRound(runs, (*result.Run).ErrorSummary))
		}
	}
}

// writePreloadTable lists how each system reached the large state: through
// HTTP (loadgen -preload) or its own bulk path (the adapter's -preload).
func writePreloadTable(b *strings.Builder, m *measurements, key string) {
	b.WriteString("| system | path | purchases recorded | seconds | purchases/s |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: |\n")
	for _, system := range m.systems {
		runs := m.get(key, system)
		path := "—"
		for _, r := range runs {
			if r != nil {
				path = "HTTP, " + fmt.Sprint(r.Conns) + " conns"
				if r.Loop == "bulk" {
					path = "bulk (" + system + "'s own)"
				}
				break
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", system, path,
			perRound(runs, func(r *result.Run) string { return thousands(float64(r.Successes)) }),
			perRound(runs, func(r *result.Run) string { return fmt.Sprintf("%.1f", r.DurationS) }),
			perRound(runs, func(r *result.Run) string { return thousands(r.Throughput) }))
	}
}
