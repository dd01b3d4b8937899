package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buytracker/buytracker/hack/bench/latency"
	"github.com/buytracker/buytracker/hack/bench/result"
)

// issueLead is how long before its due time a request's goroutine starts.
const issueLead = 500 * time.Microsecond

// runOpen sends requests on a fixed schedule of cfg.rate per second,
// whether or not earlier ones have answered, spread round-robin over the
// targets. Each latency counts from the request's scheduled time, so a
// stalled server shows as latency instead of as fewer requests (no
// coordinated omission). At most cfg.maxInFlight requests wait at once;
// one due beyond that is counted as a "client_backlog" error, never
// silently skipped.
func runOpen(ctx context.Context, cfg config, s *sender) *result.Run {
	start := time.Now()
	plan := newSchedule(start, cfg.rate, cfg.warmup+cfg.duration)
	measureFrom := start.Add(cfg.warmup)
	calls := newCallMaker(cfg.mix, cfg.seed)

	var (
		mu       sync.Mutex // guards counted and issueLag
		counted  = newTally()
		issueLag = latency.New()
		inFlight atomic.Int64
		wg       sync.WaitGroup
	)
	for i := range plan.len() {
		due := plan.due(i)
		// The request's goroutine starts a little before it is due and
		// waits for its time itself, so that nothing but its own wake-up
		// stands between the due time and the send. Started at the due
		// time instead, it waited for another thread to pick it up: about
		// 0.15 ms on an idle machine, counted in every latency.
		sleepUntil(ctx, due.Add(-issueLead))
		if ctx.Err() != nil {
			break
		}
		c := calls.next()
		url := cfg.urls[i%len(cfg.urls)]
		measured := !due.Before(measureFrom)
		if inFlight.Load() >= int64(cfg.maxInFlight) {
			if measured {
				mu.Lock()
				counted.recordUnsent(c.kind, outcome{errKey: "client_backlog",
					errText: fmt.Sprintf("%d requests already waiting", cfg.maxInFlight)})
				mu.Unlock()
			}
			continue
		}
		inFlight.Add(1)
		wg.Go(func() {
			defer inFlight.Add(-1)
			sleepUntil(ctx, due)
			sent := time.Now()
			o := s.send(ctx, url, c)
			elapsed := time.Since(due)
			if !measured || ctx.Err() != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			counted.record(c.kind, o, elapsed)
			issueLag.Record(sent.Sub(due))
		})
	}
	wg.Wait()

	run := cfg.newRun(result.OpenLoop)
	run.OfferedRate = cfg.rate
	// The window is the schedule's, which may end before its last answer
	// does or after; only a stop by the user cuts it short.
	measured := cfg.duration
	if ctx.Err() != nil {
		measured = measuredSpan(measureFrom, measureFrom.Add(cfg.duration), time.Now())
	}
	run.DurationS = measured.Seconds()
	counted.fill(run, measured)
	lag := result.Summarize(issueLag)
	run.IssueLag = &lag
	return run
}
