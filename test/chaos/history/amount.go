package history

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseCents reads a decimal amount as the node writes it ("12.34", "0.5",
// "7") into integer cents. Signs, exponents and more than two decimals are
// errors: the node never writes them.
func ParseCents(s string) (int64, error) {
	whole, frac, dotted := strings.Cut(s, ".")
	if whole == "" || (dotted && (frac == "" || len(frac) > 2)) || !digitsOnly(whole) || !digitsOnly(frac) {
		return 0, fmt.Errorf("amount %q is not a decimal with at most two decimals", s)
	}
	units, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || units > (1<<63-1-99)/100 {
		return 0, fmt.Errorf("amount %q is out of range", s)
	}
	cents := int64(0)
	if frac != "" {
		c, _ := strconv.ParseInt(frac, 10, 64) // digits only, at most two
		if len(frac) == 1 {
			c *= 10
		}
		cents = c
	}
	return units*100 + cents, nil
}

// FormatCents writes non-negative cents as the decimal string POST /buy
// takes ("12.34").
func FormatCents(cents int64) string {
	return fmt.Sprintf("%d.%02d", cents/100, cents%100)
}

func digitsOnly(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
