package latency

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// referenceQuantile is the exact q-quantile by the same rank rule as
// Quantile: the observation of rank ceil(q*n) in sorted order.
func referenceQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func TestQuantilesStayWithinOneBucketOfSortedReference(t *testing.T) {
	distributions := map[string]func(r *rand.Rand) time.Duration{
		// Log-uniform from 1 µs to 10 s: every power of two gets samples.
		"log-uniform": func(r *rand.Rand) time.Duration {
			return time.Duration(math.Exp(math.Log(1e3) + r.Float64()*(math.Log(1e10)-math.Log(1e3))))
		},
		// A fast body with a slow tail, like a server under load.
		"bimodal": func(r *rand.Rand) time.Duration {
			if r.IntN(100) < 2 {
				return 20*time.Millisecond + time.Duration(r.IntN(int(200*time.Millisecond)))
			}
			return 300*time.Microsecond + time.Duration(r.IntN(int(time.Millisecond)))
		},
		// Small integers are stored exactly.
		"tiny": func(r *rand.Rand) time.Duration { return time.Duration(r.IntN(2 * subBuckets)) },
	}
	quantiles := []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1}
	for name, draw := range distributions {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			h := New()
			samples := make([]time.Duration, 50_000)
			for i := range samples {
				samples[i] = draw(r)
				h.Record(samples[i])
			}
			slices.Sort(samples)
			for _, q := range quantiles {
				want := referenceQuantile(samples, q)
				got := h.Quantile(q)
				if got < want || got > want+want/subBuckets {
					t.Errorf("Quantile(%v) = %v, want within [%v, %v]", q, got, want, want+want/subBuckets)
				}
			}
			if h.Max() != samples[len(samples)-1] || h.Min() != samples[0] {
				t.Errorf("Min, Max = %v, %v; want %v, %v", h.Min(), h.Max(), samples[0], samples[len(samples)-1])
			}
			if h.Count() != uint64(len(samples)) {
				t.Errorf("Count = %d, want %d", h.Count(), len(samples))
			}
		})
	}
}

func TestSmallValuesAreExact(t *testing.T) {
	h := New()
	for v := range 2 * subBuckets {
		h.Record(time.Duration(v))
	}
	for v := 1; v <= 2*subBuckets; v++ {
		q := float64(v) / float64(2*subBuckets)
		if got := h.Quantile(q); got != time.Duration(v-1) {
			t.Fatalf("Quantile(%v) = %v, want %v", q, got, time.Duration(v-1))
		}
	}
}

func TestBucketsTileTheRangeWithoutGaps(t *testing.T) {
	next := uint64(0)
	for i := range bucketCount {
		lo, hi := bucketBounds(i)
		if lo != next || hi < lo {
			t.Fatalf("bucket %d = [%d, %d], want it to start at %d", i, lo, hi, next)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d, %d] but bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		next = hi + 1
	}
	if next != maxTracked+1 {
		t.Fatalf("buckets end at %d, want %d", next-1, uint64(maxTracked))
	}
}

func TestValuesPastTheRangeReportTheExactMax(t *testing.T) {
	h := New()
	h.Record(time.Millisecond)
	h.Record(time.Hour)
	if got := h.Quantile(1); got != time.Hour {
		t.Fatalf("Quantile(1) = %v, want 1h", got)
	}
	if got := h.Quantile(0.5); got < time.Millisecond || got > time.Millisecond+time.Millisecond/subBuckets {
		t.Fatalf("Quantile(0.5) = %v, want about 1ms", got)
	}
}

func TestMergeEqualsRecordingIntoOne(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	all, a, b := New(), New(), New()
	for i := range 10_000 {
		d := time.Duration(r.IntN(int(50 * time.Millisecond)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	a.Merge(nil)
	a.Merge(New())
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("merged Quantile(%v) = %v, want %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count() != all.Count() || a.Min() != all.Min() || a.Max() != all.Max() || a.Mean() != all.Mean() {
		t.Errorf("merged count/min/max/mean = %d/%v/%v/%v, want %d/%v/%v/%v",
			a.Count(), a.Min(), a.Max(), a.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
}

func TestEmptyHistogramAnswersZero(t *testing.T) {
	h := New()
	if h.Quantile(0.99) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Fatal("an empty histogram should answer zero everywhere")
	}
}
