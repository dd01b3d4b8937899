package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// flipAmount changes an amount's varint in an encoded command to another of
// the same length, as a flipped byte on disk would.
func flipAmount(t *testing.T, cmd []byte, from, to int64) []byte {
	t.Helper()
	oldV, newV := binary.AppendVarint(nil, from), binary.AppendVarint(nil, to)
	i := bytes.Index(cmd, oldV)
	if i < 0 || len(oldV) != len(newV) || bytes.Count(cmd, oldV) != 1 {
		t.Fatalf("amount %d not found once in %x", from, cmd)
	}
	out := bytes.Clone(cmd)
	copy(out[i:], newV)
	return out
}

func TestACorruptCommandHaltsWithoutApplying(t *testing.T) {
	for name, corrupt := range map[string]func([]byte) []byte{
		"flipped amount": nil, // set below: the scenario of issue 10
		"flipped checksum": func(b []byte) []byte {
			b = bytes.Clone(b)
			b[len(b)-1] ^= 0x40
			return b
		},
		"unknown type": func([]byte) []byte { return []byte{200, 1} },
		"undecodable":  func(b []byte) []byte { return b[:5] },
	} {
		t.Run(name, func(t *testing.T) {
			l := openTestLedger(t)
			p := Purchase{UserID: 7, PromotionID: 1, ProductID: 2, AmountCents: 250, IP: "192.0.2.1"}
			good := buyEntry(1, 1000, p)
			second := buyEntry(2, 2000, p)
			bad := buyEntry(3, 3000, p)
			if corrupt == nil {
				bad.Data = flipAmount(t, bad.Data, 250, 500)
			} else {
				bad.Data = corrupt(bad.Data)
			}
			later := buyEntry(4, 4000, p)
			// The entries before the bad one in the same batch apply; it and
			// those after do not.
			l.ApplyBatch([]*raft.Log{good})
			res := l.ApplyBatch([]*raft.Log{second, bad, later})
			if err := l.Halted(); !errors.Is(err, ErrHalted) {
				t.Fatalf("Halted() = %v, want ErrHalted", err)
			}
			select {
			case <-l.HaltedC():
			default:
				t.Fatal("the halt channel is not closed")
			}
			if _, ok := res[0].([]BuyResult); !ok {
				t.Fatalf("the entry before the bad one answered %v", res[0])
			}
			for i := 1; i < 3; i++ {
				if err, ok := res[i].(error); !ok || !errors.Is(err, ErrHalted) {
					t.Fatalf("entry %d answered %v, want the halt error", i+2, res[i])
				}
			}
			// Nothing more is applied, ever.
			l.ApplyBatch([]*raft.Log{buyEntry(5, 5000, p)})
			s := l.Stats(StatsQuery{Window: time.Hour}, time.Unix(0, 5000))
			if s.TotalBuys != 2 || s.TotalCents != 500 || l.AppliedIndex() != 2 {
				t.Fatalf("after the halt: %+v, applied %d; want 2 purchases, 500 cents, applied 2", s, l.AppliedIndex())
			}
			if idx, _ := l.Digest(); idx != 2 {
				t.Fatalf("digest index %d, want 2", idx)
			}
			// A read waiting for a later index is answered with the halt,
			// not left waiting or served.
			if err := l.WaitApplied(t.Context(), 3); !errors.Is(err, ErrHalted) {
				t.Fatalf("WaitApplied(3) = %v, want ErrHalted", err)
			}
			if err := l.WaitApplied(t.Context(), 2); err != nil {
				t.Fatalf("WaitApplied(2) = %v", err)
			}
		})
	}
}

func TestV1EntriesStillApply(t *testing.T) {
	feed := newLogFeed(21)
	entries := feed.entries(200)
	v1 := make([]*raft.Log, len(entries))
	for i, e := range entries {
		c := *e
		if c.Type == raft.LogCommand {
			c.Data = asV1(e.Data)
		}
		v1[i] = &c
	}
	a, b := openTestLedger(t), openTestLedger(t)
	resA := applyInChunks(a, entries, 7)
	resB := applyInChunks(b, v1, 7)
	if b.Halted() != nil {
		t.Fatalf("v1 entries halted the ledger: %v", b.Halted())
	}
	if !reflect.DeepEqual(resA, resB) {
		t.Fatal("v1 and v2 entries answered differently")
	}
	now := time.Unix(0, feed.now)
	if !reflect.DeepEqual(viewOf(t, a, now, feed.keys), viewOf(t, b, now, feed.keys)) {
		t.Fatal("v1 and v2 entries left different state")
	}
	if da, db := digestOf(a), digestOf(b); da != db {
		t.Fatalf("digests differ: %s and %s", da, db)
	}
}

func digestOf(l *Ledger) string {
	i, d := l.Digest()
	return fmt.Sprintf("%d/%s", i, d)
}

func TestDigestFollowsTheRecords(t *testing.T) {
	feed := newLogFeed(22)
	entries := feed.entries(300)
	a, b := openTestLedger(t), openTestLedger(t)
	_, empty := a.Digest()
	applyInChunks(a, entries, 1)
	applyInChunks(b, entries, 41)
	if digestOf(a) != digestOf(b) {
		t.Fatalf("two ledgers fed the same log: %s and %s", digestOf(a), digestOf(b))
	}
	if _, d := a.Digest(); d == empty || len(d) != 64 {
		t.Fatalf("digest %q after 300 entries, empty was %q", d, empty)
	}

	// One amount differs in one record: the digests differ from there on.
	c := openTestLedger(t)
	changed := append([]*raft.Log(nil), entries...)
	for i, e := range changed {
		if e.Type != raft.LogCommand || e.Data[0] != byte(CmdBuyBatch) {
			continue
		}
		batch, err := DecodeBuyBatch(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		batch.Purchases[0].AmountCents++
		changed[i] = &raft.Log{Index: e.Index, Type: e.Type, Data: EncodeBuyBatch(batch)}
		break
	}
	applyInChunks(c, changed, 41)
	if ia, da := a.Digest(); true {
		if ic, dc := c.Digest(); ic != ia || dc == da {
			t.Fatalf("one changed amount: digests %d/%s and %d/%s, want the same index and different digests", ia, da, ic, dc)
		}
	}

	// A snapshot restores to the same digest, and both go on alike.
	r := openTestLedger(t)
	if err := r.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, a)))); err != nil {
		t.Fatal(err)
	}
	if digestOf(r) != digestOf(a) {
		t.Fatalf("restored %s, source %s", digestOf(r), digestOf(a))
	}
	more := feed.entries(20)
	applyInChunks(a, more, 3)
	applyInChunks(r, more, 5)
	if digestOf(r) != digestOf(a) {
		t.Fatalf("after more entries: restored %s, source %s", digestOf(r), digestOf(a))
	}
}

func TestDigestAtKeepsRecentIndexes(t *testing.T) {
	l := openTestLedger(t)
	p := Purchase{UserID: 1, PromotionID: 1, ProductID: 1, AmountCents: 100, IP: "192.0.2.1"}
	publish := &raft.Log{Index: 2, Type: raft.LogCommand, Data: EncodePublishNode(goldenNode())}
	l.ApplyBatch([]*raft.Log{buyEntry(1, 10, p), publish, buyEntry(3, 20, p)})
	_, at3 := l.Digest()
	at1, ok1 := l.DigestAt(1)
	at2, ok2 := l.DigestAt(2)
	got3, ok3 := l.DigestAt(3)
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("DigestAt 1, 2, 3 found %v %v %v", ok1, ok2, ok3)
	}
	if at2 != at1 || got3 != at3 || at1 == at3 {
		t.Fatalf("digests at 1, 2, 3: %s %s %s (current %s); an entry without purchases keeps the digest before it", at1, at2, got3, at3)
	}
	// SHA-256 of no bytes: the state before any record.
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if empty, ok := l.DigestAt(0); !ok || empty != emptySHA256 {
		t.Fatalf("DigestAt(0) = %q, %v; want the empty state's digest %s", empty, ok, emptySHA256)
	}
	if _, ok := l.DigestAt(4); ok {
		t.Fatal("DigestAt answered for an index not applied yet")
	}

	// Past the ring's size the oldest indexes are forgotten, the recent
	// ones kept.
	for i := uint64(4); i < 4+digestRingSize; i++ {
		l.ApplyBatch([]*raft.Log{buyEntry(i, int64(i*10), p)})
	}
	last, current := l.Digest()
	if _, ok := l.DigestAt(1); ok {
		t.Fatal("index 1 still answered after the ring wrapped")
	}
	if d, ok := l.DigestAt(last); !ok || d != current {
		t.Fatalf("DigestAt(last) = %q, %v; want %s", d, ok, current)
	}
	if _, ok := l.DigestAt(last - digestRingSize + 1); !ok {
		t.Fatal("the oldest index of the ring is not answered")
	}
}

func TestFailedRecordsCommitIsRetriedExactlyOnce(t *testing.T) {
	feed := newLogFeed(23)
	entries := feed.entries(120)
	want := openTestLedger(t)
	wantRes := applyInChunks(want, entries, 9)

	l := openTestLedger(t)
	l.retryMin, l.retryMax = time.Millisecond, 4*time.Millisecond
	var failures atomic.Int32
	failures.Store(5)
	blockedSeen := make(chan error, 1)
	l.failCommit = func() error {
		if failures.Add(-1) < 0 {
			return nil
		}
		if err := l.ApplyBlocked(); err != nil {
			select {
			case blockedSeen <- err:
			default:
			}
		}
		return errors.New("no space left on device (injected)")
	}
	// The first chunks apply, then commits fail five times in a row inside
	// one chunk; the retry must neither lose nor double that chunk.
	gotRes := applyInChunks(l, entries, 9)
	if failures.Load() >= 0 {
		t.Fatal("the injected failures were not all used")
	}
	select {
	case err := <-blockedSeen:
		if err == nil {
			t.Fatal("ApplyBlocked was nil while commits failed")
		}
	default:
		t.Fatal("ApplyBlocked never reported the failing commit")
	}
	if err := l.ApplyBlocked(); err != nil {
		t.Fatalf("ApplyBlocked after recovery: %v", err)
	}
	if !reflect.DeepEqual(gotRes, wantRes) {
		t.Fatal("answers differ from a ledger that never failed")
	}
	now := time.Unix(0, feed.now)
	if !reflect.DeepEqual(viewOf(t, l, now, feed.keys), viewOf(t, want, now, feed.keys)) {
		t.Fatal("state differs from a ledger that never failed")
	}
	if digestOf(l) != digestOf(want) {
		t.Fatalf("digest %s, want %s", digestOf(l), digestOf(want))
	}
}

func TestCloseEndsABlockedApply(t *testing.T) {
	l := openTestLedger(t)
	l.failCommit = func() error { return errors.New("no space left on device (injected)") }
	done := make(chan []any)
	go func() {
		done <- l.ApplyBatch([]*raft.Log{buyEntry(1, 10, Purchase{UserID: 1, PromotionID: 1, ProductID: 1, IP: "192.0.2.1"})})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for l.ApplyBlocked() == nil {
		if time.Now().After(deadline) {
			t.Fatal("apply did not report being blocked")
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if _, ok := res[0].(error); !ok {
			t.Fatalf("blocked apply answered %v after Close, want an error", res[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the blocked apply")
	}
	if l.AppliedIndex() != 0 || l.Count() != 0 {
		t.Fatalf("applied %d, %d purchases: a blocked apply must change nothing", l.AppliedIndex(), l.Count())
	}
}

// The digest is the SHA-256 of the stored records' bytes in id order, which
// anyone holding the records can check.
func TestDigestIsTheSHA256OfTheRecords(t *testing.T) {
	l := openTestLedger(t)
	applyInChunks(l, newLogFeed(24).entries(100), 6)
	recs, err := l.Records(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for i := range recs {
		h.Write(encodeRecord(nil, &recs[i]))
	}
	if _, got := l.Digest(); got != hex.EncodeToString(h.Sum(nil)) {
		t.Fatalf("digest %s, SHA-256 of the %d records %x", got, len(recs), h.Sum(nil))
	}
}

// seqModel applies purchases one at a time to a plain map and queue, the way
// the ledger did before applies were planned: the oracle for the plan's view
// of the idempotency table (expiry and the size bound included).
type seqModel struct {
	count   uint64
	last    int64
	maxKeys int
	keys    map[string]idempotencyEntry
	queue   []idempotencyRef
}

func (m *seqModel) dropFront() {
	ref := m.queue[0]
	m.queue = m.queue[1:]
	if e, ok := m.keys[ref.key]; ok && e.purchaseID == ref.purchaseID {
		delete(m.keys, ref.key)
	}
}

func (m *seqModel) apply(index uint64, b BuyBatch) []BuyResult {
	at := max(b.LeaderTime, m.last)
	m.last = at
	for len(m.queue) > 0 && m.queue[0].at < at-int64(IdempotencyRetention) {
		m.dropFront()
	}
	out := make([]BuyResult, len(b.Purchases))
	for i, p := range b.Purchases {
		if err := ValidatePurchase(&p); err != nil {
			out[i] = BuyResult{Index: index, Err: err}
			continue
		}
		if e, ok := m.keys[p.IdempotencyKey]; ok && p.IdempotencyKey != "" {
			out[i] = e.result()
			if e.fingerprint != p.Fingerprint {
				out[i].Err = ErrIdempotencyConflict
			}
			continue
		}
		m.count++
		out[i] = BuyResult{PurchaseID: m.count, TotalBuys: m.count, RecordedAt: at, Index: index}
		if p.IdempotencyKey != "" {
			m.keys[p.IdempotencyKey] = idempotencyEntry{purchaseID: m.count, recordedAt: at, index: index, fingerprint: p.Fingerprint}
			m.queue = append(m.queue, idempotencyRef{key: p.IdempotencyKey, at: at, purchaseID: m.count})
			for len(m.queue) > m.maxKeys {
				m.dropFront()
			}
		}
	}
	return out
}

func TestPlannedApplyMatchesApplyingOneByOne(t *testing.T) {
	for _, maxKeys := range []int{1, 5, 1000} {
		feed := newLogFeed(25)
		entries := feed.entries(400)
		model := &seqModel{maxKeys: maxKeys, keys: map[string]idempotencyEntry{}}
		var want []any
		for _, e := range entries {
			if e.Type != raft.LogCommand || e.Data[0] != byte(CmdBuyBatch) {
				want = append(want, nil)
				continue
			}
			b, err := DecodeBuyBatch(e.Data)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, model.apply(e.Index, b))
		}
		for _, chunk := range []int{1, 50} {
			l := openBoundedLedger(t, maxKeys)
			got := applyInChunks(l, entries, chunk)
			for i := range got {
				if _, publish := got[i].([]BuyResult); !publish {
					got[i] = nil // publications answer nil, configurations nothing
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("bound %d, chunks of %d: the ledger's answers differ from applying one purchase at a time", maxKeys, chunk)
			}
			if l.Count() != model.count {
				t.Fatalf("bound %d, chunks of %d: %d purchases, the model %d", maxKeys, chunk, l.Count(), model.count)
			}
		}
	}
}
