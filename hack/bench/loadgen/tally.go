package main

import (
	"maps"
	"time"

	"github.com/buytracker/buytracker/hack/bench/latency"
	"github.com/buytracker/buytracker/hack/bench/result"
)

// tally is what one worker measured. Workers keep their own and merge them
// at the end, so recording takes no lock.
type tally struct {
	kinds   [kindCount]*kindTally
	samples map[string]string // first message per error key
}

type kindTally struct {
	latencies           *latency.Histogram
	requests, successes int64
	errors              map[string]int64
}

func newTally() *tally { return &tally{samples: map[string]string{}} }

func (t *tally) kind(k requestKind) *kindTally {
	if t.kinds[k] == nil {
		t.kinds[k] = &kindTally{latencies: latency.New(), errors: map[string]int64{}}
	}
	return t.kinds[k]
}

// record counts one request of kind that took elapsed and ended as o.
func (t *tally) record(k requestKind, o outcome, elapsed time.Duration) {
	kt := t.kind(k)
	kt.requests++
	kt.latencies.Record(elapsed)
	if o.ok {
		kt.successes++
		return
	}
	kt.errors[o.errKey]++
	if _, seen := t.samples[o.errKey]; !seen {
		t.samples[o.errKey] = o.errText
	}
}

// recordUnsent counts a request that was due but never sent.
func (t *tally) recordUnsent(k requestKind, o outcome) {
	kt := t.kind(k)
	kt.requests++
	kt.errors[o.errKey]++
	if _, seen := t.samples[o.errKey]; !seen {
		t.samples[o.errKey] = o.errText
	}
}

func (t *tally) merge(o *tally) {
	for k, ok := range o.kinds {
		if ok == nil {
			continue
		}
		kt := t.kind(requestKind(k))
		kt.latencies.Merge(ok.latencies)
		kt.requests += ok.requests
		kt.successes += ok.successes
		for key, n := range ok.errors {
			kt.errors[key] += n
		}
	}
	for key, text := range o.samples {
		if _, seen := t.samples[key]; !seen {
			t.samples[key] = text
		}
	}
}

// fill writes the counts and latencies into run; measured is the length of
// the measured window.
func (t *tally) fill(run *result.Run, measured time.Duration) {
	all := latency.New()
	run.ByKind = map[string]result.Kind{}
	run.Errors = map[string]int64{}
	for k, kt := range t.kinds {
		if kt == nil {
			continue
		}
		all.Merge(kt.latencies)
		run.Requests += kt.requests
		run.Successes += kt.successes
		for key, n := range kt.errors {
			run.Errors[key] += n
		}
		run.ByKind[requestKind(k).String()] = result.Kind{
			Requests:  kt.requests,
			Successes: kt.successes,
			Latency:   result.Summarize(kt.latencies),
			Errors:    maps.Clone(kt.errors),
		}
	}
	run.Latency = result.Summarize(all)
	if len(t.samples) > 0 {
		run.ErrorSamples = maps.Clone(t.samples)
	}
	if measured > 0 {
		run.Throughput = float64(run.Successes) / measured.Seconds()
	}
}
