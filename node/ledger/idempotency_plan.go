package ledger

// keysPlan answers, while an apply is planned, what the idempotency table
// will hold once the steps planned so far are applied, without changing the
// table: the plan's own new keys, and how far expiry and the size bound will
// have eaten into the front of the table's queue. The table's queue is in
// purchase id order and each live key's entry is in it, so a key is still
// there exactly when its purchase id is at or after the front.
type keysPlan struct {
	table *idempotencyTable
	head  int // the table's queue[head:] is still there
	// added are the keys this plan records, in order; added[addedHead:] are
	// still there.
	added     []idempotencyRef
	addedHead int
	keys      map[string]idempotencyEntry
}

func (k *keysPlan) reset(t *idempotencyTable) {
	k.table, k.head = t, t.head
	clear(k.added) // drop references to the last apply's keys
	k.added, k.addedHead = k.added[:0], 0
	clear(k.keys)
}

// front is the oldest key still there; ok is false when none is.
func (k *keysPlan) front() (ref idempotencyRef, ok bool) {
	switch {
	case k.head < len(k.table.queue):
		return k.table.queue[k.head], true
	case k.addedHead < len(k.added):
		return k.added[k.addedHead], true
	}
	return idempotencyRef{}, false
}

func (k *keysPlan) dropFront() {
	if k.head < len(k.table.queue) {
		k.head++
	} else {
		k.addedHead++
	}
}

// expire mirrors idempotencyTable.expire.
func (k *keysPlan) expire(cutoff int64) {
	for ref, ok := k.front(); ok && ref.at < cutoff; ref, ok = k.front() {
		k.dropFront()
	}
}

// put mirrors idempotencyTable.put, bound included.
func (k *keysPlan) put(key string, e idempotencyEntry) {
	if k.keys == nil {
		k.keys = make(map[string]idempotencyEntry)
	}
	k.keys[key] = e
	k.added = append(k.added, idempotencyRef{key: key, at: e.recordedAt, purchaseID: e.purchaseID})
	for len(k.table.queue)-k.head+len(k.added)-k.addedHead > k.table.maxKeys {
		k.dropFront()
	}
}

// get mirrors idempotencyTable.get.
func (k *keysPlan) get(key string) (idempotencyEntry, bool) {
	e, ok := k.keys[key]
	if !ok {
		e, ok = k.table.get(key)
	}
	if !ok {
		return idempotencyEntry{}, false
	}
	front, any := k.front()
	return e, any && e.purchaseID >= front.purchaseID
}
