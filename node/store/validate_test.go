package store_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/store"
)

// poisonBatch is scenario 3's batch: an amount of -500,000,000.00, negative
// ids and a 2 MiB ip_address.
func poisonBatch() []ledger.Purchase {
	negative := purchase(100)
	negative.AmountCents = -500_000_000_00
	negativeIDs := purchase(101)
	negativeIDs.UserID, negativeIDs.PromotionID, negativeIDs.ProductID = -1, -2, -3
	hugeIP := purchase(102)
	hugeIP.IP = strings.Repeat("1", 2<<20)
	return []ledger.Purchase{negative, negativeIDs, hugeIP}
}

func TestPoisonPurchasesAreRefusedAndTheNodeStillRestarts(t *testing.T) {
	dir, addr := t.TempDir(), testnode.FreeAddr(t)
	sameNode := func(c *store.Config) {
		c.DataDir, c.RaftBind, c.RaftAdvertise = dir, addr, addr
		c.InitialCluster = []raft.Server{{ID: raft.ServerID(c.ID), Address: raft.ServerAddress(addr), Suffrage: raft.Voter}}
	}
	st := testnode.OpenSingle(t, sameNode)
	good := purchase(0)
	if _, err := st.Buy(t.Context(), good); err != nil {
		t.Fatal(err)
	}

	// Through the forwarding path, as a follower (or anyone with the admin
	// token) hands purchases to the leader.
	poison := poisonBatch()
	raw, err := st.BuyForwarded(t.Context(), ledger.EncodeBuyBatch(ledger.BuyBatch{Purchases: poison}))
	if err != nil {
		t.Fatalf("forwarded batch: %v", err)
	}
	errs, err := store.ForwardedOutcomeErrors(raw, len(poison))
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if !errors.Is(err, ledger.ErrInvalidPurchase) {
			t.Errorf("forwarded poison purchase %d: outcome %v, want ErrInvalidPurchase", i, err)
		}
	}
	// Straight into the log, as a leader of an older version proposed it:
	// apply skips each purchase instead of recording it.
	f := st.Raft().Apply(ledger.EncodeBuyBatch(ledger.BuyBatch{LeaderTime: time.Now().UnixNano(), Purchases: poison}), 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("apply the poison entry: %v", err)
	}
	results, _ := f.Response().([]ledger.BuyResult)
	if len(results) != len(poison) {
		t.Fatalf("apply answered %#v", f.Response())
	}
	for i, r := range results {
		if !errors.Is(r.Err, ledger.ErrInvalidPurchase) || r.PurchaseID != 0 {
			t.Errorf("applied poison purchase %d: %+v, want ErrInvalidPurchase and no id", i, r)
		}
	}
	stats, err := st.Stats(t.Context(), ledger.StatsQuery{Window: time.Hour}, store.Linearizable)
	if err != nil {
		t.Fatal(err)
	}
	if stats.TotalBuys != 1 || stats.TotalCents != good.AmountCents {
		t.Fatalf("after the poison: %d purchases, %d cents; want 1 purchase of %d cents", stats.TotalBuys, stats.TotalCents, good.AmountCents)
	}

	// Two snapshots (the store keeps two), then a restart that restores them.
	for i := range 2 {
		if _, err := st.Buy(t.Context(), purchase(i+1)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Snapshot(); err != nil {
			t.Fatalf("snapshot %d: %v", i+1, err)
		}
	}
	want, err := st.Records(t.Context(), 0, 1000, store.Linearizable)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 3 || want[2].ID != 3 {
		t.Fatalf("%d records before the restart, want purchases 1..3", len(want))
	}
	if err := st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	again := testnode.OpenSingle(t, sameNode)
	got, err := again.Records(t.Context(), 0, 1000, store.Linearizable)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after the restart the records differ: %d records, want %d", len(got), len(want))
	}
}
