package main

import (
	"testing"
	"time"
)

func TestScheduleSpacesRequestsEvenlyWithoutDrift(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		rate      float64
		span      time.Duration
		wantCount int
	}{
		{rate: 21, span: 30 * time.Second, wantCount: 630},
		{rate: 83, span: 30 * time.Second, wantCount: 2490},
		{rate: 114, span: 32 * time.Second, wantCount: 3648},
		{rate: 3, span: 1 * time.Second, wantCount: 3},   // 0, 1/3 s, 2/3 s
		{rate: 0.5, span: 3 * time.Second, wantCount: 2}, // 0 s, 2 s
		{rate: 7, span: 1001 * time.Millisecond, wantCount: 8},
	} {
		s := newSchedule(start, tc.rate, tc.span)
		if s.len() != tc.wantCount {
			t.Errorf("rate %v over %v: %d requests, want %d", tc.rate, tc.span, s.len(), tc.wantCount)
		}
		if !s.due(0).Equal(start) {
			t.Errorf("rate %v: first request due at %v, want the start", tc.rate, s.due(0))
		}
		if last := s.due(s.len() - 1); !last.Before(start.Add(tc.span)) {
			t.Errorf("rate %v: last request due at +%v, past the span %v", tc.rate, last.Sub(start), tc.span)
		}
		interval := time.Duration(float64(time.Second) / tc.rate)
		for i := 1; i < s.len(); i++ {
			gap := s.due(i).Sub(s.due(i - 1))
			if gap < interval-time.Nanosecond || gap > interval+time.Nanosecond {
				t.Fatalf("rate %v: gap before request %d is %v, want %v", tc.rate, i, gap, interval)
			}
		}
	}
}

func TestScheduleTimesComeFromTheIndexNotASum(t *testing.T) {
	// 1/3 s is not a whole number of nanoseconds; summing intervals would
	// lose a third of a nanosecond per request, 333 µs after a million.
	start := time.Unix(0, 0)
	s := newSchedule(start, 3, 400_000*time.Second)
	if got, want := s.due(1_000_000).Sub(start), 333_333_333_333_333*time.Nanosecond; got < want-time.Microsecond || got > want+time.Microsecond {
		t.Fatalf("request 1,000,000 at 3/s due at +%v, want +%v", got, want)
	}
}

func TestEmptyScheduleForNoRateOrSpan(t *testing.T) {
	if n := newSchedule(time.Now(), 0, time.Minute).len(); n != 0 {
		t.Errorf("rate 0: %d requests, want 0", n)
	}
	if n := newSchedule(time.Now(), 100, 0).len(); n != 0 {
		t.Errorf("span 0: %d requests, want 0", n)
	}
}

func TestMeasuredSpanStopsAtTheWindowEnd(t *testing.T) {
	from := time.Unix(100, 0)
	end := from.Add(10 * time.Second)
	for _, tc := range []struct {
		now  time.Time
		want time.Duration
	}{
		{now: from.Add(-time.Second), want: 0},
		{now: from.Add(4 * time.Second), want: 4 * time.Second},
		{now: end.Add(3 * time.Second), want: 10 * time.Second},
	} {
		if got := measuredSpan(from, end, tc.now); got != tc.want {
			t.Errorf("measuredSpan at %v = %v, want %v", tc.now.Sub(from), got, tc.want)
		}
	}
}
