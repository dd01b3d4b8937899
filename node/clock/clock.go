// Package clock gives a node its wall-clock time. Production nodes read the
// system clock. A binary built with the `clockhook` tag (the cluster tests
// build one) can be told to run its clock ahead or behind, so tests skew one
// node's clock without ever changing the machine's.
package clock

import "time"

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// System is the machine's clock.
func System() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// OffsetFileEnv names the file a `clockhook` build reads its offset from: a
// Go duration such as "25h" or "-3s", re-read while the node runs.
const OffsetFileEnv = "BUYTRACKER_TEST_CLOCK_OFFSET_FILE"
