package main

import (
	"fmt"
	"html"
	"slices"
	"strings"

	"github.com/buytracker/buytracker/hack/bench/result"
)

// Colours of the systems, in order (the baseline first).
var palette = []string{"#1b7837", "#2166ac", "#b2182b", "#e08214", "#762a83", "#4d4d4d"}

const (
	plotWidth   = 960
	panelHeight = 300
	marginLeft  = 70
	marginRight = 20
	legendSpace = 50
	labelSpace  = 40
)

// panel is one chart of the plot: a figure of every run, on a log scale.
type panel struct {
	title  string
	figure func(*result.Run) float64
}

// median of the rounds' figures (the mean of the middle two for an even
// count); ok is false when no round has a run.
func median(runs []*result.Run, figure func(*result.Run) float64) (float64, bool) {
	var vs []float64
	for _, r := range runs {
		if r != nil {
			vs = append(vs, figure(r))
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	mid := len(vs) / 2
	if len(vs)%2 == 0 {
		return (vs[mid-1] + vs[mid]) / 2, true
	}
	return vs[mid], true
}

// plot draws two panels, throughput and p99 latency, each a group of bars
// per load (one bar per system, the median of the rounds) with a dot for
// every round, so the rounds' spread shows.
func plot(m *measurements, loads []load) string {
	panels := []panel{
		{"successes/s (log scale; higher is better)", func(r *result.Run) float64 { return r.Throughput }},
		{"p99 latency, ms (log scale; lower is better)", func(r *result.Run) float64 { return r.Latency.P99Ms }},
	}
	height := legendSpace + len(panels)*(panelHeight+labelSpace)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotWidth, height)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14" font-weight="bold">buytracker and its peers on one machine: bar = median of %d rounds, dots = each round</text>`+"\n",
		marginLeft, m.rounds)
	for i, system := range m.systems {
		x := marginLeft + i*150
		fmt.Fprintf(&b, `<rect x="%d" y="30" width="12" height="12" fill="%s"/><text x="%d" y="40">%s</text>`+"\n",
			x, palette[i%len(palette)], x+18, html.EscapeString(system))
	}
	for p, pn := range panels {
		top := float64(legendSpace + p*(panelHeight+labelSpace) + 20)
		drawPanel(&b, m, loads, pn, top, top+panelHeight-20)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func drawPanel(b *strings.Builder, m *measurements, loads []load, pn panel, top, bottom float64) {
	var values []float64
	for _, l := range loads {
		for _, system := range m.systems {
			for _, r := range m.get(l.key, system) {
				if r != nil {
					values = append(values, pn.figure(r))
				}
			}
		}
	}
	ys := newLogScale(values, top, bottom)
	xs := bands{left: marginLeft, width: plotWidth - marginLeft - marginRight, n: len(loads)}
	fmt.Fprintf(b, `<text x="%d" y="%.1f" font-weight="bold">%s</text>`+"\n", marginLeft, top-6, html.EscapeString(pn.title))
	for _, t := range ys.ticks() {
		y := ys.y(t)
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			marginLeft, plotWidth-marginRight, y, y, marginLeft-6, y+4, tickLabel(t))
	}
	for g, l := range loads {
		gx, gw := xs.group(g)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", gx+gw/2, bottom+16, html.EscapeString(l.name))
		for i, system := range m.systems {
			runs := m.get(l.key, system)
			x, w := xs.bar(g, i, len(m.systems))
			colour := palette[i%len(palette)]
			v, ok := median(runs, pn.figure)
			if !ok {
				fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9">n/a</text>`+"\n", x+w/2, bottom-4)
				continue
			}
			y := ys.y(v)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.75"><title>%s, %s: %.4g</title></rect>`+"\n",
				x, y, w*0.9, bottom-y, colour, html.EscapeString(system), html.EscapeString(l.name), v)
			for _, r := range runs {
				if r != nil {
					fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="black"/>`+"\n", x+w*0.45, ys.y(pn.figure(r)))
				}
			}
		}
	}
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", marginLeft, plotWidth-marginRight, bottom, bottom)
}
