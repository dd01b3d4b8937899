package store

import (
	"errors"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fsyncFailingStore writes, then reports EIO for the next `failures`
// writes, as a disk whose fsync fails does.
type fsyncFailingStore struct {
	*raft.InmemStore
	failures int
	writes   int
}

func (f *fsyncFailingStore) result() error {
	f.writes++
	if f.failures > 0 {
		f.failures--
		return syscall.EIO
	}
	return nil
}

func (f *fsyncFailingStore) StoreLogs(logs []*raft.Log) error {
	_ = f.InmemStore.StoreLogs(logs)
	return f.result()
}

func (f *fsyncFailingStore) DeleteRange(lo, hi uint64) error {
	_ = f.InmemStore.DeleteRange(lo, hi)
	return f.result()
}

func newRetryTest(t *testing.T, stop chan struct{}) (*retryingLogStore, *fsyncFailingStore) {
	t.Helper()
	disk := &fsyncFailingStore{InmemStore: raft.NewInmemStore()}
	for i := uint64(1); i <= 10; i++ {
		if err := disk.InmemStore.StoreLog(&raft.Log{Index: i, Term: 1}); err != nil {
			t.Fatal(err)
		}
	}
	r := newRetryingLogStore(disk, stop, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.retryMin, r.retryMax = time.Millisecond, time.Millisecond
	return r, disk
}

// tailEntries are n entries from index 8 on.
func tailEntries(n uint64, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := range n {
		out = append(out, &raft.Log{Index: 8 + i, Term: term})
	}
	return out
}

// A follower's tail deletion and the write after it are retried until the
// disk takes them: Raft moves its last index only when both succeed.
func TestTailDeletionAndTheWriteAfterItAreRetried(t *testing.T) {
	r, disk := newRetryTest(t, make(chan struct{}))
	disk.failures = 2
	if err := r.DeleteRange(8, 10); err != nil {
		t.Fatalf("DeleteRange of a tail: %v, want it retried until it succeeds", err)
	}
	if disk.writes != 3 {
		t.Fatalf("%d attempts, want 3 (two failures, then success)", disk.writes)
	}
	disk.failures, disk.writes = 2, 0
	if err := r.StoreLogs(tailEntries(3, 2)); err != nil {
		t.Fatalf("StoreLogs after a tail deletion: %v, want it retried until it succeeds", err)
	}
	if disk.writes != 3 || r.blocked() != nil {
		t.Fatalf("%d attempts, blocked %v; want 3 and nothing blocked", disk.writes, r.blocked())
	}
	// The deletion is settled: the next failure is Raft's to handle.
	disk.failures, disk.writes = 1, 0
	if err := r.StoreLogs([]*raft.Log{{Index: 11, Term: 2}}); !errors.Is(err, syscall.EIO) || disk.writes != 1 {
		t.Fatalf("StoreLogs after a settled deletion: %v after %d attempts, want EIO after 1", err, disk.writes)
	}
}

// A failed StoreLogs with no deletion before it is returned at once: a
// leader must step down rather than wait for its disk.
func TestStoreLogsFailureIsReturnedWithoutATailDeletion(t *testing.T) {
	r, disk := newRetryTest(t, make(chan struct{}))
	disk.failures = 1
	if err := r.StoreLogs([]*raft.Log{{Index: 11, Term: 1}}); !errors.Is(err, syscall.EIO) || disk.writes != 1 {
		t.Fatalf("StoreLogs: %v after %d attempts, want EIO after 1", err, disk.writes)
	}
	// Compaction deletes from the first index: no tail, no retried write.
	if err := r.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	disk.failures, disk.writes = 1, 0
	if err := r.StoreLogs([]*raft.Log{{Index: 11, Term: 1}}); !errors.Is(err, syscall.EIO) || disk.writes != 1 {
		t.Fatalf("StoreLogs after a compaction: %v after %d attempts, want EIO after 1", err, disk.writes)
	}
}

// Stopping the store ends a retry, with the write's error.
func TestStopEndsALogWriteRetry(t *testing.T) {
	stop := make(chan struct{})
	r, disk := newRetryTest(t, stop)
	disk.failures = 1 << 30
	done := make(chan error, 1)
	go func() { done <- r.DeleteRange(8, 10) }()
	deadline := time.After(10 * time.Second)
	for r.blocked() == nil {
		select {
		case <-deadline:
			t.Fatal("the failing deletion was never reported as blocked")
		case <-time.After(time.Millisecond):
		}
	}
	close(stop)
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("DeleteRange after stop: %v, want EIO", err)
		}
	case <-deadline:
		t.Fatal("DeleteRange kept retrying after the store stopped")
	}
}
