package store

import (
	"sync"

	"github.com/hashicorp/raft"
)

// logEntryOverhead approximates what a cached entry costs besides its data:
// the raft.Log struct and its slot in the ring.
const logEntryOverhead = 128

// logCache keeps the most recent Raft log entries in memory in front of the
// log store, so the leader replicates a new entry without reading it back
// from bbolt. hashicorp/raft's own LogCache bounds only the number of
// entries, so a run of large entries could hold any amount of memory; this
// one also bounds their total size, dropping the oldest entries first.
//
// The cache holds one contiguous run of indexes, [first, first+n).
type logCache struct {
	store    raft.LogStore
	maxBytes int

	mu    sync.Mutex
	ring  []*raft.Log // entry i lives at ring[i % len(ring)]
	first uint64
	n     int
	bytes int
}

func newLogCache(store raft.LogStore, maxEntries, maxBytes int) *logCache {
	return &logCache{store: store, maxBytes: maxBytes, ring: make([]*raft.Log, max(maxEntries, 1))}
}

func entrySize(l *raft.Log) int { return len(l.Data) + len(l.Extensions) + logEntryOverhead }

// GetLog implements raft.LogStore.
func (c *logCache) GetLog(index uint64, out *raft.Log) error {
	c.mu.Lock()
	if index >= c.first && index < c.first+uint64(c.n) {
		*out = *c.ring[index%uint64(len(c.ring))]
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	return c.store.GetLog(index, out)
}

// StoreLog implements raft.LogStore.
func (c *logCache) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: the store first, the cache only once
// the entries are durable.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		c.add(l)
	}
	return nil
}

func (c *logCache) add(l *raft.Log) {
	size := entrySize(l)
	if size > c.maxBytes {
		c.clear() // never cached; what came before is no longer contiguous with what follows
		return
	}
	if c.n > 0 && l.Index != c.first+uint64(c.n) {
		// Not the next index (a follower's log was rewritten): start over.
		c.clear()
	}
	for c.n > 0 && (c.n == len(c.ring) || c.bytes+size > c.maxBytes) {
		c.dropOldest()
	}
	if c.n == 0 {
		c.first = l.Index
	}
	c.ring[l.Index%uint64(len(c.ring))] = l
	c.n++
	c.bytes += size
}

func (c *logCache) dropOldest() {
	slot := c.first % uint64(len(c.ring))
	c.bytes -= entrySize(c.ring[slot])
	c.ring[slot] = nil
	c.first++
	c.n--
}

func (c *logCache) clear() {
	for c.n > 0 {
		c.dropOldest()
	}
}

// DeleteRange implements raft.LogStore. Compaction deletes a prefix of the
// log and a follower's conflict a suffix; the cached entries outside the
// range stay.
func (c *logCache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	if c.n > 0 && lo <= c.first+uint64(c.n)-1 && hi >= c.first {
		switch {
		case lo <= c.first:
			for c.n > 0 && c.first <= hi {
				c.dropOldest()
			}
		default:
			for c.n > 0 && c.first+uint64(c.n)-1 >= lo {
				c.dropNewest()
			}
		}
	}
	c.mu.Unlock()
	return c.store.DeleteRange(lo, hi)
}

func (c *logCache) dropNewest() {
	slot := (c.first + uint64(c.n) - 1) % uint64(len(c.ring))
	c.bytes -= entrySize(c.ring[slot])
	c.ring[slot] = nil
	c.n--
}

// FirstIndex implements raft.LogStore.
func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }

// LastIndex implements raft.LogStore.
func (c *logCache) LastIndex() (uint64, error) { return c.store.LastIndex() }

// size is the bytes the cached entries count for (0 before Raft started).
func (c *logCache) size() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

var _ raft.LogStore = (*logCache)(nil)
