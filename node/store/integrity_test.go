package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/store"
)

func TestAHaltedLedgerTakesTheNodeOutOfService(t *testing.T) {
	st := testnode.OpenSingle(t)
	if _, err := st.Buy(t.Context(), purchase(1)); err != nil {
		t.Fatal(err)
	}
	// A buy batch whose checksum does not match, committed through Raft as
	// a damaged log would hand it to the ledger.
	bad := ledger.EncodeBuyBatch(ledger.BuyBatch{LeaderTime: 1, Purchases: []ledger.Purchase{purchase(2)}})
	bad[len(bad)-1] ^= 0xff
	if err := st.Raft().Apply(bad, 5*time.Second).Error(); err != nil {
		t.Fatalf("commit the damaged entry: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.Raft().State() != raft.Shutdown {
		if time.Now().After(deadline) {
			t.Fatalf("Raft still %s after the halt", st.Raft().State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ok, reason := st.Ready(); ok || !strings.Contains(reason, "halted") || !strings.Contains(reason, "checksum") {
		t.Fatalf("Ready() = %v, %q; want false with the halt's reason", ok, reason)
	}
	for _, c := range []store.Consistency{store.Linearizable, store.Lease, store.Stale} {
		if _, err := st.Stats(t.Context(), ledger.StatsQuery{Window: time.Hour}, c); !errors.Is(err, store.ErrHalted) {
			t.Errorf("%s stats: %v, want ErrHalted", c, err)
		}
	}
	if _, err := st.Buy(t.Context(), purchase(3)); !errors.Is(err, store.ErrHalted) {
		t.Errorf("buy: %v, want ErrHalted", err)
	}
	status := st.Status()
	if !strings.Contains(status.Halted, "checksum mismatch") || len(status.Digest) != 64 {
		t.Errorf("status %+v: want the halt's reason and a digest", status)
	}
	if st.Ledger().Count() != 1 {
		t.Errorf("%d purchases applied, want the one before the damaged entry", st.Ledger().Count())
	}
}
