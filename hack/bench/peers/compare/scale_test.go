package main

import (
	"math"
	"testing"
)

func TestLogScaleSpansWholePowersOfTenAroundTheValues(t *testing.T) {
	s := newLogScale([]float64{0, 340, 27_000, -5}, 20, 320)
	if s.lo != 100 || s.hi != 100_000 {
		t.Errorf("domain [%g, %g], want [100, 100000]", s.lo, s.hi)
	}
	if s := newLogScale(nil, 0, 100); s.lo != 1 || s.hi != 10 {
		t.Errorf("no values: domain [%g, %g], want [1, 10]", s.lo, s.hi)
	}
	if s := newLogScale([]float64{1000}, 0, 100); s.lo != 1000 || s.hi != 10_000 {
		t.Errorf("one power of ten: domain [%g, %g], want [1000, 10000]", s.lo, s.hi)
	}
}

func TestLogScaleMapsDecadesToEqualHeights(t *testing.T) {
	s := logScale{lo: 1, hi: 1000, top: 0, bottom: 300}
	for v, want := range map[float64]float64{1: 300, 10: 200, 100: 100, 1000: 0, 0: 300, -3: 300, 1e9: 0} {
		if got := s.y(v); math.Abs(got-want) > 1e-9 {
			t.Errorf("y(%g) = %g, want %g", v, got, want)
		}
	}
	if !(s.y(20) < s.y(19)) {
		t.Error("a larger value is not drawn higher")
	}
}

func TestTicksArePowersOfTenAcrossTheDomain(t *testing.T) {
	got := logScale{lo: 0.1, hi: 1000}.ticks()
	want := []float64{0.1, 1, 10, 100, 1000}
	if len(got) != len(want) {
		t.Fatalf("ticks %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12*want[i] {
			t.Errorf("tick %d = %g, want %g", i, got[i], want[i])
		}
	}
}

func TestTickLabels(t *testing.T) {
	for v, want := range map[float64]string{0.1: "0.1", 1: "1", 100: "100", 1000: "1k", 100_000: "100k", 1e6: "1M"} {
		if got := tickLabel(v); got != want {
			t.Errorf("tickLabel(%g) = %q, want %q", v, got, want)
		}
	}
}

func TestBarsStayInsideTheirGroupAndDoNotOverlap(t *testing.T) {
	b := bands{left: 70, width: 800, n: 4}
	for g := range 4 {
		gx, gw := b.group(g)
		prevEnd := gx
		for i := range 3 {
			x, w := b.bar(g, i, 3)
			if x < prevEnd-1e-9 || x+w > gx+gw+1e-9 || w <= 0 {
				t.Errorf("group %d bar %d at [%g, %g) outside [%g, %g) or over the previous bar", g, i, x, x+w, gx, gx+gw)
			}
			prevEnd = x + w
		}
	}
	if gx, _ := b.group(3); gx+200 != 870 {
		t.Errorf("last group ends at %g, want 870", gx+200)
	}
}
