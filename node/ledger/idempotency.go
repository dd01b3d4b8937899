package ledger

import "time"

// IdempotencyRetention is how long an Idempotency-Key is remembered, measured
// in the log's own recorded times so that every replica forgets a key at the
// same log position.
const IdempotencyRetention = 24 * time.Hour

// idempotencyTable maps Idempotency-Keys to the purchase they first created.
// Keys expire in the order they were recorded, so expiry is a walk from the
// front of a queue.
type idempotencyTable struct {
	byKey map[string]idempotencyEntry
	queue []idempotencyRef // in recorded order; queue[head:] is live
	head  int
}

type idempotencyEntry struct {
	purchaseID  uint64
	recordedAt  int64
	index       uint64
	fingerprint uint64
}

type idempotencyRef struct {
	key        string
	at         int64
	purchaseID uint64
}

func newIdempotencyTable() idempotencyTable {
	return idempotencyTable{byKey: make(map[string]idempotencyEntry)}
}

func (t *idempotencyTable) get(key string) (idempotencyEntry, bool) {
	e, ok := t.byKey[key]
	return e, ok
}

func (t *idempotencyTable) put(key string, e idempotencyEntry) {
	t.byKey[key] = e
	t.queue = append(t.queue, idempotencyRef{key: key, at: e.recordedAt, purchaseID: e.purchaseID})
}

// expire forgets every key recorded before cutoff.
func (t *idempotencyTable) expire(cutoff int64) {
	for t.head < len(t.queue) && t.queue[t.head].at < cutoff {
		ref := t.queue[t.head]
		// A key reused after it expired has a newer entry: keep that one.
		if e, ok := t.byKey[ref.key]; ok && e.purchaseID == ref.purchaseID {
			delete(t.byKey, ref.key)
		}
		t.queue[t.head] = idempotencyRef{}
		t.head++
	}
	// Reclaim the dead front once it is most of the slice.
	if t.head > 1024 && t.head > len(t.queue)/2 {
		t.queue = append([]idempotencyRef(nil), t.queue[t.head:]...)
		t.head = 0
	}
}

func (t *idempotencyTable) len() int { return len(t.byKey) }
