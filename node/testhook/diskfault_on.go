//go:build testhooks

package testhook

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// DiskFaults returns a wrapper that injects the disk faults named in the
// file DiskFaultFileEnv names into a Raft log store, or nil when the
// variable is not set.
//
// Only the log store is wrapped, not the stable store (the current term and
// vote, in the same bbolt file): hashicorp/raft panics when it cannot save a
// new term (Raft.setCurrentTerm), so a failing term write would only test
// that a panicking process exits.
func DiskFaults(logger *slog.Logger) func(raft.LogStore) raft.LogStore {
	path := os.Getenv(DiskFaultFileEnv)
	if path == "" {
		return nil
	}
	logger.Warn("Test build: disk faults are injected into the Raft log store from a file", "file", path)
	return func(store raft.LogStore) raft.LogStore {
		return &faultyLogStore{LogStore: store, mode: newFaultFile(path, logger), logger: logger}
	}
}

// The disk fault modes the file may hold.
const (
	noFault    = ""
	writeFault = "write" // fail before writing anything
	fsyncFault = "fsync" // write, then fail: the entries may or may not be durable
	// slowApply leaves the log store alone and makes the state machine
	// wait SlowApplyDelay before each batch it applies: a node whose
	// records disk is slow, so that its ledger lags its commit index.
	slowApply = "slow-apply"
)

// SlowApplyDelay is how long each applied batch waits in slow-apply mode.
const SlowApplyDelay = 2 * time.Second

// faultFile is the current mode, re-read from its file at most every
// `every`.
type faultFile struct {
	path   string
	every  time.Duration
	logger *slog.Logger

	mu      sync.Mutex
	readAt  time.Time
	mode    string
	lastRaw string
}

func newFaultFile(path string, logger *slog.Logger) *faultFile {
	return &faultFile{path: path, every: 100 * time.Millisecond, logger: logger}
}

func (f *faultFile) current() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.every > 0 && !f.readAt.IsZero() && now.Sub(f.readAt) < f.every {
		return f.mode
	}
	f.readAt = now
	raw, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		raw, err = nil, nil
	}
	text := strings.TrimSpace(string(raw))
	if err != nil || text == f.lastRaw {
		// A file that cannot be read or did not change keeps the mode.
		return f.mode
	}
	f.lastRaw = text
	switch text {
	case noFault, writeFault, fsyncFault, slowApply:
		f.logger.Warn("Test disk fault mode changed", "from", f.mode, "to", text)
		f.mode = text
	default:
		f.logger.Warn("Unknown test disk fault mode; keeping the current one", "file", f.path, "content", text, "mode", f.mode,
			"want", writeFault+", "+fsyncFault+", "+slowApply+" or nothing")
	}
	return f.mode
}

// ApplyDelay returns how long the state machine should wait before each
// batch, as the file DiskFaultFileEnv names says (SlowApplyDelay in
// slow-apply mode, else 0), or nil when the variable is not set.
func ApplyDelay(logger *slog.Logger) func() time.Duration {
	path := os.Getenv(DiskFaultFileEnv)
	if path == "" {
		return nil
	}
	// Read on every batch, so that a test's change takes effect on the very
	// next one: a file read is small beside a batch's fsync.
	mode := newFaultFile(path, logger)
	mode.every = 0
	return func() time.Duration {
		if mode.current() == slowApply {
			return SlowApplyDelay
		}
		return 0
	}
}

// faultyLogStore fails the writes of the log store under it as the fault
// file says. Reads are never faulted.
type faultyLogStore struct {
	raft.LogStore
	mode     *faultFile
	logger   *slog.Logger
	injected atomic.Uint64
}

func (s *faultyLogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *faultyLogStore) StoreLogs(logs []*raft.Log) error {
	return s.write("StoreLogs", func() error { return s.LogStore.StoreLogs(logs) })
}

func (s *faultyLogStore) DeleteRange(lo, hi uint64) error {
	return s.write("DeleteRange", func() error { return s.LogStore.DeleteRange(lo, hi) })
}

func (s *faultyLogStore) write(op string, do func() error) error {
	switch mode := s.mode.current(); mode {
	case writeFault:
		return s.fail(op, mode)
	case fsyncFault:
		if err := do(); err != nil {
			return err
		}
		return s.fail(op, mode)
	default:
		return do()
	}
}

// fail logs every injected fault with a running count (tests await the
// line to know the fault was hit) and returns EIO, as a failing disk does.
func (s *faultyLogStore) fail(op, mode string) error {
	n := s.injected.Add(1)
	s.logger.Warn("Injected a disk fault", "op", op, "mode", mode, "injected_total", n)
	return fmt.Errorf("raft log %s: injected %s fault: %w", op, mode, syscall.EIO)
}
