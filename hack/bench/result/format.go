package result

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Millis prints a latency in milliseconds with about three significant
// digits, as the reports' tables show them.
func Millis(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// DescribeErrors prints failures as "0", or "12 (504: 10, timeout: 2)",
// keys sorted.
func DescribeErrors(total int64, byKey map[string]int64) string {
	if total == 0 {
		return "0"
	}
	parts := make([]string, 0, len(byKey))
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		parts = append(parts, fmt.Sprintf("%s: %d", key, byKey[key]))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// ErrorSummary is DescribeErrors of the run's failures.
func (r *Run) ErrorSummary() string { return DescribeErrors(r.ErrorCount(), r.Errors) }
