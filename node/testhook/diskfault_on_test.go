//go:build testhooks

package testhook

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// faultedStore returns an in-memory log store behind the fault wrapper,
// re-reading the mode file on every call, and the function that sets it.
func faultedStore(t *testing.T) (*raft.InmemStore, *faultyLogStore, func(mode string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk-fault")
	t.Setenv(DiskFaultFileEnv, path)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	wrap := DiskFaults(logger)
	if wrap == nil {
		t.Fatal("DiskFaults returned no wrapper with the variable set")
	}
	inner := raft.NewInmemStore()
	faulty := wrap(inner).(*faultyLogStore)
	faulty.mode.every = 0
	set := func(mode string) {
		if err := os.WriteFile(path, []byte(mode+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return inner, faulty, set
}

func entry(i uint64) *raft.Log { return &raft.Log{Index: i, Term: 1, Data: []byte{byte(i)}} }

func TestDiskFaultsOffWithoutTheVariable(t *testing.T) {
	t.Setenv(DiskFaultFileEnv, "")
	if DiskFaults(slog.Default()) != nil {
		t.Fatal("DiskFaults wraps the log store with the variable empty")
	}
}

func TestNoFaultFileWritesPass(t *testing.T) {
	inner, faulty, _ := faultedStore(t)
	if err := faulty.StoreLogs([]*raft.Log{entry(1), entry(2)}); err != nil {
		t.Fatalf("StoreLogs without a fault file: %v", err)
	}
	if last, _ := inner.LastIndex(); last != 2 {
		t.Fatalf("last index %d after storing 2 entries", last)
	}
}

func TestWriteFaultWritesNothing(t *testing.T) {
	inner, faulty, set := faultedStore(t)
	if err := faulty.StoreLogs([]*raft.Log{entry(1), entry(2)}); err != nil {
		t.Fatal(err)
	}
	set("write")
	err := faulty.StoreLogs([]*raft.Log{entry(3)})
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("StoreLogs under a write fault: %v, want EIO", err)
	}
	if err := faulty.StoreLog(entry(3)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("StoreLog under a write fault: %v, want EIO", err)
	}
	if err := faulty.DeleteRange(1, 1); !errors.Is(err, syscall.EIO) {
		t.Fatalf("DeleteRange under a write fault: %v, want EIO", err)
	}
	first, _ := inner.FirstIndex()
	last, _ := inner.LastIndex()
	if first != 1 || last != 2 {
		t.Fatalf("log is [%d, %d] after refused writes, want [1, 2] untouched", first, last)
	}
	var got raft.Log
	if err := faulty.GetLog(2, &got); err != nil || got.Index != 2 {
		t.Fatalf("reads go on under a write fault: %v %+v", err, got)
	}
	if n := faulty.injected.Load(); n != 3 {
		t.Fatalf("%d faults counted, want 3", n)
	}
}

func TestFsyncFaultWritesThenFails(t *testing.T) {
	inner, faulty, set := faultedStore(t)
	set("fsync")
	if err := faulty.StoreLogs([]*raft.Log{entry(1), entry(2)}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("StoreLogs under an fsync fault: %v, want EIO", err)
	}
	if last, _ := inner.LastIndex(); last != 2 {
		t.Fatalf("last index %d: the entries should have reached the store before the error", last)
	}
	if err := faulty.DeleteRange(1, 1); !errors.Is(err, syscall.EIO) {
		t.Fatalf("DeleteRange under an fsync fault: %v, want EIO", err)
	}
	if first, _ := inner.FirstIndex(); first != 2 {
		t.Fatalf("first index %d: the deletion should have reached the store before the error", first)
	}

	set("")
	if err := faulty.StoreLogs([]*raft.Log{entry(3)}); err != nil {
		t.Fatalf("StoreLogs once the fault is cleared: %v", err)
	}
}

func TestUnknownFaultModeKeepsTheCurrentOne(t *testing.T) {
	_, faulty, set := faultedStore(t)
	set("write")
	if err := faulty.StoreLogs([]*raft.Log{entry(1)}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("under a write fault: %v, want EIO", err)
	}
	set("wirte")
	if err := faulty.StoreLogs([]*raft.Log{entry(1)}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("after an unknown mode following write: %v, want the write fault kept", err)
	}
}

func TestFaultFileIsReadAtMostEveryInterval(t *testing.T) {
	_, faulty, set := faultedStore(t)
	faulty.mode.every = time.Hour
	if err := faulty.StoreLogs([]*raft.Log{entry(1)}); err != nil {
		t.Fatal(err)
	}
	set("write")
	if err := faulty.StoreLogs([]*raft.Log{entry(2)}); err != nil {
		t.Fatalf("the mode file was re-read within the interval: %v", err)
	}
}
