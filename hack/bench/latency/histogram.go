// Package latency records request latencies in a log-bucketed histogram in
// the manner of HdrHistogram: every power of two is split into equal
// sub-buckets, so any recorded value is known to within 1/128 of itself
// from a nanosecond up to the top of the range, in a few tens of kilobytes.
package latency

import (
	"math"
	"math/bits"
	"time"
)

const (
	// subBucketBits sets the precision: 2^7 = 128 sub-buckets per power of
	// two keep a value's bucket within 1/128 (0.8 %) of the value.
	subBucketBits = 7
	subBuckets    = 1 << subBucketBits
	// valueBits bounds the range: 2^40 ns is about 18 minutes. Larger
	// values land in the top bucket; Max stays exact.
	valueBits   = 40
	maxTracked  = 1<<valueBits - 1
	bucketCount = (valueBits-subBucketBits)*subBuckets + subBuckets
)

// Histogram counts durations. The zero value is not usable; call New. A
// Histogram is not safe for concurrent use: give each goroutine its own and
// Merge them.
type Histogram struct {
	counts   []uint64
	total    uint64
	sum      float64
	min, max uint64
}

// New returns an empty histogram.
func New() *Histogram {
	return &Histogram{counts: make([]uint64, bucketCount), min: math.MaxUint64}
}

// bucketOf maps a value to its bucket: values below 2*subBuckets have a
// bucket each; above that, each power of two has subBuckets buckets.
func bucketOf(v uint64) int {
	if v > maxTracked {
		v = maxTracked
	}
	shift := bits.Len64(v) - (subBucketBits + 1)
	if shift < 0 {
		shift = 0
	}
	return shift*subBuckets + int(v>>uint(shift))
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	shift := i/subBuckets - 1
	if shift < 0 {
		shift = 0
	}
	sub := uint64(i - shift*subBuckets)
	lo = sub << uint(shift)
	return lo, lo + 1<<uint(shift) - 1
}

// Record adds one observation; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	h.total++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest observation, exactly (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest observation, exactly (0 when empty).
func (h *Histogram) Min() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Mean is the average observation (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Quantile returns the q-quantile (0 < q <= 1): the upper bound of the bucket
// that holds the observation of rank ceil(q*count), capped at Max. It never
// understates: the true value v satisfies v <= Quantile(q) <= v + v/128.
// Above the tracked range (18 minutes) it answers Max.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(1, min(rank, h.total))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == bucketCount-1 {
				return time.Duration(h.max) // values past the range share this bucket
			}
			_, hi := bucketBounds(i)
			return time.Duration(min(hi, h.max))
		}
	}
	return time.Duration(h.max)
}
