//go:build !clockhook

package clock

import "log/slog"

// FromEnvironment is the system clock: this binary has no test hook.
func FromEnvironment(*slog.Logger) Clock { return System() }
