package ledger

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func openBoundedLedger(t *testing.T, maxKeys int) *Ledger {
	t.Helper()
	l, err := OpenWith(t.TempDir(), openTestLedger(t).logger, Options{MaxIdempotencyKeys: maxKeys})
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestIdempotencyBoundForgetsTheOldestKeysByLogPosition(t *testing.T) {
	l := openBoundedLedger(t, 3)
	keyed := func(key string) Purchase {
		return Purchase{UserID: 1, PromotionID: 1, ProductID: 1, AmountCents: 100, IP: "10.0.0.1", IdempotencyKey: key, Fingerprint: 7}
	}
	// k1 and k2 in one entry, then one key per entry; every time within
	// the retention, so only the bound forgets.
	l.ApplyBatch([]*raft.Log{buyEntry(1, 10, keyed("k1"), keyed("k2"))})
	for i := 3; i <= 5; i++ {
		l.ApplyBatch([]*raft.Log{buyEntry(uint64(i), int64(10+i), keyed(fmt.Sprintf("k%d", i)))})
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := l.Lookup(fmt.Sprintf("k%d", i+1), 7); ok != want {
			t.Errorf("k%d remembered = %v, want %v", i+1, ok, want)
		}
	}
	if f := l.Footprint(); f.IdempotencyKeys != 3 || f.IdempotencyEvictions != 2 {
		t.Fatalf("footprint %+v, want 3 keys and 2 evictions", f)
	}
	// The documented cost: a retry after its key was evicted is recorded
	// again, and it evicts the next oldest key.
	res := l.ApplyBatch([]*raft.Log{buyEntry(6, 20, keyed("k1"))})[0].([]BuyResult)
	if res[0].Replayed || res[0].PurchaseID != 6 {
		t.Fatalf("retry of an evicted key: %+v, want a new purchase 6", res[0])
	}
	if _, ok := l.Lookup("k3", 7); ok {
		t.Fatal("k3 should have gone when k1 came back")
	}
}

func TestOpenRejectsANegativeBound(t *testing.T) {
	if _, err := OpenWith(t.TempDir(), openTestLedger(t).logger, Options{MaxIdempotencyKeys: -1}); err == nil {
		t.Fatal("a negative idempotency key bound was accepted")
	}
}

// The bound is part of the replicated state machine: members that apply the
// same log, in any batching, or restore a snapshot of it, must remember the
// same keys and answer every later entry the same.
func TestIdempotencyBoundIsIdenticalOnEveryMember(t *testing.T) {
	const maxKeys = 40
	feed := newLogFeed(7)
	entries := feed.entries(600)
	later := feed.entries(200)
	a, b := openBoundedLedger(t, maxKeys), openBoundedLedger(t, maxKeys)
	if !reflect.DeepEqual(applyInChunks(a, entries, 1), applyInChunks(b, entries, 23)) {
		t.Fatal("two members answered the same log differently")
	}
	now := time.Unix(0, feed.now)
	va := viewOf(t, a, now, feed.keys)
	if !reflect.DeepEqual(va, viewOf(t, b, now, feed.keys)) {
		t.Fatal("two members fed the same log remember different keys")
	}
	fa := a.Footprint()
	if fa.IdempotencyEvictions == 0 || fa.IdempotencyKeys > maxKeys || fa.IdempotencyKeys == 0 {
		t.Fatalf("footprint %+v: the feed should fill the table and evict", fa)
	}
	if fb := b.Footprint(); fb != fa {
		t.Fatalf("footprints differ: %+v and %+v", fa, fb)
	}

	// A member that restores a snapshot remembers the same keys...
	c := openBoundedLedger(t, maxKeys)
	if err := c.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, a)))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !reflect.DeepEqual(va, viewOf(t, c, now, feed.keys)) {
		t.Fatal("the restored member remembers different keys")
	}
	if fc := c.Footprint(); fc.IdempotencyKeys != fa.IdempotencyKeys {
		t.Fatalf("restored member holds %d keys, the others %d", fc.IdempotencyKeys, fa.IdempotencyKeys)
	}
	// ...and all three go on identically, evicting the same keys.
	resA := applyInChunks(a, later, 5)
	if !reflect.DeepEqual(resA, applyInChunks(b, later, 1)) || !reflect.DeepEqual(resA, applyInChunks(c, later, 9)) {
		t.Fatal("members answered later entries differently")
	}
	end := time.Unix(0, feed.now)
	va = viewOf(t, a, end, feed.keys)
	if !reflect.DeepEqual(va, viewOf(t, b, end, feed.keys)) || !reflect.DeepEqual(va, viewOf(t, c, end, feed.keys)) {
		t.Fatal("members hold different state after the later entries")
	}
}
