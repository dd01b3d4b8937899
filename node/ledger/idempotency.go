package ledger

import "time"

// IdempotencyRetention is how long an Idempotency-Key is remembered, measured
// in the log's own recorded times so that every replica forgets a key at the
// same log position.
const IdempotencyRetention = 24 * time.Hour

// idempotencyTable maps Idempotency-Keys to the purchase they first created.
// Keys are forgotten in the order they were recorded (log order): when they
// expire, and earlier when the table holds maxKeys, so both are walks from
// the front of one queue, driven only by the log.
type idempotencyTable struct {
	byKey   map[string]idempotencyEntry
	queue   []idempotencyRef // in recorded order; queue[head:] is live
	head    int
	maxKeys int
	// evictions counts keys forgotten before they expired.
	evictions uint64
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

func newIdempotencyTable(maxKeys int) idempotencyTable {
	return idempotencyTable{byKey: make(map[string]idempotencyEntry), maxKeys: maxKeys}
}

func (t *idempotencyTable) get(key string) (idempotencyEntry, bool) {
	e, ok := t.byKey[key]
	return e, ok
}

// put remembers a key recorded after every key already in the table, and
// forgets the oldest ones beyond maxKeys. The bound counts queue entries:
// while Apply runs they are the table's keys. A restore puts every record
// with a key, expired or not, and expires at the end; since expiry and the
// bound both forget from the oldest end, it ends with the keys Apply kept.
func (t *idempotencyTable) put(key string, e idempotencyEntry) {
	t.byKey[key] = e
	t.queue = append(t.queue, idempotencyRef{key: key, at: e.recordedAt, purchaseID: e.purchaseID})
	for len(t.queue)-t.head > t.maxKeys {
		if t.dropFront() {
			t.evictions++
		}
	}
	t.reclaim()
}

// expire forgets every key recorded before cutoff.
func (t *idempotencyTable) expire(cutoff int64) {
	for t.head < len(t.queue) && t.queue[t.head].at < cutoff {
		t.dropFront()
	}
	t.reclaim()
}

// dropFront forgets the oldest queued key and reports whether a live key
// went (a key reused later has a newer entry, which stays).
func (t *idempotencyTable) dropFront() bool {
	ref := t.queue[t.head]
	t.queue[t.head] = idempotencyRef{}
	t.head++
	if e, ok := t.byKey[ref.key]; ok && e.purchaseID == ref.purchaseID {
		delete(t.byKey, ref.key)
		return true
	}
	return false
}

// reclaim drops the dead front of the queue once it is most of the slice.
func (t *idempotencyTable) reclaim() {
	if t.head > 1024 && t.head > len(t.queue)/2 {
		t.queue = append([]idempotencyRef(nil), t.queue[t.head:]...)
		t.head = 0
	}
}

func (t *idempotencyTable) len() int { return len(t.byKey) }
