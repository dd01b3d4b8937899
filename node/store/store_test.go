package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/store"
)

func purchase(i int) ledger.Purchase {
	return ledger.Purchase{UserID: int64(i + 1), PromotionID: 1, ProductID: 1, AmountCents: 100, IP: "192.0.2.1"}
}

func TestConcurrentBuysShareRaftEntries(t *testing.T) {
	st := testnode.OpenSingle(t)
	before := st.Raft().LastIndex()
	const buyers, each = 64, 20
	var wg sync.WaitGroup
	errs := make(chan error, buyers)
	for b := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := st.Buy(t.Context(), purchase(b*each+i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := st.Ledger().Count(); got != buyers*each {
		t.Fatalf("%d purchases recorded, want %d", got, buyers*each)
	}
	entries := st.Raft().LastIndex() - before
	t.Logf("%d purchases in %d Raft entries", buyers*each, entries)
	if entries*2 > buyers*each {
		t.Fatalf("%d concurrent purchases took %d Raft entries: group commit is not batching", buyers*each, entries)
	}
}

func TestPurchaseIDsAreDenseAndAnswersMatchRecords(t *testing.T) {
	st := testnode.OpenSingle(t)
	seen := map[uint64]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := st.Buy(t.Context(), purchase(i))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[res.PurchaseID] {
				t.Errorf("purchase id %d handed out twice", res.PurchaseID)
			}
			seen[res.PurchaseID] = true
		}()
	}
	wg.Wait()
	recs, err := st.Records(t.Context(), 0, 1000, store.Linearizable)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.ID != uint64(i+1) || !seen[r.ID] {
			t.Fatalf("record %d has id %d (answered: %v)", i, r.ID, seen[r.ID])
		}
	}
	if len(recs) != 200 {
		t.Fatalf("%d records, want 200", len(recs))
	}
}

func TestIdempotentRetryNeedsNoLogEntry(t *testing.T) {
	st := testnode.OpenSingle(t)
	p := purchase(1)
	p.IdempotencyKey, p.Fingerprint = "retry-me", 42
	first, err := st.Buy(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	index := st.Raft().LastIndex()
	again, err := st.Buy(t.Context(), p)
	if err != nil || !again.Replayed || again.PurchaseID != first.PurchaseID || again.RecordedAt != first.RecordedAt {
		t.Fatalf("retry: %+v %v, want %+v replayed", again, err, first)
	}
	if st.Raft().LastIndex() != index {
		t.Fatal("a retry of a recorded purchase wrote to the log")
	}
	p.Fingerprint = 43
	if _, err := st.Buy(t.Context(), p); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("same key, other content: %v, want ErrIdempotencyConflict", err)
	}
}

func TestReadsDoNotWriteToTheLog(t *testing.T) {
	st := testnode.OpenSingle(t)
	if _, err := st.Buy(t.Context(), purchase(1)); err != nil {
		t.Fatal(err)
	}
	index := st.Raft().LastIndex()
	for _, c := range []store.Consistency{store.Linearizable, store.Lease, store.Stale} {
		s, err := st.Stats(t.Context(), ledger.StatsQuery{Window: time.Hour}, c)
		if err != nil || s.TotalBuys != 1 {
			t.Fatalf("%s read: %+v %v", c, s, err)
		}
	}
	if st.Raft().LastIndex() != index {
		t.Fatalf("reads wrote to the log: last index %d -> %d", index, st.Raft().LastIndex())
	}
}

func TestCancelledBuyReportsUnknownOutcome(t *testing.T) {
	st := testnode.OpenSingle(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := st.Buy(ctx, purchase(1))
	if err != nil && !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("buy with a cancelled context: %v, want nil or ErrOutcomeUnknown", err)
	}
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	st := testnode.OpenSingle(t)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := st.Buy(t.Context(), purchase(1))
	if err == nil {
		t.Fatal("a closed store accepted a purchase")
	}
	if errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("a closed store must say nothing was recorded, got %v", err)
	}
}
