package main

import (
	"math"
	"strconv"
)

// logScale maps values onto pixels logarithmically: the domain [lo, hi]
// (powers of ten) onto [bottom, top], with top < bottom as in SVG, where y
// grows downwards.
type logScale struct {
	lo, hi      float64
	top, bottom float64
}

// newLogScale spans the positive values given, widened to whole powers of
// ten; with no positive value it spans 1 to 10.
func newLogScale(values []float64, top, bottom float64) logScale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		if v > 0 {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	return logScale{lo: lo, hi: hi, top: top, bottom: bottom}
}

// y is v's pixel; values outside the domain (zero and below included) stay
// at its edges.
func (s logScale) y(v float64) float64 {
	if v <= s.lo {
		return s.bottom
	}
	if v >= s.hi {
		return s.top
	}
	f := (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	return s.bottom - f*(s.bottom-s.top)
}

// ticks are the powers of ten from lo to hi.
func (s logScale) ticks() []float64 {
	var out []float64
	for e := math.Round(math.Log10(s.lo)); e <= math.Round(math.Log10(s.hi)); e++ {
		out = append(out, math.Pow(10, e))
	}
	return out
}

// tickLabel prints a power of ten briefly: 0.1, 1, 100, 10k, 1M.
func tickLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
}

// bands splits [left, left+width) into n equal groups; bar i of k within a
// group takes an equal share of the group's middle 80 %.
type bands struct {
	left, width float64
	n           int
}

func (b bands) group(i int) (x, w float64) {
	w = b.width / float64(b.n)
	return b.left + float64(i)*w, w
}

func (b bands) bar(group, i, k int) (x, w float64) {
	gx, gw := b.group(group)
	inner := gw * 0.8
	w = inner / float64(k)
	return gx + gw*0.1 + float64(i)*w, w
}
