package ledger

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fillLedger records n purchases in batches of batchSize, one leader time
// per batch and a millisecond between batches, spread over 50 promotions
// and 500 products.
func fillLedger(tb testing.TB, l *Ledger, n, batchSize int) time.Time {
	tb.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	index := l.AppliedIndex()
	for done := 0; done < n; {
		b := BuyBatch{LeaderTime: start.Add(time.Duration(index) * time.Millisecond).UnixNano()}
		for i := 0; i < batchSize && done < n; i++ {
			b.Purchases = append(b.Purchases, Purchase{
				UserID: int64(done%9973 + 1), PromotionID: int64(done%50 + 1), ProductID: int64(done%500 + 1),
				AmountCents: int64(done%10000 + 1), IP: "10.1.2.3",
			})
			done++
		}
		index++
		l.ApplyBatch([]*raft.Log{{Index: index, Type: raft.LogCommand, Data: EncodeBuyBatch(b)}})
	}
	return start.Add(time.Duration(index) * time.Millisecond)
}

// BenchmarkApplyBatch measures applying Raft entries of 256 purchases.
func BenchmarkApplyBatch(b *testing.B) {
	l := openTestLedger(b)
	b.ReportAllocs()
	b.ResetTimer()
	fillLedger(b, l, b.N*256, 256)
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "purchases/s")
}

// BenchmarkStats compares one stats query at 1,000 and 1,000,000 recorded
// purchases: the window indexes make both O(log n).
func BenchmarkStats(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		l := openTestLedger(b)
		end := fillLedger(b, l, n, 256)
		b.Run(fmt.Sprintf("purchases=%d", n), func(b *testing.B) {
			queries := []StatsQuery{
				{Window: time.Hour},
				{Window: 10 * time.Second, PromotionID: 7},
				{Window: time.Minute, ProductID: 42},
				{Window: 30 * time.Minute, PromotionID: 7, ProductID: 107},
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				l.Stats(queries[i%len(queries)], end)
			}
		})
		l.Close()
	}
}

// BenchmarkMillion records one million purchases, then reports the heap the
// ledger holds, and the time to snapshot and to restore them.
func BenchmarkMillion(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		l := openTestLedger(b)
		fillLedger(b, l, n, 256)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/purchase")
		b.ReportMetric(float64(l.Footprint().WindowPoints), "window-points")

		start := time.Now()
		snap, err := l.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		var sink memorySink
		if err := snap.Persist(&sink); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "snapshot-s")
		b.ReportMetric(float64(sink.Len())/(1<<20), "snapshot-MiB")

		dst := openTestLedger(b)
		start = time.Now()
		if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "restore-s")
		if dst.Count() != n {
			b.Fatalf("restored %d purchases, want %d", dst.Count(), n)
		}
		l.Close()
		dst.Close()
	}
}

// BenchmarkMemoryPerPurchase records one million purchases at realistic id
// cardinalities (100,000 users, 1,000 promotions, 10,000 products, 30 % with
// an Idempotency-Key of 36 characters) and reports the heap the ledger holds
// per purchase. "catalog" sells each product in one promotion (10,000
// promotion-product pairs); "any-pair" draws promotion and product apart,
// the worst case for the per-pair window indexes (about 950,000 pairs);
// "catalog-no-keys" is catalog without keys, to tell what the keys cost.
func BenchmarkMemoryPerPurchase(b *testing.B) {
	const n = 1_000_000
	for _, layout := range []string{"catalog", "catalog-no-keys", "any-pair"} {
		b.Run(layout, func(b *testing.B) {
			for b.Loop() {
				rng := rand.New(rand.NewPCG(1, 2))
				purchase := func(i int) Purchase {
					product := 1 + rng.Int64N(10_000)
					promotion := 1 + product%1_000
					if layout == "any-pair" {
						promotion = 1 + rng.Int64N(1_000)
					}
					p := Purchase{
						UserID: 1 + rng.Int64N(100_000), PromotionID: promotion, ProductID: product,
						AmountCents: 1 + rng.Int64N(100_000),
						IP:          fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), rng.IntN(256)),
					}
					if rng.IntN(10) < 3 && layout != "catalog-no-keys" {
						p.IdempotencyKey = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", i, rng.IntN(1<<16), rng.IntN(1<<16), rng.IntN(1<<16), rng.Int64N(1<<48))
						p.Fingerprint = rng.Uint64()
					}
					return p
				}
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				l := openTestLedger(b)
				start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
				batch := make([]Purchase, 0, 256)
				for done, index := 0, uint64(1); done < n; index++ {
					batch = batch[:0]
					for len(batch) < cap(batch) && done < n {
						batch = append(batch, purchase(done))
						done++
					}
					at := start.Add(time.Duration(index) * time.Millisecond).UnixNano()
					l.ApplyBatch([]*raft.Log{{Index: index, Type: raft.LogCommand, Data: EncodeBuyBatch(BuyBatch{LeaderTime: at, Purchases: batch})}})
				}
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				f := l.Footprint()
				heap := float64(after.HeapInuse - before.HeapInuse)
				b.ReportMetric(heap/n, "heap-B/purchase")
				b.ReportMetric(heap/(1<<20), "heap-MiB")
				b.ReportMetric(float64(f.WindowPoints), "window-points")
				b.ReportMetric(float64(len(l.st.byPair)), "pairs")
				b.ReportMetric(float64(f.IdempotencyKeys), "idempotency-keys")
				runtime.KeepAlive(l)
				l.Close()
			}
		})
	}
}
