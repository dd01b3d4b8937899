package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buytracker/buytracker/hack/bench/result"
)

// runClosed drives the target with cfg.conns workers, each sending its next
// request as soon as the last one answered, for warm-up plus duration.
// Requests begun during the warm-up are sent but not counted.
func runClosed(ctx context.Context, cfg config, s *sender) *result.Run {
	start := time.Now()
	measureFrom := start.Add(cfg.warmup)
	end := measureFrom.Add(cfg.duration)

	tallies := make([]*tally, cfg.conns)
	var wg sync.WaitGroup
	for w := range cfg.conns {
		tallies[w] = newTally()
		wg.Go(func() {
			calls := newCallMaker(cfg.mix, cfg.seed+uint64(w))
			url := cfg.urls[w%len(cfg.urls)]
			for ctx.Err() == nil {
				began := time.Now()
				if !began.Before(end) {
					return
				}
				c := calls.next()
				o := s.send(ctx, url, c)
				if began.Before(measureFrom) || ctx.Err() != nil {
					continue // warm-up, or stopped by the user mid-request
				}
				tallies[w].record(c.kind, o, time.Since(began))
			}
		})
	}
	wg.Wait()

	total := newTally()
	for _, t := range tallies {
		total.merge(t)
	}
	run := cfg.newRun(result.ClosedLoop)
	measured := measuredSpan(measureFrom, end, time.Now())
	run.DurationS = measured.Seconds()
	total.fill(run, measured)
	return run
}

// runPreload records cfg.preload purchases as fast as cfg.conns workers
// can, retrying failed ones, within cfg.duration. It reports the rate of
// acknowledged purchases and fails if it fell short.
func runPreload(ctx context.Context, cfg config, s *sender) (*result.Run, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	start := time.Now()

	// A worker claims a purchase before sending it and gives the claim back
	// when the purchase failed, so exactly cfg.preload succeed.
	var claimed, recorded atomic.Int64
	tallies := make([]*tally, cfg.conns)
	var wg sync.WaitGroup
	for w := range cfg.conns {
		tallies[w] = newTally()
		wg.Go(func() {
			calls := newCallMaker(cfg.mix, cfg.seed+uint64(w))
			url := cfg.urls[w%len(cfg.urls)]
			for ctx.Err() == nil {
				if claimed.Add(1) > cfg.preload {
					claimed.Add(-1)
					return
				}
				began := time.Now()
				c := calls.next()
				o := s.send(ctx, url, c)
				if ctx.Err() != nil {
					return
				}
				tallies[w].record(c.kind, o, time.Since(began))
				if o.ok {
					recorded.Add(1)
					continue
				}
				claimed.Add(-1)
				pause(ctx, 10*time.Millisecond) // the node is refusing: don't spin
			}
		})
	}
	wg.Wait()

	total := newTally()
	for _, t := range tallies {
		total.merge(t)
	}
	run := cfg.newRun(result.ClosedLoop)
	elapsed := time.Since(start)
	run.DurationS = elapsed.Seconds()
	total.fill(run, elapsed)
	if got := recorded.Load(); got < cfg.preload {
		return run, fmt.Errorf("preload recorded %d of %d purchases within %v", got, cfg.preload, cfg.duration)
	}
	return run, nil
}

// pause waits for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
