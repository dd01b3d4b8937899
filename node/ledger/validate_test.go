package ledger

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

func validPurchase() Purchase {
	return Purchase{UserID: 1, PromotionID: 2, ProductID: 3, AmountCents: 1999, IP: "192.0.2.1"}
}

// A timestamp of exactly n characters that time.Parse accepts: RFC 3339
// allows any number of fractional digits.
func longTimestamp(n int) string {
	const head = "2026-11-25T10:00:00."
	return head + strings.Repeat("1", n-len(head)-1) + "Z"
}

func TestValidatePurchase(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Purchase)
		field  string // "" when valid
	}{
		{"valid", func(*Purchase) {}, ""},
		{"largest ids", func(p *Purchase) { p.UserID, p.PromotionID, p.ProductID = math.MaxInt64, math.MaxInt64, math.MaxInt64 }, ""},
		{"zero user_id", func(p *Purchase) { p.UserID = 0 }, "user_id"},
		{"negative user_id", func(p *Purchase) { p.UserID = -7 }, "user_id"},
		{"zero promotion_id", func(p *Purchase) { p.PromotionID = 0 }, "promotion_id"},
		{"negative product_id", func(p *Purchase) { p.ProductID = math.MinInt64 }, "product_id"},
		{"zero amount", func(p *Purchase) { p.AmountCents = 0 }, ""},
		{"largest amount", func(p *Purchase) { p.AmountCents = MaxAmountCents }, ""},
		{"amount above the largest", func(p *Purchase) { p.AmountCents = MaxAmountCents + 1 }, "product_amount"},
		{"negative amount", func(p *Purchase) { p.AmountCents = -500_000_000_00 }, "product_amount"},
		{"IPv6", func(p *Purchase) { p.IP = "2001:db8::1" }, ""},
		{"IPv4-mapped IPv6", func(p *Purchase) { p.IP = "::ffff:1.2.3.4" }, ""},
		{"no ip", func(p *Purchase) { p.IP = "" }, "ip_address"},
		{"ip out of range", func(p *Purchase) { p.IP = "300.1.1.1" }, "ip_address"},
		{"ip not canonical", func(p *Purchase) { p.IP = "2001:0db8::1" }, "ip_address"},
		{"ip in upper case", func(p *Purchase) { p.IP = "::FFFF:1.2.3.4" }, "ip_address"},
		{"ip with a zone", func(p *Purchase) { p.IP = "fe80::1%eth0" }, "ip_address"},
		{"ip with a space", func(p *Purchase) { p.IP = "192.0.2.1 " }, "ip_address"},
		{"ip of 46 characters", func(p *Purchase) { p.IP = "0000:0000:0000:0000:0000:ffff:255.255.255.255%" }, "ip_address"},
		{"ip of 2 MiB", func(p *Purchase) { p.IP = strings.Repeat("1", 2<<20) }, "ip_address"},
		{"timestamp", func(p *Purchase) { p.ClientTimestamp = "2026-11-25T10:00:00.123+01:00" }, ""},
		{"timestamp of 64 characters", func(p *Purchase) { p.ClientTimestamp = longTimestamp(64) }, ""},
		{"timestamp of 65 characters", func(p *Purchase) { p.ClientTimestamp = longTimestamp(65) }, "timestamp"},
		{"timestamp of 60 KB", func(p *Purchase) { p.ClientTimestamp = longTimestamp(60_000) }, "timestamp"},
		{"timestamp not RFC 3339", func(p *Purchase) { p.ClientTimestamp = "yesterday" }, "timestamp"},
		{"idempotency key of 128 characters", func(p *Purchase) { p.IdempotencyKey = strings.Repeat("k", 128) }, ""},
		{"idempotency key of 129 characters", func(p *Purchase) { p.IdempotencyKey = strings.Repeat("k", 129) }, "Idempotency-Key"},
		{"idempotency key with a tab", func(p *Purchase) { p.IdempotencyKey = "k\tk" }, "Idempotency-Key"},
		{"idempotency key not ASCII", func(p *Purchase) { p.IdempotencyKey = "ключ" }, "Idempotency-Key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validPurchase()
			tc.change(&p)
			err := ValidatePurchase(&p)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("valid purchase refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPurchase) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidPurchase", err)
			}
			var invalid *InvalidPurchaseError
			if !errors.As(err, &invalid) || invalid.Field != tc.field || invalid.Reason == "" {
				t.Fatalf("got %#v, want field %q with a reason", err, tc.field)
			}
		})
	}
}

// poisonPurchases are what scenario 3 sent through the forwarding endpoint.
func poisonPurchases() []Purchase {
	negative := validPurchase()
	negative.AmountCents = -500_000_000_00
	negativeIDs := validPurchase()
	negativeIDs.UserID, negativeIDs.PromotionID, negativeIDs.ProductID = -1, -2, -3
	hugeIP := validPurchase()
	hugeIP.IP = strings.Repeat("1", 2<<20)
	hugeIP.IdempotencyKey = "poison"
	return []Purchase{negative, negativeIDs, hugeIP}
}

func TestApplySkipsInvalidPurchases(t *testing.T) {
	l := openTestLedger(t)
	good := validPurchase()
	batch := append([]Purchase{good}, poisonPurchases()...)
	batch = append(batch, good)
	res := l.ApplyBatch([]*raft.Log{buyEntry(1, 1000, batch...)})[0].([]BuyResult)
	for i, r := range res {
		valid := i == 0 || i == len(batch)-1
		switch {
		case valid && (r.Err != nil || r.PurchaseID == 0):
			t.Fatalf("purchase %d is valid: %+v", i, r)
		case !valid && (!errors.Is(r.Err, ErrInvalidPurchase) || r.PurchaseID != 0):
			t.Fatalf("purchase %d is invalid: %+v, want ErrInvalidPurchase and no id", i, r)
		}
	}
	if res[len(res)-1].PurchaseID != 2 {
		t.Fatalf("the valid purchase after the invalid ones got id %d, want 2", res[len(res)-1].PurchaseID)
	}
	if st := l.Stats(StatsQuery{Window: time.Hour}, time.Unix(0, 1000)); st.TotalBuys != 2 || st.TotalCents != 2*good.AmountCents {
		t.Fatalf("stats %+v, want 2 purchases of %d cents", st, good.AmountCents)
	}
	// An invalid purchase's Idempotency-Key was not remembered.
	keyed := validPurchase()
	keyed.IdempotencyKey = "poison"
	if r := l.ApplyBatch([]*raft.Log{buyEntry(2, 2000, keyed)})[0].([]BuyResult)[0]; r.Replayed || r.Err != nil || r.PurchaseID != 3 {
		t.Fatalf("a key first used by an invalid purchase: %+v, want a new purchase 3", r)
	}
	// A snapshot of what apply kept restores to the same state.
	dst := openTestLedger(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, l)))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	now := time.Unix(0, 3000)
	if want, got := viewOf(t, l, now, []string{"poison"}), viewOf(t, dst, now, []string{"poison"}); !reflect.DeepEqual(want, got) {
		t.Fatalf("restored ledger differs:\n%+v\n%+v", want, got)
	}
}

// A snapshot can only hold what apply kept; a record apply would refuse is
// a corrupt snapshot, refused with its field named, and changes nothing.
func TestRestoreRefusesWhatApplyRefuses(t *testing.T) {
	for _, bad := range poisonPurchases() {
		src := openTestLedger(t)
		src.ApplyBatch([]*raft.Log{buyEntry(1, 1000, validPurchase())})
		// Plant the record behind apply's back, as an older version did.
		rec := Record{Purchase: bad, ID: 2, RecordedAt: 1000, Index: 2}
		err := src.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(purchasesBucket).Put(recordKey(2), encodeRecord(nil, &rec))
		})
		if err != nil {
			t.Fatal(err)
		}
		src.st.count = 2
		snap := snapshotBytes(t, src)

		dst := openTestLedger(t)
		dst.ApplyBatch([]*raft.Log{buyEntry(1, 1000, validPurchase(), validPurchase(), validPurchase())})
		err = dst.Restore(io.NopCloser(bytes.NewReader(snap)))
		if err == nil {
			t.Fatalf("a snapshot holding %+v restored", bad.IP[:min(len(bad.IP), 20)])
		}
		if !errors.Is(err, ErrInvalidPurchase) && !strings.Contains(err.Error(), "bytes") {
			t.Fatalf("restore failed with %v, want the invalid field or size named", err)
		}
		if dst.Count() != 3 {
			t.Fatalf("a refused restore changed the count to %d", dst.Count())
		}
	}
}

func TestRecordsAfterTheLastIDAreEmpty(t *testing.T) {
	l := openTestLedger(t)
	l.ApplyBatch([]*raft.Log{buyEntry(1, 1000, validPurchase(), validPurchase(), validPurchase())})
	for _, after := range []uint64{3, 4, math.MaxUint64 - 1, math.MaxUint64} {
		recs, err := l.Records(after, 10)
		if err != nil || len(recs) != 0 {
			t.Fatalf("Records(after %d) = %d records, %v; want none", after, len(recs), err)
		}
	}
	if recs, err := l.Records(2, 10); err != nil || len(recs) != 1 || recs[0].ID != 3 {
		t.Fatalf("Records(after 2) = %+v, %v; want record 3", recs, err)
	}
}

// FuzzApplySnapshotRestore feeds any decodable buy batch to apply, then
// checks that a snapshot of whatever apply kept restores to equal state,
// and that apply kept nothing the rules refuse.
func FuzzApplySnapshotRestore(f *testing.F) {
	mixed := append([]Purchase{validPurchase()}, poisonPurchases()...)
	longest := Purchase{
		UserID: math.MaxInt64, PromotionID: math.MaxInt64, ProductID: math.MaxInt64, AmountCents: MaxAmountCents,
		IP: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ClientTimestamp: longTimestamp(64),
		IdempotencyKey: strings.Repeat("~", 128), Fingerprint: math.MaxUint64,
	}
	tooLong := longest
	tooLong.ClientTimestamp = longTimestamp(65)
	for _, seed := range [][]Purchase{{validPurchase()}, mixed, {longest, longest}, {tooLong, longest}} {
		f.Add(EncodeBuyBatch(BuyBatch{LeaderTime: math.MaxInt64 - 5, Purchases: seed}))
	}
	f.Fuzz(func(t *testing.T, cmd []byte) {
		batch, err := DecodeBuyBatch(cmd)
		if err != nil {
			return // not a buy batch: apply stops on it, a separate rule
		}
		src := openTestLedger(t)
		src.ApplyBatch([]*raft.Log{buyEntry(1, 0, validPurchase()), {Index: 2, Type: raft.LogCommand, Data: cmd}})
		recs, err := src.Records(0, len(batch.Purchases)+1)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if err := ValidatePurchase(&r.Purchase); err != nil {
				t.Fatalf("apply stored record %d that the rules refuse: %v", r.ID, err)
			}
		}
		snap := snapshotBytes(t, src)
		dst := openTestLedger(t)
		if err := dst.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			t.Fatalf("a snapshot of what apply accepted does not restore: %v", err)
		}
		now := time.Unix(0, max(batch.LeaderTime, 0))
		if want, got := viewOf(t, src, now, nil), viewOf(t, dst, now, nil); !reflect.DeepEqual(want, got) {
			t.Fatalf("restored state differs: %d records, stats %+v; restored %d records, stats %+v",
				len(want.Records), want.Stats[0], len(got.Records), got.Stats[0])
		}
		if !bytes.Equal(snap, snapshotBytes(t, dst)) {
			t.Fatal("a snapshot of the restored ledger differs from the one it was restored from")
		}
	})
}
