// Package clock gives a node its wall-clock time. Production nodes read the
// system clock; test builds may shift it (node/testhook), so tests skew one
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
