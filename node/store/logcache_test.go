package store

import (
	"bytes"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// countingStore counts the reads that reach the real log store.
type countingStore struct {
	raft.LogStore
	reads atomic.Int64
}

func (c *countingStore) GetLog(index uint64, out *raft.Log) error {
	c.reads.Add(1)
	return c.LogStore.GetLog(index, out)
}

func openCachedBolt(t *testing.T, maxEntries, maxBytes int) (*logCache, *countingStore) {
	t.Helper()
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(t.TempDir(), "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	counted := &countingStore{LogStore: bolt}
	return newLogCache(counted, maxEntries, maxBytes), counted
}

func entry(index uint64, size int, tag byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{tag}, size)}
}

// readBack reads index through the cache and reports whether the real store
// was asked.
func readBack(t *testing.T, c *logCache, counted *countingStore, index uint64) (*raft.Log, bool) {
	t.Helper()
	before := counted.reads.Load()
	var out raft.Log
	if err := c.GetLog(index, &out); err != nil {
		t.Fatalf("get log %d: %v", index, err)
	}
	return &out, counted.reads.Load() != before
}

func TestLogCacheIsBoundedByBytes(t *testing.T) {
	const size = 10_000
	maxBytes := 5*(size+logEntryOverhead) + 10 // room for five entries
	c, counted := openCachedBolt(t, 1024, maxBytes)
	for i := uint64(1); i <= 100; i++ {
		if err := c.StoreLogs([]*raft.Log{entry(i, size, byte(i))}); err != nil {
			t.Fatal(err)
		}
		if c.size() > maxBytes {
			t.Fatalf("after entry %d the cache holds %d bytes, bound %d", i, c.size(), maxBytes)
		}
	}
	for i := uint64(1); i <= 100; i++ {
		got, fromStore := readBack(t, c, counted, i)
		if got.Index != i || len(got.Data) != size || got.Data[0] != byte(i) {
			t.Fatalf("entry %d read back as index %d with %d bytes", i, got.Index, len(got.Data))
		}
		if cached := i > 95; fromStore == cached {
			t.Fatalf("entry %d: read from the store %v, want the newest five from memory", i, fromStore)
		}
	}
}

func TestLogCacheIsBoundedByCount(t *testing.T) {
	c, counted := openCachedBolt(t, 8, 1<<30)
	logs := make([]*raft.Log, 50)
	for i := range logs {
		logs[i] = entry(uint64(i+1), 100, 'x')
	}
	if err := c.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 50; i++ {
		if _, fromStore := readBack(t, c, counted, i); fromStore != (i <= 42) {
			t.Fatalf("entry %d: read from the store %v, want only the newest eight in memory", i, fromStore)
		}
	}
	if want := 8 * (100 + logEntryOverhead); c.size() != want {
		t.Fatalf("cache counts %d bytes, want %d", c.size(), want)
	}
}

func TestLogCacheSkipsAnEntryLargerThanItsBound(t *testing.T) {
	c, counted := openCachedBolt(t, 16, 4096)
	for i := uint64(1); i <= 3; i++ {
		if err := c.StoreLog(entry(i, 100, 'a')); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.StoreLog(entry(4, 1<<20, 'b')); err != nil {
		t.Fatal(err)
	}
	if c.size() != 0 {
		t.Fatalf("cache holds %d bytes after an entry larger than its bound", c.size())
	}
	got, fromStore := readBack(t, c, counted, 4)
	if !fromStore || len(got.Data) != 1<<20 {
		t.Fatalf("large entry: %d bytes, from the store %v", len(got.Data), fromStore)
	}
	if err := c.StoreLog(entry(5, 100, 'c')); err != nil {
		t.Fatal(err)
	}
	if _, fromStore := readBack(t, c, counted, 5); fromStore {
		t.Fatal("the entry after the large one is not cached")
	}
}

func TestLogCacheFollowsDeletedRanges(t *testing.T) {
	c, counted := openCachedBolt(t, 64, 1<<20)
	for i := uint64(1); i <= 20; i++ {
		if err := c.StoreLog(entry(i, 10, 'a')); err != nil {
			t.Fatal(err)
		}
	}
	// Compaction removes a prefix: the rest stays in memory.
	if err := c.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	if _, fromStore := readBack(t, c, counted, 11); fromStore {
		t.Fatal("entry 11 left memory when 1..10 were compacted")
	}
	var gone raft.Log
	if err := c.GetLog(5, &gone); err != raft.ErrLogNotFound {
		t.Fatalf("compacted entry 5: %v, want ErrLogNotFound", err)
	}
	// A follower's conflicting suffix is removed and rewritten: the new
	// entries must be read, never the old ones.
	if err := c.DeleteRange(15, 20); err != nil {
		t.Fatal(err)
	}
	for i := uint64(15); i <= 17; i++ {
		if err := c.StoreLog(entry(i, 10, 'b')); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint64(11); i <= 17; i++ {
		got, _ := readBack(t, c, counted, i)
		want := byte('a')
		if i >= 15 {
			want = 'b'
		}
		if got.Data[0] != want {
			t.Fatalf("entry %d reads %q, want %q", i, got.Data[0], want)
		}
	}
	if err := c.GetLog(18, &gone); err != raft.ErrLogNotFound {
		t.Fatalf("deleted entry 18: %v, want ErrLogNotFound", err)
	}
	// A jump (a snapshot installed on a follower) starts the cache over.
	if err := c.StoreLog(entry(100, 10, 'c')); err != nil {
		t.Fatal(err)
	}
	if _, fromStore := readBack(t, c, counted, 100); fromStore {
		t.Fatal("entry 100 is not cached after the jump")
	}
	if want := 10 + logEntryOverhead; c.size() != want {
		t.Fatalf("after the jump the cache counts %d bytes, want %d for one entry", c.size(), want)
	}
}
