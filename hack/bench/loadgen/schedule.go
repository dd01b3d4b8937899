package main

import (
	"math"
	"time"
)

// schedule is when an open-loop run sends its requests: request i is due at
// start + i/rate. Each time is computed from i rather than by adding an
// interval again and again, so rounding never accumulates into drift.
type schedule struct {
	start time.Time
	rate  float64 // requests per second
	count int
}

// newSchedule plans a run of span at rate requests per second: the
// requests due in [start, start+span).
func newSchedule(start time.Time, rate float64, span time.Duration) schedule {
	s := schedule{start: start, rate: rate}
	if rate <= 0 || span <= 0 {
		return s
	}
	end := start.Add(span)
	s.count = int(math.Ceil(span.Seconds() * rate))
	// Float rounding can make that one off either way: the due times decide.
	for s.count > 0 && !s.due(s.count-1).Before(end) {
		s.count--
	}
	for s.due(s.count).Before(end) {
		s.count++
	}
	return s
}

// due is when request i should be sent.
func (s schedule) due(i int) time.Time {
	return s.start.Add(time.Duration(float64(i) * float64(time.Second) / s.rate))
}

// len is how many requests the schedule holds.
func (s schedule) len() int { return s.count }

// measuredSpan is how much of the window [from, end) has passed by now.
func measuredSpan(from, end, now time.Time) time.Duration {
	if now.After(end) {
		now = end
	}
	return max(now.Sub(from), 0)
}
