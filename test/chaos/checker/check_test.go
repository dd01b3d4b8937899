package checker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/buytracker/buytracker/test/chaos/history"
)

// Small hand-made histories; times in milliseconds.

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func buy(client int, key string, promotion, cents int64, call, ret int, id uint64) history.Op {
	op := history.Op{Client: client, Kind: history.KindBuy, Node: "http://n1", Key: key, PromotionID: promotion, AmountCents: cents,
		Call: ms(call), Return: ms(ret), Outcome: history.OK, Attempts: 1, PurchaseID: id, TotalBuys: id}
	if ret < 0 {
		op.Return, op.Outcome, op.PurchaseID, op.TotalBuys, op.LastError = -1, history.Unknown, 0, 0, "504 commit_timeout"
	}
	return op
}

func failedBuy(client int, key string, call, ret int) history.Op {
	return history.Op{Client: client, Kind: history.KindBuy, Node: "http://n2", Key: key, PromotionID: 1, AmountCents: 100,
		Call: ms(call), Return: ms(ret), Outcome: history.Fail, Attempts: 3, LastError: "503 no_leader"}
}

func replay(client int, first history.Op, call, ret int, id uint64, replayed bool) history.Op {
	return history.Op{Client: client, Kind: history.KindReplay, Node: "http://n3", Key: first.Key, PromotionID: first.PromotionID, AmountCents: first.AmountCents,
		Call: ms(call), Return: ms(ret), Outcome: history.OK, Attempts: 1, PurchaseID: id, TotalBuys: id, Replayed: replayed}
}

func read(client int, promotion int64, call, ret int, buys uint64, cents int64) history.Op {
	return history.Op{Client: client, Kind: history.KindRead, Node: "http://n2", Consistency: "linearizable", ReadPromotion: promotion,
		Call: ms(call), Return: ms(ret), Outcome: history.OK, Attempts: 1, ReadBuys: buys, ReadAmountCents: cents}
}

// exportOf lays out the records of ops (buys), in this order, as ids 1..n
// on members n1..n3.
func exportOf(ops ...history.Op) map[string][]history.Record {
	var records []history.Record
	for k, op := range ops {
		records = append(records, history.Record{
			PurchaseID: uint64(k + 1), UserID: 1, PromotionID: op.PromotionID, ProductID: 1, ProductAmount: history.FormatCents(op.AmountCents),
			IPAddress: "10.0.0.1", RecordedAt: fmt.Sprintf("2026-01-01T00:00:0%dZ", k), Index: uint64(k + 3), IdempotencyKey: op.Key,
		})
	}
	out := map[string][]history.Record{}
	for _, m := range []string{"n1", "n2", "n3"} {
		out[m] = append([]history.Record(nil), records...)
	}
	return out
}

// validHistory: two concurrent acknowledged buys, reads between and after,
// a buy never answered that took effect, one that did not, a refused buy, and
// a replay.
func validHistory() ([]history.Op, map[string][]history.Record) {
	k1 := buy(0, "k1", 1, 1000, 0, 10, 1)
	k2 := buy(1, "k2", 2, 250, 5, 15, 2)
	k3 := buy(2, "k3", 1, 5, 12, -1, 0)
	k4 := buy(3, "k4", 3, 7, 13, -1, 0)
	ops := []history.Op{
		k1, k2,
		read(4, 0, 6, 8, 1, 1000),   // sees k1 only: k2 not yet
		read(5, 2, 7, 9, 0, 0),      // promotion 2 before k2
		read(4, 0, 16, 20, 2, 1250), // both
		read(5, 2, 16, 21, 1, 250),  // promotion 2: k2
		k3, k4, failedBuy(6, "k5", 1, 30),
		replay(0, k1, 21, 22, 1, true),
		read(4, 0, 23, 24, 3, 1255), // k3 took effect
		read(5, 1, 23, 25, 2, 1005), // promotion 1: k1 and k3
	}
	return ops, exportOf(k1, k2, k3)
}

func mustFind(t *testing.T, r Report, parts ...string) {
	t.Helper()
	for _, a := range r.Anomalies {
		found := true
		for _, p := range parts {
			found = found && strings.Contains(a, p)
		}
		if found {
			return
		}
	}
	t.Fatalf("no anomaly mentions %q; got %d:\n%s", parts, len(r.Anomalies), strings.Join(r.Anomalies, "\n"))
}

func TestAValidConcurrentHistoryPasses(t *testing.T) {
	ops, exports := validHistory()
	r := Check(ops, exports, Options{})
	if !r.OK() {
		t.Fatalf("rejected: %s\n%s", r.Summary(), strings.Join(r.Anomalies, "\n"))
	}
	if r.Acked != 2 || r.Failed != 1 || r.Unknown != 2 || r.UnknownHappened != 1 || r.UnknownDropped != 1 || r.Replays != 1 || r.Reads != 6 || r.FinalPurchases != 3 {
		t.Fatalf("counts: %s", r.Summary())
	}
	if r.ReadsByConsistency["linearizable"] != 6 {
		t.Fatalf("reads by consistency: %v", r.ReadsByConsistency)
	}
}

func TestWithoutExportsAnUnansweredBuyMayOrMayNotHaveHappened(t *testing.T) {
	k1 := buy(0, "k1", 1, 100, 0, -1, 0)
	for _, seen := range []uint64{0, 1} {
		ops := []history.Op{k1, read(1, 0, 5, 6, seen, int64(seen)*100), read(1, 0, 7, 8, seen, int64(seen)*100)}
		if r := Check(ops, nil, Options{}); !r.OK() || r.FinalChecked {
			t.Fatalf("read of %d after an unanswered buy rejected: %v", seen, r.Anomalies)
		}
	}
	// But it happens once: seeing it and then not is not linearizable.
	ops := []history.Op{k1, read(1, 0, 5, 6, 1, 100), read(1, 0, 7, 8, 0, 0)}
	if r := Check(ops, nil, Options{}); r.OK() || r.Linearizable != porcupine.Illegal {
		t.Fatalf("a purchase seen and then unseen passed: %s", r.Summary())
	}
}

func TestTheCheckerRejectsALostAcknowledgementInAnExport(t *testing.T) {
	ops, exports := validHistory()
	// n2 lost k2: its export holds k1 and k3 (as ids 1 and 2).
	exports["n2"] = exportOf(ops[0], ops[6])["n1"]
	r := Check(ops, exports, Options{})
	mustFind(t, r, "lost acknowledgement", `key "k2"`, "member n2")
	mustFind(t, r, "members differ", "n2")
}

func TestTheCheckerRejectsAReadThatMissesAnAcknowledgedBuy(t *testing.T) {
	k1 := buy(0, "k1", 1, 100, 0, 10, 1)
	ops := []history.Op{k1, read(1, 0, 11, 12, 0, 0)}
	r := Check(ops, exportOf(k1), Options{})
	mustFind(t, r, "stale read", "op 1 ", "saw 0 purchases", "1 had been acknowledged")
	if r.Linearizable != porcupine.Illegal {
		t.Fatalf("verdict %s, want Illegal", r.Linearizable)
	}
	// The same for a promotion's window.
	ops = []history.Op{k1, read(1, 1, 11, 12, 0, 0)}
	mustFind(t, Check(ops, exportOf(k1), Options{}), "stale read", "read of promotion 1")
}

func TestTheCheckerRejectsAStaleRead(t *testing.T) {
	k1, k2 := buy(0, "k1", 1, 100, 0, 10, 1), buy(0, "k2", 2, 200, 11, 20, 2)
	ops := []history.Op{k1, k2, read(1, 0, 21, 22, 1, 100)}
	r := Check(ops, exportOf(k1, k2), Options{})
	mustFind(t, r, "stale read", "saw 1 purchases, but 2 had been acknowledged", `key "k2"`)
	if r.OK() {
		t.Fatal("passed")
	}
}

func TestTheCheckerRejectsADuplicatedRetry(t *testing.T) {
	k1, k2 := buy(0, "k1", 1, 100, 0, 10, 1), buy(1, "k2", 1, 100, 0, 12, 2)
	t.Run("a key recorded twice", func(t *testing.T) {
		// The retry of k1 was recorded again as purchase 3, which no
		// client was acknowledged.
		ops := []history.Op{k1, k2}
		mustFind(t, Check(ops, exportOf(k1, k2, k1), Options{}), "duplicate retry", `key "k1" twice`, "purchases 1 and 3")
	})
	t.Run("a replay answering another purchase", func(t *testing.T) {
		ops := []history.Op{k1, k2, replay(0, k1, 20, 21, 3, false)}
		mustFind(t, Check(ops, exportOf(k1, k2), Options{}), "duplicate retry", "answered purchase 3, but the key is purchase 1")
	})
	t.Run("a replay not marked replayed", func(t *testing.T) {
		ops := []history.Op{k1, k2, replay(0, k1, 20, 21, 1, false)}
		mustFind(t, Check(ops, exportOf(k1, k2), Options{}), "duplicate retry", "without Idempotent-Replayed")
	})
	t.Run("two keys acknowledged with one id", func(t *testing.T) {
		k2same := k2
		k2same.PurchaseID, k2same.TotalBuys = 1, 1
		r := Check([]history.Op{k1, k2same}, nil, Options{})
		mustFind(t, r, "duplicate id", "purchase_id 1 was acknowledged twice")
		if r.Linearizable != porcupine.Illegal {
			t.Fatalf("verdict %s, want Illegal", r.Linearizable)
		}
	})
}

func TestTheCheckerRejectsBadExports(t *testing.T) {
	ops, exports := validHistory()
	cases := []struct {
		name  string
		edit  func(map[string][]history.Record)
		parts []string
	}{
		{"a refused key recorded", func(e map[string][]history.Record) {
			for m := range e {
				e[m] = append(e[m], history.Record{PurchaseID: 4, PromotionID: 1, ProductAmount: "1.00", IdempotencyKey: "k5"})
			}
		}, []string{"recorded after refusal", `key "k5"`}},
		{"a purchase nobody sent", func(e map[string][]history.Record) {
			for m := range e {
				e[m] = append(e[m], history.Record{PurchaseID: 4, PromotionID: 1, ProductAmount: "1.00", IdempotencyKey: "zz"})
			}
		}, []string{"phantom purchase", `"zz"`}},
		{"a gap in the ids", func(e map[string][]history.Record) {
			e["n3"] = append([]history.Record(nil), e["n3"]...)
			e["n3"][2].PurchaseID = 4
		}, []string{"ids not dense", "member n3", "purchase 4 at position 3"}},
		{"an amount changed", func(e map[string][]history.Record) {
			e["n1"] = append([]history.Record(nil), e["n1"]...)
			e["n1"][1].ProductAmount = "2.51"
		}, []string{"corrupt record", "member n1", "2.51"}},
		{"members that differ in a field", func(e map[string][]history.Record) {
			e["n3"] = append([]history.Record(nil), e["n3"]...)
			e["n3"][0].RecordedAt = "2027-01-01T00:00:00Z"
		}, []string{"members differ", "record 1", "member n3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, fresh := validHistory()
			tc.edit(fresh)
			mustFind(t, Check(ops, fresh, Options{}), tc.parts...)
		})
	}
	if r := Check(ops, exports, Options{}); !r.OK() {
		t.Fatalf("the unedited exports were rejected: %v", r.Anomalies)
	}
}

func TestAReadGoingBackwardsIsRejectedWithAVisualization(t *testing.T) {
	// Both buys run across both reads, so no bound names the reads; only
	// the search finds that 2 then 1 fits no order.
	k1, k2 := buy(0, "k1", 1, 100, 0, 100, 1), buy(1, "k2", 1, 100, 0, 100, 2)
	ops := []history.Op{k1, k2, read(2, 0, 10, 20, 2, 200), read(2, 0, 30, 40, 1, 100)}
	path := filepath.Join(t.TempDir(), "linearizability.html")
	r := Check(ops, exportOf(k1, k2), Options{VisualizePath: path})
	mustFind(t, r, "not linearizable", "none of", "read -> 1 buys", path)
	if r.Linearizable != porcupine.Illegal || r.Visualization != path {
		t.Fatalf("verdict %s, visualization %q", r.Linearizable, r.Visualization)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("visualization not written: %v", err)
	}
}
