package main

import (
	"fmt"
	"strconv"
	"strings"
)

// requestKind is one of the client API calls the generator makes.
type requestKind int

const (
	kindBuy requestKind = iota
	kindStats
	kindHealth
	kindCount
)

func (k requestKind) String() string {
	switch k {
	case kindBuy:
		return "buy"
	case kindStats:
		return "stats"
	case kindHealth:
		return "health"
	}
	return fmt.Sprintf("requestKind(%d)", int(k))
}

// requestMix picks request kinds in fixed proportions: weight w of a total
// W means a kind is picked for w of every W consecutive values of pick's
// argument.
type requestMix struct {
	kinds []requestKind
	// upTo[i] is the sum of the weights of kinds[0..i].
	upTo  []int
	total int
}

// parseMix reads "buy=60,stats=30,health=10". Weights are non-negative
// integers and at least one is positive.
func parseMix(spec string) (requestMix, error) {
	var m requestMix
	seen := map[requestKind]bool{}
	for part := range strings.SplitSeq(spec, ",") {
		name, weightText, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return requestMix{}, fmt.Errorf("mix entry %q: want kind=weight", part)
		}
		kind, err := parseKind(name)
		if err != nil {
			return requestMix{}, err
		}
		if seen[kind] {
			return requestMix{}, fmt.Errorf("mix names %s twice", kind)
		}
		seen[kind] = true
		weight, err := strconv.Atoi(weightText)
		if err != nil || weight < 0 {
			return requestMix{}, fmt.Errorf("mix weight %q of %s: want a non-negative integer", weightText, kind)
		}
		if weight == 0 {
			continue
		}
		m.total += weight
		m.kinds = append(m.kinds, kind)
		m.upTo = append(m.upTo, m.total)
	}
	if m.total == 0 {
		return requestMix{}, fmt.Errorf("mix %q has no positive weight", spec)
	}
	return m, nil
}

func parseKind(name string) (requestKind, error) {
	for k := range kindCount {
		if k.String() == name {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown request kind %q (want buy, stats or health)", name)
}

// pick maps v (uniform over [0, total) for random proportions, or a counter
// for exact ones) to a kind.
func (m requestMix) pick(v uint64) requestKind {
	r := int(v % uint64(m.total))
	for i, limit := range m.upTo {
		if r < limit {
			return m.kinds[i]
		}
	}
	return m.kinds[len(m.kinds)-1]
}

func (m requestMix) String() string {
	parts := make([]string, len(m.kinds))
	prev := 0
	for i, k := range m.kinds {
		parts[i] = fmt.Sprintf("%s=%d", k, m.upTo[i]-prev)
		prev = m.upTo[i]
	}
	return strings.Join(parts, ",")
}
