package main

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a flag value for a size in bytes: a plain count ("1048576")
// or a number with a binary (Ki, Mi, Gi, Ti) or decimal (k, M, G, T) suffix,
// as Kubernetes quantities are written ("64Mi").
type byteSize uint64

var byteSuffixes = []struct {
	suffix string
	factor uint64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

func (b *byteSize) String() string { return strconv.FormatUint(uint64(*b), 10) }

func (b *byteSize) Set(s string) error {
	num, factor := strings.TrimSpace(s), uint64(1)
	for _, sf := range byteSuffixes {
		if rest, ok := strings.CutSuffix(num, sf.suffix); ok {
			num, factor = rest, sf.factor
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a size: want a byte count or a whole number with Ki, Mi, Gi, Ti, k, M, G or T", s)
	}
	if n > ^uint64(0)/factor {
		return fmt.Errorf("%q is too large", s)
	}
	*b = byteSize(n * factor)
	return nil
}
