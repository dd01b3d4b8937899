package ledger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"sort"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Snapshot stream layout (version 1):
//
//	magic "BTLEDGER", version byte,
//	uvarint purchase count, varint last recorded time, uvarint applied index,
//	uvarint node count, then per node three length-prefixed strings,
//	then per purchase a length-prefixed encoded Record, in id order,
//	then a CRC-32C of everything before it.
//
// The window indexes, the idempotency table and the state's digest are not
// written: Restore derives them from the records, so they cannot disagree
// with them.
const (
	snapshotMagic = "BTLEDGER"
	snapshotV1    = byte(1)
	// persistChunk is how many records Persist reads per read lock, so a
	// snapshot never holds up Apply for long.
	persistChunk = 4096
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ledgerSnapshot is a point-in-time view. Records are append-only and never
// change once written, so remembering the count is enough to read exactly
// the records that existed at Snapshot time while Apply goes on.
type ledgerSnapshot struct {
	ledger         *Ledger
	dbSeq          int
	count          uint64
	lastRecordedAt int64
	applied        uint64
	nodes          []NodeInfo
}

// Snapshot implements raft.FSM. Raft never calls it concurrently with Apply.
func (l *Ledger) Snapshot() (raft.FSMSnapshot, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.snapshotLocked(l.applied.Load()), nil
}

// Capture is a point-in-time view of the ledger for a backup: the state at
// one applied index, read while Apply goes on.
type Capture struct{ snap *ledgerSnapshot }

// Capture takes a view of the ledger as it is now. It holds the read lock
// only to note the count and the node table; Stream reads the records
// later, a chunk per read lock.
func (l *Ledger) Capture() (*Capture, error) {
	if err := l.Halted(); err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.db == nil {
		return nil, errClosed
	}
	// Under the lock lastIndex moves with count, which the applied index
	// (set after the lock is released) does not.
	return &Capture{snap: l.snapshotLocked(l.st.lastIndex)}, nil
}

// Index is the log index the view reflects.
func (c *Capture) Index() uint64 { return c.snap.applied }

// Purchases is how many purchases the view holds.
func (c *Capture) Purchases() uint64 { return c.snap.count }

// Stream writes the view in the snapshot format Restore reads. It fails if
// the ledger's records were replaced by a Raft snapshot meanwhile.
func (c *Capture) Stream(w io.Writer) error { return c.snap.write(w) }

func (l *Ledger) snapshotLocked(applied uint64) *ledgerSnapshot {
	snap := &ledgerSnapshot{
		ledger:         l,
		dbSeq:          l.dbSeq,
		count:          l.st.count,
		lastRecordedAt: l.st.lastRecordedAt,
		applied:        applied,
	}
	for _, n := range l.st.nodes {
		snap.nodes = append(snap.nodes, n)
	}
	// Map order is random; sorted, equal states give equal snapshot bytes.
	sort.Slice(snap.nodes, func(i, j int) bool { return snap.nodes[i].ID < snap.nodes[j].ID })
	return snap
}

// Persist implements raft.FSMSnapshot.
func (s *ledgerSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist ledger snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *ledgerSnapshot) Release() {}

func (s *ledgerSnapshot) write(w io.Writer) error {
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 256<<10)
	head := []byte(snapshotMagic)
	head = append(head, snapshotV1)
	head = binary.AppendUvarint(head, s.count)
	head = binary.AppendVarint(head, s.lastRecordedAt)
	head = binary.AppendUvarint(head, s.applied)
	head = binary.AppendUvarint(head, uint64(len(s.nodes)))
	for _, n := range s.nodes {
		head = appendString(head, n.ID)
		head = appendString(head, n.HTTPURL)
		head = appendString(head, n.AdminURL)
	}
	if _, err := bw.Write(head); err != nil {
		return err
	}
	var lenBuf []byte
	for next := uint64(1); next <= s.count; next += persistChunk {
		last := min(next+persistChunk-1, s.count)
		err := s.ledger.viewRecords(s.dbSeq, func(b *bolt.Bucket) error {
			for id := next; id <= last; id++ {
				raw := b.Get(recordKey(id))
				if raw == nil {
					return fmt.Errorf("purchase %d is missing from the records", id)
				}
				lenBuf = binary.AppendUvarint(lenBuf[:0], uint64(len(raw)))
				if _, err := bw.Write(lenBuf); err != nil {
					return err
				}
				if _, err := bw.Write(raw); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
	return err
}

// errRestored stops a Persist whose records database was replaced by a
// Restore; Raft retries the snapshot later.
var errRestored = errors.New("ledger was restored while the snapshot was being written")

func (l *Ledger) viewRecords(dbSeq int, fn func(*bolt.Bucket) error) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.dbSeq != dbSeq || l.db == nil {
		return errRestored
	}
	return l.db.View(func(tx *bolt.Tx) error { return fn(tx.Bucket(purchasesBucket)) })
}

// Restore implements raft.FSM: it builds a new records database and new
// indexes from the snapshot, then swaps them in whole.
func (l *Ledger) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := l.Halted(); err != nil {
		discard(rc)
		return fmt.Errorf("restore ledger snapshot: %w", err)
	}
	select {
	case <-l.closing:
		discard(rc)
		return fmt.Errorf("restore ledger snapshot: %w", errClosed)
	default:
	}
	l.mu.Lock()
	l.dbSeq++ // fences off any Persist still reading the old records
	l.mu.Unlock()
	db, err := l.openRecords()
	if err != nil {
		discard(rc)
		return err
	}
	st, applied, err := readSnapshot(rc, db, l.opts, false)
	if err != nil {
		discard(rc)
		path := db.Path()
		db.Close()
		os.Remove(path)
		return fmt.Errorf("restore ledger snapshot: %w", err)
	}
	l.mu.Lock()
	old := l.db
	st.idempotency.evictions = l.st.idempotency.evictions // a process-wide count
	l.db, l.st = db, st
	l.mu.Unlock()
	if old != nil {
		path := old.Path()
		if err := old.Close(); err != nil {
			l.logger.Warn("Closing the replaced records database failed", "path", path, "error", err)
		}
		os.Remove(path)
	}
	l.setApplied(applied)
	l.logger.Info("Restored ledger from snapshot", "purchases", st.count, "applied_index", applied)
	return nil
}

// restoreBatch is how many records Restore writes per bbolt transaction.
const restoreBatch = 16384

// SnapshotInfo is what CheckSnapshot learned from a snapshot stream.
type SnapshotInfo struct {
	// Index is the log index the snapshot reflects.
	Index uint64
	// Purchases is how many purchases it holds.
	Purchases uint64
}

// CheckSnapshot reads a whole snapshot stream as Restore would, every
// record decoded and validated and the checksum compared, but stores
// nothing. The stream must end with its checksum.
func CheckSnapshot(r io.Reader) (SnapshotInfo, error) {
	st, applied, err := readSnapshot(r, nil, Options{}, true)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("check ledger snapshot: %w", err)
	}
	return SnapshotInfo{Index: applied, Purchases: st.count}, nil
}

// readSnapshot reads a snapshot stream into db and a new state. With a nil
// db it only checks the records; with exact, bytes after the checksum are
// an error.
func readSnapshot(r io.Reader, db *bolt.DB, opts Options, exact bool) (*state, uint64, error) {
	br := &checksumReader{r: bufio.NewReaderSize(r, 256<<10), crc: crc32.New(crcTable)}
	magic := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, 0, fmt.Errorf("read header: %w", err)
	}
	if string(magic[:len(snapshotMagic)]) != snapshotMagic {
		return nil, 0, errors.New("not a ledger snapshot")
	}
	if magic[len(snapshotMagic)] != snapshotV1 {
		return nil, 0, fmt.Errorf("snapshot version %d is newer than this node", magic[len(snapshotMagic)])
	}
	count, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, 0, fmt.Errorf("read count: %w", err)
	}
	lastRecordedAt, err := binary.ReadVarint(br)
	if err != nil {
		return nil, 0, fmt.Errorf("read last recorded time: %w", err)
	}
	applied, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, 0, fmt.Errorf("read applied index: %w", err)
	}
	st := newState(opts)
	st.lastRecordedAt = lastRecordedAt
	nodeCount, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, 0, fmt.Errorf("read node count: %w", err)
	}
	for range nodeCount {
		var fields [3]string
		for i := range fields {
			if fields[i], err = readString(br); err != nil {
				return nil, 0, fmt.Errorf("read node: %w", err)
			}
		}
		st.nodes[fields[0]] = NodeInfo{ID: fields[0], HTTPURL: fields[1], AdminURL: fields[2]}
	}
	hash := newRecordsHash()
	for done := uint64(0); done < count; {
		err := updateRecords(db, func(b *bolt.Bucket) error {
			for end := min(done+restoreBatch, count); done < end; done++ {
				n, err := binary.ReadUvarint(br)
				if err != nil {
					return fmt.Errorf("read record length: %w", err)
				}
				// Restore accepts exactly what apply records: no longer than a
				// valid purchase can be, and valid.
				if n > maxRecordBytes {
					return fmt.Errorf("record %d: %d bytes, more than a valid purchase takes (%d)", done+1, n, maxRecordBytes)
				}
				raw := make([]byte, n) // bbolt holds on to it until commit
				if _, err := io.ReadFull(br, raw); err != nil {
					return fmt.Errorf("read record: %w", err)
				}
				rec, err := decodeRecord(raw)
				if err != nil {
					return err
				}
				if rec.ID != done+1 {
					return fmt.Errorf("record %d where %d was expected", rec.ID, done+1)
				}
				if err := ValidatePurchase(&rec.Purchase); err != nil {
					return fmt.Errorf("record %d: %w", rec.ID, err)
				}
				if b != nil {
					if err := b.Put(recordKey(rec.ID), raw); err != nil {
						return err
					}
				}
				st.count = rec.ID
				st.index(&rec)
				hash.add(raw)
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	// Records come in log order, so the bound has kept the same newest keys
	// as Apply did (expiry and the bound both forget from the oldest end);
	// the keys it dropped here had expired or been evicted on the member
	// that wrote the snapshot, and are not this process's evictions.
	st.idempotency.expire(lastRecordedAt - int64(IdempotencyRetention))
	st.idempotency.evictions = 0
	st.lastIndex, st.hash, st.digest = applied, hash, hash.sum()
	st.digests = newDigestRing(digestAt{index: applied, digest: st.digest})
	sum := br.crc.Sum32()
	var trailer [4]byte
	if _, err := io.ReadFull(br.r, trailer[:]); err != nil {
		return nil, 0, fmt.Errorf("read checksum: %w", err)
	}
	if binary.BigEndian.Uint32(trailer[:]) != sum {
		return nil, 0, errors.New("checksum mismatch")
	}
	if exact {
		if n, _ := io.Copy(io.Discard, br.r); n > 0 {
			return nil, 0, fmt.Errorf("%d bytes follow the snapshot's checksum", n)
		}
	}
	return st, applied, nil
}

// updateRecords runs fn in a records transaction, or with a nil bucket when
// there is no database (a check that stores nothing).
func updateRecords(db *bolt.DB, fn func(*bolt.Bucket) error) error {
	if db == nil {
		return fn(nil)
	}
	return db.Update(func(tx *bolt.Tx) error { return fn(appendBucket(tx)) })
}

// checksumReader hashes exactly the bytes its caller consumes, which a
// TeeReader under a bufio.Reader would not.
type checksumReader struct {
	r   *bufio.Reader
	crc hash.Hash32
}

func (c *checksumReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	return n, err
}

func (c *checksumReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.crc.Write([]byte{b})
	}
	return b, err
}

func readString(br *checksumReader) (string, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return "", err
	}
	if n > 1<<16 {
		return "", fmt.Errorf("string of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}
