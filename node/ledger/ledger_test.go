package ledger

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func openTestLedger(t testing.TB) *Ledger {
	t.Helper()
	l, err := Open(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// logFeed builds a deterministic stream of Raft log entries.
type logFeed struct {
	rng   *rand.Rand
	index uint64
	now   int64
	keys  []string
}

func newLogFeed(seed uint64) *logFeed {
	return &logFeed{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
}

func (f *logFeed) purchase() Purchase {
	p := Purchase{
		UserID:      1 + f.rng.Int64N(50),
		PromotionID: 1 + f.rng.Int64N(5),
		ProductID:   1 + f.rng.Int64N(7),
		AmountCents: f.rng.Int64N(10_000_00),
		IP:          fmt.Sprintf("10.0.0.%d", f.rng.IntN(255)),
	}
	switch f.rng.IntN(4) {
	case 0: // a fresh key
		p.IdempotencyKey = fmt.Sprintf("key-%d", f.rng.Uint64())
		f.keys = append(f.keys, p.IdempotencyKey)
	case 1: // a retry of an earlier key, sometimes for different content
		if len(f.keys) > 0 {
			p.IdempotencyKey = f.keys[f.rng.IntN(len(f.keys))]
		}
	}
	p.Fingerprint = uint64(p.UserID)<<32 ^ uint64(p.AmountCents)
	return p
}

// next returns the next entry: mostly buy batches, with leader clocks that
// sometimes step backwards, and now and then a node publication or a
// configuration entry.
func (f *logFeed) next() *raft.Log {
	f.index++
	f.now += f.rng.Int64N(int64(30 * time.Minute))
	switch f.rng.IntN(20) {
	case 0:
		return &raft.Log{Index: f.index, Type: raft.LogConfiguration}
	case 1:
		id := fmt.Sprintf("n%d", f.rng.IntN(3))
		return &raft.Log{Index: f.index, Type: raft.LogCommand, Data: EncodePublishNode(NodeInfo{ID: id, HTTPURL: "http://" + id, AdminURL: "http://admin-" + id})}
	}
	b := BuyBatch{LeaderTime: f.now - f.rng.Int64N(int64(time.Hour))}
	for range 1 + f.rng.IntN(8) {
		b.Purchases = append(b.Purchases, f.purchase())
	}
	return &raft.Log{Index: f.index, Type: raft.LogCommand, Data: EncodeBuyBatch(b)}
}

func (f *logFeed) entries(n int) []*raft.Log {
	out := make([]*raft.Log, n)
	for i := range out {
		out[i] = f.next()
	}
	return out
}

// applyInChunks applies entries in batches of varying size, as Raft does.
func applyInChunks(l *Ledger, entries []*raft.Log, chunk int) []any {
	var results []any
	for len(entries) > 0 {
		n := min(chunk, len(entries))
		results = append(results, l.ApplyBatch(entries[:n])...)
		entries = entries[n:]
	}
	return results
}

// ledgerView is everything observable about a ledger, for comparisons.
type ledgerView struct {
	Records []Record
	Stats   []Stats
	Nodes   []NodeInfo
	Applied uint64
	Keys    map[string]BuyResult
}

func viewOf(t *testing.T, l *Ledger, now time.Time, keys []string) ledgerView {
	t.Helper()
	recs, err := l.Records(0, 1<<30)
	if err != nil {
		t.Fatalf("read records: %v", err)
	}
	v := ledgerView{Records: recs, Nodes: l.Nodes(), Applied: l.AppliedIndex(), Keys: map[string]BuyResult{}}
	for _, h := range []float64{0.25, 1, 6, 24, 24 * 30, 87600} {
		for promo := int64(0); promo <= 5; promo++ {
			for product := int64(0); product <= 7; product += 3 {
				s := l.Stats(StatsQuery{Window: time.Duration(h * float64(time.Hour)), PromotionID: promo, ProductID: product}, now)
				v.Stats = append(v.Stats, s)
			}
		}
	}
	for _, k := range keys {
		if res, ok := l.Lookup(k, 0); ok {
			res.Err = nil
			v.Keys[k] = res
		}
	}
	return v
}

func TestLedgerIsDeterministic(t *testing.T) {
	feed := newLogFeed(1)
	entries := feed.entries(400)
	a, b := openTestLedger(t), openTestLedger(t)
	resA := applyInChunks(a, entries, 1)
	resB := applyInChunks(b, entries, 37)
	if !reflect.DeepEqual(resA, resB) {
		t.Fatal("two ledgers fed the same log answered differently")
	}
	now := time.Unix(0, feed.now)
	va, vb := viewOf(t, a, now, feed.keys), viewOf(t, b, now, feed.keys)
	if !reflect.DeepEqual(va, vb) {
		t.Fatal("two ledgers fed the same log hold different state")
	}
	if len(va.Records) == 0 || len(va.Keys) == 0 || len(va.Nodes) == 0 {
		t.Fatalf("feed too thin to prove anything: %d records, %d keys, %d nodes", len(va.Records), len(va.Keys), len(va.Nodes))
	}
}

// memorySink is a raft.SnapshotSink in memory; a unit test needs nothing more.
type memorySink struct {
	bytes.Buffer
	cancelled, closed bool
}

func (s *memorySink) ID() string    { return "memory" }
func (s *memorySink) Cancel() error { s.cancelled = true; return nil }
func (s *memorySink) Close() error  { s.closed = true; return nil }

func snapshotBytes(t *testing.T, l *Ledger) []byte {
	t.Helper()
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer snap.Release()
	var sink memorySink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v, want closed only", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	feed := newLogFeed(2)
	src := openTestLedger(t)
	applyInChunks(src, feed.entries(300), 16)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// Entries applied after Snapshot must not leak into it.
	later := feed.entries(50)
	applyInChunks(src, later[:25], 5)
	var sink memorySink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("persist: %v", err)
	}

	dst := openTestLedger(t)
	applyInChunks(dst, newLogFeed(99).entries(20), 4) // state that Restore must replace
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	applyInChunks(dst, later[:25], 5)
	now := time.Unix(0, feed.now)
	if want, got := viewOf(t, src, now, feed.keys), viewOf(t, dst, now, feed.keys); !reflect.DeepEqual(want, got) {
		t.Fatalf("restored ledger differs: %d vs %d records, applied %d vs %d", len(want.Records), len(got.Records), want.Applied, got.Applied)
	}
	// Both must go on identically.
	resA := applyInChunks(src, later[25:], 3)
	resB := applyInChunks(dst, later[25:], 3)
	if !reflect.DeepEqual(resA, resB) {
		t.Fatal("source and restored ledger answered the same entries differently")
	}
	if !bytes.Equal(snapshotBytes(t, src), snapshotBytes(t, dst)) {
		t.Fatal("snapshots of source and restored ledger differ")
	}
}

func TestRestoreRejectsCorruptSnapshot(t *testing.T) {
	src := openTestLedger(t)
	applyInChunks(src, newLogFeed(3).entries(50), 10)
	good := snapshotBytes(t, src)
	dst := openTestLedger(t)
	applyInChunks(dst, newLogFeed(4).entries(10), 10)
	before := dst.Count()
	for name, data := range map[string][]byte{
		"flipped byte": func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 0xff; return b }(),
		"truncated":    good[:len(good)-10],
		"not ours":     []byte("PGDMP garbage"),
	} {
		if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err == nil {
			t.Errorf("%s: restore succeeded", name)
		}
		if dst.Count() != before {
			t.Errorf("%s: failed restore changed the count from %d to %d", name, before, dst.Count())
		}
	}
}

func buyEntry(index uint64, at int64, ps ...Purchase) *raft.Log {
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: EncodeBuyBatch(BuyBatch{LeaderTime: at, Purchases: ps})}
}

func TestRecordedTimeNeverGoesBackwards(t *testing.T) {
	l := openTestLedger(t)
	p := Purchase{UserID: 1, PromotionID: 1, ProductID: 1, AmountCents: 100, IP: "192.0.2.1"}
	res := l.ApplyBatch([]*raft.Log{buyEntry(1, 1000, p), buyEntry(2, 500, p), buyEntry(3, 2000, p)})
	var got []int64
	for _, r := range res {
		got = append(got, r.([]BuyResult)[0].RecordedAt)
	}
	if want := []int64{1000, 1000, 2000}; !reflect.DeepEqual(got, want) {
		t.Fatalf("recorded times %v, want %v", got, want)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	l := openTestLedger(t)
	day := int64(IdempotencyRetention)
	p := Purchase{UserID: 1, PromotionID: 1, ProductID: 1, AmountCents: 100, IP: "192.0.2.1", IdempotencyKey: "k", Fingerprint: 7}
	other := p
	other.Fingerprint = 8
	plain := Purchase{UserID: 2, PromotionID: 1, ProductID: 1, AmountCents: 1, IP: "192.0.2.1"}

	first := l.ApplyBatch([]*raft.Log{buyEntry(1, 10, p, p, other)})[0].([]BuyResult)
	if first[0].Replayed || first[0].PurchaseID != 1 {
		t.Fatalf("first use: %+v", first[0])
	}
	if !first[1].Replayed || first[1].PurchaseID != 1 || first[1].Err != nil {
		t.Fatalf("retry in the same batch: %+v", first[1])
	}
	if first[2].Err != ErrIdempotencyConflict {
		t.Fatalf("different content under the same key: %+v", first[2])
	}
	// Just inside the retention, by log time: still a replay.
	again := l.ApplyBatch([]*raft.Log{buyEntry(2, 10+day-1, plain, p)})[0].([]BuyResult)
	if !again[1].Replayed || again[1].PurchaseID != 1 || again[1].TotalBuys != 1 {
		t.Fatalf("retry within retention: %+v", again[1])
	}
	// Past the retention by log time: a new purchase.
	late := l.ApplyBatch([]*raft.Log{buyEntry(3, 10+day+1, p)})[0].([]BuyResult)
	if late[0].Replayed || late[0].PurchaseID != 3 {
		t.Fatalf("use after retention: %+v", late[0])
	}
	if l.Count() != 3 {
		t.Fatalf("count %d, want 3", l.Count())
	}
}

func TestStatsMatchBruteForce(t *testing.T) {
	for seed := uint64(10); seed < 14; seed++ {
		feed := newLogFeed(seed)
		l := openTestLedger(t)
		applyInChunks(l, feed.entries(500), 1+int(seed))
		recs, err := l.Records(0, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(0, feed.now+int64(time.Minute))
		for range 300 {
			q := StatsQuery{
				Window:      time.Duration(feed.rng.Float64() * float64(200*time.Hour)),
				PromotionID: feed.rng.Int64N(7), // 6 matches nothing
				ProductID:   feed.rng.Int64N(9),
			}
			if feed.rng.IntN(3) == 0 {
				q.Window = time.Duration(feed.rng.IntN(len(recs))) // cut exactly on a record
				q.Window = time.Duration(now.UnixNano() - recs[int(q.Window)].RecordedAt)
			}
			got := l.Stats(q, now)
			var want Stats
			cut := now.UnixNano() - int64(q.Window)
			for _, r := range recs {
				if (q.PromotionID != 0 && r.PromotionID != q.PromotionID) || (q.ProductID != 0 && r.ProductID != q.ProductID) {
					continue
				}
				want.TotalBuys++
				want.TotalCents += r.AmountCents
				if r.RecordedAt >= cut {
					want.RecentBuys++
					want.RecentCents += r.AmountCents
				}
			}
			got.AppliedIndex = 0
			if got != want {
				t.Fatalf("seed %d, query %+v: got %+v, want %+v", seed, q, got, want)
			}
		}
	}
}

func TestRecordsPageInIDOrder(t *testing.T) {
	l := openTestLedger(t)
	applyInChunks(l, newLogFeed(5).entries(100), 9)
	total := int(l.Count())
	var seen uint64
	for {
		page, err := l.Records(seen, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if r.ID != seen+1 {
				t.Fatalf("record %d after %d", r.ID, seen)
			}
			seen = r.ID
		}
	}
	if int(seen) != total {
		t.Fatalf("paged through %d records, ledger has %d", seen, total)
	}
}
