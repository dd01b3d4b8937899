package main

import "testing"

func TestByteSizeParsesCountsAndSuffixes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"0", 0}, {"4096", 4096}, {"64Mi", 64 << 20}, {"1Gi", 1 << 30}, {"2Ki", 2048},
		{"500M", 500_000_000}, {"3k", 3000}, {"1Ti", 1 << 40},
	} {
		var b byteSize
		if err := b.Set(tc.in); err != nil || uint64(b) != tc.want {
			t.Errorf("Set(%q) = %d, %v; want %d", tc.in, b, err, tc.want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5Gi", "64MB", "Mi", "20000000Ti", "lots"} {
		b := byteSize(7)
		if err := b.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted %d", bad, b)
		} else if b != 7 {
			t.Errorf("Set(%q) failed but changed the value to %d", bad, b)
		}
	}
}
