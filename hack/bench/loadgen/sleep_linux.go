package main

import (
	"context"
	"syscall"
	"time"
)

// sleepUntil waits until t or until ctx ends. Go's timers wake an idle
// process up to a millisecond late (the poller waits in whole
// milliseconds), which would add that much to every open-loop latency;
// nanosleep blocks one thread but wakes within tens of microseconds.
func sleepUntil(ctx context.Context, t time.Time) {
	const slice = 50 * time.Millisecond // how often a long wait looks at ctx
	for ctx.Err() == nil {
		wait := time.Until(t)
		if wait <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(min(wait, slice)))
		_ = syscall.Nanosleep(&ts, nil) // EINTR: loop and wait the rest
	}
}
