package store

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// retryingLogStore retries the Raft log writes that hashicorp/raft does not
// survive failing. A follower whose log conflicts with the leader's deletes
// the conflicting tail (DeleteRange), then writes the leader's entries
// (StoreLogs), and moves its in-memory last index only once both succeeded.
// When either fails after the deletion reached the disk (and a failed fsync
// does not say whether it did), Raft still counts the deleted entries as its
// own, fails to read them on every later AppendEntries, and the follower
// never catches up until it restarts (raft.go, appendEntries: "TODO: leaving
// r.getLastLog() in the wrong state if there was a truncation above").
//
// So a DeleteRange is retried until it succeeds (deleting again is
// harmless), and so is the StoreLogs that follows the deletion of a tail:
// the follower's Raft waits for its disk, as the ledger waits to write its
// records. Any other failed StoreLogs is returned at once, because Raft
// survives it: a leader steps down, a follower tells the leader it failed.
type retryingLogStore struct {
	raft.LogStore
	stop               <-chan struct{}
	logger             *slog.Logger
	retryMin, retryMax time.Duration

	mu sync.Mutex
	// tailDeleted is set from the deletion of a tail until a StoreLogs
	// succeeds.
	tailDeleted bool
	// failing is the write being retried, nil when none.
	failing error
}

func newRetryingLogStore(store raft.LogStore, stop <-chan struct{}, logger *slog.Logger) *retryingLogStore {
	return &retryingLogStore{LogStore: store, stop: stop, logger: logger, retryMin: 50 * time.Millisecond, retryMax: 2 * time.Second}
}

// StoreLog implements raft.LogStore.
func (r *retryingLogStore) StoreLog(l *raft.Log) error { return r.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore.
func (r *retryingLogStore) StoreLogs(logs []*raft.Log) error {
	write := func() error { return r.LogStore.StoreLogs(logs) }
	r.mu.Lock()
	afterTail := r.tailDeleted
	r.mu.Unlock()
	var err error
	if afterTail {
		err = r.retry("StoreLogs", write)
	} else {
		err = write()
	}
	if err == nil {
		r.mu.Lock()
		r.tailDeleted = false
		r.mu.Unlock()
	}
	return err
}

// DeleteRange implements raft.LogStore. Compaction deletes from the first
// index on; a deletion that starts later removes a tail.
func (r *retryingLogStore) DeleteRange(lo, hi uint64) error {
	if first, err := r.LogStore.FirstIndex(); err == nil && lo > first {
		r.mu.Lock()
		r.tailDeleted = true
		r.mu.Unlock()
	}
	return r.retry("DeleteRange", func() error { return r.LogStore.DeleteRange(lo, hi) })
}

// retry calls write until it succeeds or the store stops, waiting longer
// after each failure.
func (r *retryingLogStore) retry(op string, write func() error) error {
	wait := r.retryMin
	for {
		err := write()
		r.setFailing(op, err)
		if err == nil {
			return nil
		}
		select {
		case <-r.stop:
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, r.retryMax)
	}
}

func (r *retryingLogStore) setFailing(op string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil && r.failing == nil:
		r.logger.Error("A Raft log write failed; Raft waits for it, retrying until the disk takes it", "op", op, "error", err)
		r.failing = fmt.Errorf("%s: %w", op, err)
	case err == nil && r.failing != nil:
		r.logger.Info("The Raft log write succeeded after failing", "op", op)
		r.failing = nil
	}
}

// blocked returns the write being retried, nil when none.
func (r *retryingLogStore) blocked() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failing
}
