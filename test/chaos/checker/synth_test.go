package checker

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/buytracker/buytracker/test/chaos/history"
)

// synthetic is a history generated from a correct ledger: every operation
// takes effect at a random point between its call and its return.
type synthetic struct {
	ops     []history.Op
	exports map[string][]history.Record
}

// synthesize makes n operations by clients concurrent clients: buys (a few
// refused, a few never answered, half of those taking effect), replays of
// acknowledged keys, and reads of every kind.
func synthesize(seed uint64, clients, n int) synthetic {
	rng := rand.New(rand.NewPCG(seed, 12))
	type placed struct {
		op  int
		lin time.Duration
		// effect: a buy that took effect.
		effect bool
		// replayOf is the buy a replay repeats (-1: none).
		replayOf int
	}
	var ops []history.Op
	var events []placed
	cursor := make([]time.Duration, clients)
	acked := make([][]int, clients) // per client, its buys that will be acknowledged
	for k := range n {
		c := k % clients
		call := cursor[c] + time.Duration(rng.IntN(100))*time.Microsecond
		dur := time.Duration(1+rng.IntN(2000)) * time.Microsecond
		ret := call + dur
		lin := call + time.Duration(rng.Int64N(int64(dur)+1))
		cursor[c] = ret
		op := history.Op{Client: c, Node: fmt.Sprintf("http://n%d", 1+rng.IntN(3)), Call: call, Return: ret, Outcome: history.OK, Attempts: 1}
		ev := placed{op: len(ops), lin: lin, replayOf: -1}
		switch roll := rng.IntN(100); {
		case roll < 45:
			op.Kind, op.Key = history.KindBuy, fmt.Sprintf("c%d-%d", c, k)
			op.PromotionID, op.AmountCents = 1+rng.Int64N(promotions), 1+rng.Int64N(99999)
			ev.effect = true
			switch r := rng.IntN(100); {
			case r < 2:
				op.Outcome, op.LastError, ev.effect = history.Fail, "503 no_leader", false
			case r < 4:
				op.Outcome, op.Return, ev.effect = history.Unknown, -1, r < 3
			default:
				acked[c] = append(acked[c], len(ops))
			}
		case roll < 50 && len(acked[c]) > 0:
			first := acked[c][rng.IntN(len(acked[c]))]
			op.Kind, op.Key, op.PromotionID, op.AmountCents = history.KindReplay, ops[first].Key, ops[first].PromotionID, ops[first].AmountCents
			ev.replayOf = first
		default:
			op.Kind, op.Consistency = history.KindRead, []string{"linearizable", "lease"}[rng.IntN(2)]
			if rng.IntN(2) == 0 {
				op.ReadPromotion = 1 + rng.Int64N(promotions)
			}
		}
		ops = append(ops, op)
		events = append(events, ev)
	}
	sort.SliceStable(events, func(a, b int) bool { return events[a].lin < events[b].lin })
	var state ledgerState
	var records []history.Record
	for _, ev := range events {
		op := &ops[ev.op]
		switch {
		case op.Kind == history.KindBuy && ev.effect:
			state = state.with(op.PromotionID, op.AmountCents)
			if op.Outcome == history.OK {
				op.PurchaseID, op.TotalBuys = state.count, state.count
			}
			records = append(records, history.Record{
				PurchaseID: state.count, UserID: int64(op.Client + 1), PromotionID: op.PromotionID, ProductID: 1,
				ProductAmount: history.FormatCents(op.AmountCents), IPAddress: "10.0.0.1",
				RecordedAt: fmt.Sprintf("2026-01-01T00:00:00.%09dZ", state.count), Index: 10 + state.count, IdempotencyKey: op.Key,
			})
		case op.Kind == history.KindRead && op.ReadPromotion == 0:
			op.ReadBuys, op.ReadAmountCents = state.count, state.cents
		case op.Kind == history.KindRead:
			op.ReadBuys, op.ReadAmountCents = state.promoCount[op.ReadPromotion-1], state.promoCents[op.ReadPromotion-1]
		}
	}
	// A replay's buy was acknowledged before the replay began, so its id
	// is known now.
	for _, ev := range events {
		if ev.replayOf >= 0 {
			ops[ev.op].PurchaseID, ops[ev.op].TotalBuys, ops[ev.op].Replayed = ops[ev.replayOf].PurchaseID, ops[ev.replayOf].TotalBuys, true
		}
	}
	exports := map[string][]history.Record{}
	for _, m := range []string{"n1", "n2", "n3"} {
		exports[m] = append([]history.Record(nil), records...)
	}
	return synthetic{ops: ops, exports: exports}
}
