//go:build !testhooks

package testhook

import (
	"log/slog"

	"github.com/hashicorp/raft"
)

// DiskFaults is nil: this binary has no test hooks, its log store is never
// wrapped.
func DiskFaults(*slog.Logger) func(raft.LogStore) raft.LogStore { return nil }
