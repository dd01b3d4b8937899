//go:build !testhooks

package testhook

import (
	"log/slog"

	"github.com/buytracker/buytracker/node/clock"
)

// Clock is the system clock: this binary has no test hooks.
func Clock(*slog.Logger) clock.Clock { return clock.System() }

// MisapplyCents is 0: this binary has no test hooks.
func MisapplyCents() int64 { return 0 }
