// Package ledger is buytracker's replicated state machine: it applies
// committed Raft log entries to the purchase log and answers queries from it.
//
// Purchase records live in a bbolt database owned by the ledger; memory holds
// only the compact window indexes, the idempotency table and node addresses.
// The records database is derived state: it is opened without fsync and
// rebuilt at every start from the latest Raft snapshot plus the log after it,
// which is where durability lives. Apply reads no clock and no randomness:
// every time and id comes from the log.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// ErrIdempotencyConflict is the result for a purchase whose Idempotency-Key
// was already used by a purchase with different content.
var ErrIdempotencyConflict = errors.New("idempotency key already used for a different purchase")

var purchasesBucket = []byte("purchases")

// BuyResult is the outcome of one purchase in a CmdBuyBatch.
type BuyResult struct {
	PurchaseID uint64
	// TotalBuys is the number of purchases recorded up to and including
	// this one.
	TotalBuys  uint64
	RecordedAt int64
	Index      uint64
	// Replayed is true when an Idempotency-Key matched an earlier purchase
	// and this is that purchase's result.
	Replayed bool
	// Err is ErrIdempotencyConflict, an error wrapping ErrInvalidPurchase
	// (the purchase was not recorded and used no id), or nil.
	Err error
}

// Ledger is the state machine. It implements raft.BatchingFSM.
type Ledger struct {
	dir    string
	logger *slog.Logger
	opts   Options

	// mu guards everything below it. ApplyBatch holds it for writing; queries
	// and snapshot chunks hold it for reading.
	mu    sync.RWMutex
	db    *bolt.DB
	dbSeq int // numbers the records files, so a restore never reuses a path
	st    *state

	applied  atomic.Uint64
	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after every apply

	// healthMu guards halted and blocked.
	healthMu sync.Mutex
	// halted is why the ledger stopped applying, nil while it applies;
	// haltedCh is closed when it is set.
	halted   error
	haltedCh chan struct{}
	// blocked is the records write that keeps failing, nil when none.
	blocked error

	closing   chan struct{} // closed by Close, ends a blocked apply
	closeOnce sync.Once

	// retryMin and retryMax bound the wait between attempts at a failed
	// records commit; failCommit, when set by a test, fails commits.
	retryMin, retryMax time.Duration
	failCommit         func() error

	// plan is reused by every apply (only Raft's FSM goroutine applies, under
	// mu), so its buffers are allocated once.
	plan applyPlan
}

// state is everything the ledger keeps in memory.
type state struct {
	count          uint64 // purchases recorded, also the last purchase id
	lastRecordedAt int64
	// lastIndex is the index of the last entry applied to this state.
	lastIndex uint64
	// hash runs over every record in id order and digest is its sum at
	// lastIndex; digests keeps recent values by applied index.
	hash        recordsHash
	digest      stateDigest
	digests     digestRing
	all         windowIndex
	byPromotion map[int64]*windowIndex
	byProduct   map[int64]*windowIndex
	byPair      map[[2]int64]*windowIndex
	idempotency idempotencyTable
	nodes       map[string]NodeInfo
}

func newState(opts Options) *state {
	return &state{
		hash:        newRecordsHash(),
		digest:      emptyDigest,
		digests:     newDigestRing(digestAt{digest: emptyDigest}),
		byPromotion: make(map[int64]*windowIndex),
		byProduct:   make(map[int64]*windowIndex),
		byPair:      make(map[[2]int64]*windowIndex),
		idempotency: newIdempotencyTable(opts.MaxIdempotencyKeys),
		nodes:       make(map[string]NodeInfo),
	}
}

// DefaultMaxIdempotencyKeys is the idempotency table's bound when Options
// sets none.
const DefaultMaxIdempotencyKeys = 1_000_000

// Options tunes a Ledger. The replicated state depends on them: every member
// of a cluster must open its ledger with the same Options, or a retry whose
// key one member still remembers would be recorded on another.
type Options struct {
	// MaxIdempotencyKeys bounds the Idempotency-Keys remembered. When a new
	// key would exceed it, the oldest key by log position is forgotten
	// early, at the same log position on every member. Zero picks
	// DefaultMaxIdempotencyKeys.
	MaxIdempotencyKeys int
	// MisapplyCents, when not zero, is added to the amount of every purchase
	// this ledger stores: a deliberately wrong state machine, for tests that
	// the members' digest comparison catches a replica that applies
	// differently. Only test builds of the node set it.
	MisapplyCents int64
}

// Open creates an empty ledger with the default Options; see OpenWith.
func Open(dir string, logger *slog.Logger) (*Ledger, error) {
	return OpenWith(dir, logger, Options{})
}

// OpenWith creates an empty ledger whose records database lives in dir. Any
// records left there by an earlier process are discarded: Raft restores them
// from its snapshot and log.
func OpenWith(dir string, logger *slog.Logger, opts Options) (*Ledger, error) {
	switch {
	case opts.MaxIdempotencyKeys < 0:
		return nil, fmt.Errorf("ledger: the idempotency key bound must be positive, not %d", opts.MaxIdempotencyKeys)
	case opts.MaxIdempotencyKeys == 0:
		opts.MaxIdempotencyKeys = DefaultMaxIdempotencyKeys
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ledger dir: %w", err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "records-*.db"))
	if err != nil {
		return nil, fmt.Errorf("list old records files: %w", err)
	}
	for _, path := range old {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove old records file: %w", err)
		}
	}
	l := &Ledger{
		dir: dir, logger: logger, opts: opts, st: newState(opts), notify: make(chan struct{}),
		haltedCh: make(chan struct{}), closing: make(chan struct{}),
		retryMin: retryMin, retryMax: retryMax,
	}
	l.plan.misapplyCents = opts.MisapplyCents
	db, err := l.openRecords()
	if err != nil {
		return nil, err
	}
	l.db = db
	return l, nil
}

func (l *Ledger) openRecords() (*bolt.DB, error) {
	l.dbSeq++
	path := filepath.Join(l.dir, fmt.Sprintf("records-%d.db", l.dbSeq))
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second,
		// Durability is the Raft log's job; this file is rebuilt on start.
		NoSync:         true,
		NoFreelistSync: true,
		// A large initial map keeps writers from waiting on a remap while a
		// snapshot is being read.
		InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return nil, fmt.Errorf("open records database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(purchasesBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("create purchases bucket: %w", err)
	}
	return db, nil
}

// Close closes the records database and removes its file. It ends an apply
// that is waiting to retry a failed records commit; entries applied after
// Close are not.
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() { close(l.closing) })
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return nil
	}
	path := l.db.Path()
	err := l.db.Close()
	l.db = nil
	if rmErr := os.Remove(path); err == nil && rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = rmErr
	}
	return err
}

// appendBucket returns the purchases bucket set up for keys that only ever
// grow: full pages instead of bbolt's default half-full splits, which would
// double the file.
func appendBucket(tx *bolt.Tx) *bolt.Bucket {
	b := tx.Bucket(purchasesBucket)
	b.FillPercent = 1.0
	return b
}

// index adds a stored record to the in-memory indexes.
func (s *state) index(r *Record) {
	s.all.add(r.RecordedAt, r.AmountCents)
	seriesFor(s.byPromotion, r.PromotionID).add(r.RecordedAt, r.AmountCents)
	seriesFor(s.byProduct, r.ProductID).add(r.RecordedAt, r.AmountCents)
	seriesFor(s.byPair, [2]int64{r.PromotionID, r.ProductID}).add(r.RecordedAt, r.AmountCents)
	if r.IdempotencyKey != "" {
		s.idempotency.put(r.IdempotencyKey, idempotencyEntry{
			purchaseID: r.ID, recordedAt: r.RecordedAt, index: r.Index, fingerprint: r.Fingerprint,
		})
	}
}

func seriesFor[K comparable](m map[K]*windowIndex, key K) *windowIndex {
	w, ok := m[key]
	if !ok {
		w = &windowIndex{}
		m[key] = w
	}
	return w
}

func (e idempotencyEntry) result() BuyResult {
	return BuyResult{PurchaseID: e.purchaseID, TotalBuys: e.purchaseID, RecordedAt: e.recordedAt, Index: e.index, Replayed: true}
}

func (l *Ledger) setApplied(index uint64) {
	l.applied.Store(index)
	l.notifyMu.Lock()
	close(l.notify)
	l.notify = make(chan struct{})
	l.notifyMu.Unlock()
}

// AppliedIndex is the index of the last log entry the ledger has applied.
func (l *Ledger) AppliedIndex() uint64 { return l.applied.Load() }

// WaitApplied blocks until the ledger has applied index, or ctx ends. A
// halted ledger never will: it answers its halt error at once.
func (l *Ledger) WaitApplied(ctx context.Context, index uint64) error {
	for {
		l.notifyMu.Lock()
		ch := l.notify
		l.notifyMu.Unlock()
		if l.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-l.haltedCh:
			return fmt.Errorf("wait for index %d (applied %d): %w", index, l.applied.Load(), l.Halted())
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d (applied %d): %w", index, l.applied.Load(), ctx.Err())
		}
	}
}

// Lookup returns the recorded result for an Idempotency-Key, if the key is
// still remembered.
func (l *Ledger) Lookup(key string, fingerprint uint64) (BuyResult, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	e, ok := l.st.idempotency.get(key)
	if !ok {
		return BuyResult{}, false
	}
	res := e.result()
	if e.fingerprint != fingerprint {
		res.Err = ErrIdempotencyConflict
	}
	return res, true
}

// Count returns the number of purchases recorded.
func (l *Ledger) Count() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.st.count
}

// StatsQuery selects the purchases a Stats answer counts.
type StatsQuery struct {
	// Window is the length of the recent window.
	Window time.Duration
	// PromotionID and ProductID filter when non-zero.
	PromotionID int64
	ProductID   int64
}

// Stats is an answer to a StatsQuery.
type Stats struct {
	TotalBuys    int64
	RecentBuys   int64
	TotalCents   int64
	RecentCents  int64
	AppliedIndex uint64
}

// Stats counts purchases overall and within q.Window before now, in
// O(log n).
func (l *Ledger) Stats(q StatsQuery, now time.Time) Stats {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var w *windowIndex
	switch {
	case q.PromotionID != 0 && q.ProductID != 0:
		w = l.st.byPair[[2]int64{q.PromotionID, q.ProductID}]
	case q.PromotionID != 0:
		w = l.st.byPromotion[q.PromotionID]
	case q.ProductID != 0:
		w = l.st.byProduct[q.ProductID]
	default:
		w = &l.st.all
	}
	var out Stats
	out.TotalBuys, out.TotalCents = w.totals()
	out.RecentBuys, out.RecentCents = w.since(now.UnixNano() - int64(q.Window))
	out.AppliedIndex = l.applied.Load()
	return out
}

// Records returns up to limit records with ids above after, in id order.
func (l *Ledger) Records(after uint64, limit int) ([]Record, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if after >= l.st.count {
		return nil, nil // and after+1 below cannot overflow
	}
	if l.db == nil {
		return nil, errClosed
	}
	out := make([]Record, 0, min(uint64(limit), l.st.count-after))
	err := l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(purchasesBucket).Cursor()
		for k, v := c.Seek(recordKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			r, err := decodeRecord(v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read records after %d: %w", after, err)
	}
	return out, nil
}

// Nodes returns the published node addresses, sorted by id.
func (l *Ledger) Nodes() []NodeInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]NodeInfo, 0, len(l.st.nodes))
	for _, n := range l.st.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Node returns one node's published addresses.
func (l *Ledger) Node(id string) (NodeInfo, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n, ok := l.st.nodes[id]
	return n, ok
}

// Footprint describes the in-memory indexes, for metrics and benchmarks.
type Footprint struct {
	Purchases       uint64
	WindowPoints    int
	IdempotencyKeys int
	// IdempotencyEvictions counts keys this process forgot early, while
	// applying entries, because the table was full.
	IdempotencyEvictions uint64
}

// Footprint reports the size of the in-memory indexes.
func (l *Ledger) Footprint() Footprint {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f := Footprint{
		Purchases: l.st.count, WindowPoints: l.st.all.points(),
		IdempotencyKeys: l.st.idempotency.len(), IdempotencyEvictions: l.st.idempotency.evictions,
	}
	for _, m := range []map[int64]*windowIndex{l.st.byPromotion, l.st.byProduct} {
		for _, w := range m {
			f.WindowPoints += w.points()
		}
	}
	for _, w := range l.st.byPair {
		f.WindowPoints += w.points()
	}
	return f
}

var _ raft.BatchingFSM = (*Ledger)(nil)

// discard drains r so a failed restore leaves the stream in a known state.
func discard(r io.Reader) { _, _ = io.Copy(io.Discard, r) }
