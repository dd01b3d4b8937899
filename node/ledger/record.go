package ledger

import (
	"encoding/binary"
	"fmt"
)

// recordV1 is the version byte of an encoded Record.
const recordV1 byte = 1

// maxRecordBytes is the most an encoded record of a purchase that passes
// ValidatePurchase takes: version byte, three 64-bit varints (id, recorded
// time, index), four more (ids and amount), three length-prefixed strings at
// their longest, and the fingerprint. Restore refuses anything longer before
// it reads it.
const maxRecordBytes = 1 + 3*binary.MaxVarintLen64 + 4*binary.MaxVarintLen64 +
	(1 + MaxIPLength) + (1 + MaxTimestampLength) + (2 + MaxIdempotencyKeyLength) + 8

// Record is one stored purchase: what the client sent plus what the cluster
// assigned to it.
type Record struct {
	Purchase
	// ID is the dense purchase id, 1 for the first purchase.
	ID uint64
	// RecordedAt is the leader-assigned time in Unix nanoseconds; it never
	// decreases from one record to the next.
	RecordedAt int64
	// Index is the Raft log index of the entry that carried the purchase.
	Index uint64
}

func encodeRecord(buf []byte, r *Record) []byte {
	buf = append(buf, recordV1)
	buf = binary.AppendUvarint(buf, r.ID)
	buf = binary.AppendVarint(buf, r.RecordedAt)
	buf = binary.AppendUvarint(buf, r.Index)
	return appendPurchase(buf, &r.Purchase)
}

func decodeRecord(raw []byte) (Record, error) {
	if len(raw) == 0 || raw[0] != recordV1 {
		return Record{}, fmt.Errorf("%w: record version", errMalformed)
	}
	d := decoder{buf: raw[1:]}
	r := Record{ID: d.uvarint(), RecordedAt: d.varint(), Index: d.uvarint()}
	d.purchase(&r.Purchase)
	if d.err != nil {
		return Record{}, fmt.Errorf("decode record: %w", d.err)
	}
	return r, nil
}

func recordKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), id)
}
