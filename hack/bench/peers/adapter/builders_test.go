package main

import (
	"math/big"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestPostgresInsertArgsAreExact(t *testing.T) {
	p := purchase{UserID: 1, PromotionID: 7, ProductID: 42, AmountCents: 1999, IP: "10.0.0.1"}
	args := pgInsertArgs(p)
	if strings.Count(pgInsertPurchase, "$") != len(args) {
		t.Fatalf("%d arguments for a statement with %d parameters", len(args), strings.Count(pgInsertPurchase, "$"))
	}
	amount := args[3].(pgtype.Numeric)
	if amount.Int.Cmp(big.NewInt(1999)) != 0 || amount.Exp != -2 || !amount.Valid {
		t.Errorf("amount %+v, want 1999e-2", amount)
	}
	if ts := args[5].(pgtype.Timestamptz); ts.Valid {
		t.Errorf("client timestamp %+v, want NULL when the client gave none", ts)
	}
	p.ClientTimestamp, p.ClientTime = "2026-01-01T00:00:00Z", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if ts := pgInsertArgs(p)[5].(pgtype.Timestamptz); !ts.Valid || !ts.Time.Equal(p.ClientTime) {
		t.Errorf("client timestamp %+v, want %v", ts, p.ClientTime)
	}
}

func TestPostgresStatementsAreTheProposals(t *testing.T) {
	if pgWindowSeconds(90*time.Minute) != 5400 {
		t.Errorf("window of 90m = %v s, want 5400", pgWindowSeconds(90*time.Minute))
	}
	// The proposal's cost model: a hot counter row and a COUNT(*) over the window.
	for stmt, want := range map[string]string{
		pgCountPurchases: "UPDATE purchase_stats SET total_count = total_count +",
		pgStats:          "COUNT(*) FROM purchases WHERE timestamp >= NOW() -",
	} {
		if !strings.Contains(stmt, want) {
			t.Errorf("statement %q does not contain %q", stmt, want)
		}
	}
}

func TestRedisBuyArgsScoreByTheMillisecond(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_123).Add(456 * time.Microsecond)
	keys, args := redisBuyArgs(purchase{UserID: 1, PromotionID: 2, ProductID: 3, AmountCents: 400, IP: "::1"}, now)
	if len(keys) != 2 || keys[0] != redisTotalKey || keys[1] != redisWindowKey {
		t.Errorf("keys %v, want the counter then the sorted set", keys)
	}
	if args[0] != int64(1_700_000_000_123) || args[1] != "1|2|3|4.00|::1|" {
		t.Errorf("args %v, want the time in ms and the record", args)
	}
	if got := redisWindowMin(time.Hour, now); got != strconv.FormatInt(1_700_000_000_123-3_600_000, 10) {
		t.Errorf("window minimum %s, want an hour before now in ms", got)
	}
}

func TestRedisPreloadMembersAreUniqueAndNumberedFromFirst(t *testing.T) {
	members := redisPreloadMembers(41, 3, time.UnixMilli(5))
	seen := map[string]bool{}
	for i, m := range members {
		s := m.Member.(string)
		if !strings.HasPrefix(s, strconv.Itoa(41+i)+"|") || m.Score != 5 || seen[s] {
			t.Errorf("member %d = %+v", i, m)
		}
		seen[s] = true
	}
}

func TestEtcdKeysSortByTimeAndTheWindowRangeHoldsExactlyItsKeys(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	from, end := etcdWindowRange(time.Hour, base.Add(time.Hour))
	var keys []string
	for _, tc := range []struct {
		at     time.Time
		id     int64
		inside bool
	}{
		{base.Add(-time.Nanosecond), 900, false}, // just before the window, larger id
		{base, 2, true},                          // exactly at its start
		{base.Add(30 * time.Minute), 1, true},
		{base.Add(time.Hour), 1 << 40, true},
	} {
		k := etcdPurchaseKey(tc.at, tc.id)
		keys = append(keys, k)
		if got := k >= from && k < end; got != tc.inside {
			t.Errorf("key %s (at %v) in window [%s, %s) = %v, want %v", k, tc.at, from, end, got, tc.inside)
		}
	}
	if !sort.StringsAreSorted(keys) {
		t.Errorf("keys in time order do not sort: %v", keys)
	}
	if etcdPurchaseKey(base, 1) == etcdPurchaseKey(base, 2) {
		t.Error("two purchases at the same time share a key")
	}
}

func TestCounterFromReadsValueAndRevision(t *testing.T) {
	if s, err := counterFrom(nil); err != nil || s != (counterState{}) {
		t.Errorf("no key: %+v, %v; want zero", s, err)
	}
	s, err := counterFrom([]*mvccpb.KeyValue{{Key: []byte(etcdCounterKey), Value: []byte("41"), ModRevision: 97}})
	if err != nil || s != (counterState{modRevision: 97, value: 41}) {
		t.Errorf("got %+v, %v; want value 41 at revision 97", s, err)
	}
	if _, err := counterFrom([]*mvccpb.KeyValue{{Value: []byte("x")}}); err == nil {
		t.Error("a counter that is not a number was accepted")
	}
}

func TestEtcdRememberNeverGoesBack(t *testing.T) {
	b := &etcdBackend{}
	b.remember(counterState{modRevision: 10, value: 5})
	b.remember(counterState{modRevision: 8, value: 4})
	if got := b.guess(); got != (counterState{modRevision: 10, value: 5}) {
		t.Errorf("guess %+v after an older state, want revision 10", got)
	}
}
