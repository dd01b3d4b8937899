//go:build !testhooks

package testhook

import (
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// DiskFaults is nil: this binary has no test hooks, its log store is never
// wrapped.
func DiskFaults(*slog.Logger) func(raft.LogStore) raft.LogStore { return nil }

// ApplyDelay is nil: this binary's state machine never waits.
func ApplyDelay(*slog.Logger) func() time.Duration { return nil }
