// Package result holds what one load-generator run measured, in the JSON
// form that hack/bench/loadgen writes and hack/bench/report reads.
package result

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/buytracker/buytracker/hack/bench/latency"
)

// Loop says how requests were issued.
const (
	// ClosedLoop: N workers, each sends its next request when the last one
	// answered; throughput is what the server sustains.
	ClosedLoop = "closed"
	// OpenLoop: requests go out on a fixed schedule whatever the answers;
	// latency counts from the scheduled time (no coordinated omission).
	OpenLoop = "open"
)

// Run is one load-generator run.
type Run struct {
	Label       string   `json:"label,omitempty"`
	Mode        string   `json:"mode"` // buy, stats, health, mix or preload
	Mix         string   `json:"mix"`
	Loop        string   `json:"loop"`
	Targets     []string `json:"targets"`
	Conns       int      `json:"conns"`
	OfferedRate float64  `json:"offered_rate,omitempty"` // requests/s, open loop only
	WarmupS     float64  `json:"warmup_s"`
	DurationS   float64  `json:"duration_s"` // the measured window
	// Requests and Successes count the requests issued in the measured
	// window; a success is 201 for a buy, 200 for anything else.
	Requests   int64   `json:"requests"`
	Successes  int64   `json:"successes"`
	Throughput float64 `json:"throughput"` // successes/s
	Latency    Summary `json:"latency"`    // every request of the window, failed ones too
	// Errors counts failures by HTTP status code ("503") or by transport
	// failure ("timeout", "conn_refused", "transport", "client_backlog").
	Errors map[string]int64 `json:"errors,omitempty"`
	// ErrorSamples keeps the first message seen for each error key.
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	ByKind       map[string]Kind   `json:"by_kind,omitempty"`
	// ClientCores is the CPU the load generator itself used, in cores
	// (CPU time over wall time, warm-up included): on a machine it shares
	// with the servers, that much was not theirs.
	ClientCores float64 `json:"client_cores"`
	// IssueLag is how late the open-loop dispatcher sent requests after
	// their scheduled time: large values mean the client itself was short of
	// CPU, and the latencies include that wait.
	IssueLag *Summary `json:"issue_lag,omitempty"`
}

// Kind is the part of a run made of one kind of request.
type Kind struct {
	Requests  int64            `json:"requests"`
	Successes int64            `json:"successes"`
	Latency   Summary          `json:"latency"`
	Errors    map[string]int64 `json:"errors,omitempty"`
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p99_9_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Summarize reads the usual percentiles off h.
func Summarize(h *latency.Histogram) Summary {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Summary{
		Count:  h.Count(),
		MeanMs: ms(h.Mean()),
		P50Ms:  ms(h.Quantile(0.50)),
		P90Ms:  ms(h.Quantile(0.90)),
		P99Ms:  ms(h.Quantile(0.99)),
		P999Ms: ms(h.Quantile(0.999)),
		MaxMs:  ms(h.Max()),
	}
}

// ErrorCount is the number of failed requests.
func (r *Run) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// ReadFile loads a Run written as JSON.
func ReadFile(path string) (*Run, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading run: %w", err)
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding run %s: %w", path, err)
	}
	return &r, nil
}
