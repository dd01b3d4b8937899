package checker

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// promotions is how many promotion ids (1..promotions) the model tracks;
// the workload draws from these.
const promotions = 3

// ledgerState is the part of the ledger that clients observe: a small value
// type, so porcupine compares states with ==.
type ledgerState struct {
	count      uint64
	cents      int64
	promoCount [promotions]uint64
	promoCents [promotions]int64
}

func (s ledgerState) with(promotion, cents int64) ledgerState {
	s.count++
	s.cents += cents
	s.promoCount[promotion-1]++
	s.promoCents[promotion-1] += cents
	return s
}

func (s ledgerState) String() string {
	return fmt.Sprintf("%d buys, %s; per promotion %v %v", s.count, centsString(s.cents), s.promoCount, s.promoCents)
}

// modelInput is one operation as the model sees it.
type modelInput struct {
	read      bool
	promotion int64 // a buy's promotion; a read's filter (0: none)
	cents     int64 // a buy's amount
	// purchaseID pins where a buy is in the sequence (the acknowledged id,
	// or the exported id of a buy whose answer was lost); 0 when unknown.
	purchaseID uint64
	// totalBuys is the acknowledged total_buys; 0 when not answered.
	totalBuys uint64
	// maybe: the buy was never answered and nothing says whether it took
	// effect (no exports to look it up in).
	maybe bool
	op    int // index in the history, for messages
}

// readOutput is what a read answered.
type readOutput struct {
	buys  uint64
	cents int64
}

// ledgerModel is the sequential specification. A buy takes the next id;
// a read sees exactly the state (filtered: that promotion's figures).
var ledgerModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{ledgerState{}} },
	Step: func(state, input, output any) []any {
		s, in := state.(ledgerState), input.(modelInput)
		if in.read {
			out := output.(readOutput)
			if in.promotion == 0 {
				if out.buys == s.count && out.cents == s.cents {
					return []any{s}
				}
				return nil
			}
			if out.buys == s.promoCount[in.promotion-1] && out.cents == s.promoCents[in.promotion-1] {
				return []any{s}
			}
			return nil
		}
		next := s.with(in.promotion, in.cents)
		if in.maybe {
			return []any{s, next}
		}
		if in.purchaseID != 0 && in.purchaseID != next.count {
			return nil
		}
		if in.totalBuys != 0 && in.totalBuys != next.count {
			return nil
		}
		return []any{next}
	},
	Hash: func(state any) uint64 {
		s := state.(ledgerState)
		h := s.count*0x9e3779b97f4a7c15 ^ uint64(s.cents)
		for i := range promotions {
			h = h*31 + s.promoCount[i]*0x100000001b3 ^ uint64(s.promoCents[i])
		}
		return h
	},
	DescribeOperation: func(input, output any) string {
		in := input.(modelInput)
		if in.read {
			out := output.(readOutput)
			if in.promotion == 0 {
				return fmt.Sprintf("op %d: read -> %d buys, %s", in.op, out.buys, centsString(out.cents))
			}
			return fmt.Sprintf("op %d: read promotion %d -> %d buys, %s", in.op, in.promotion, out.buys, centsString(out.cents))
		}
		switch {
		case in.maybe:
			return fmt.Sprintf("op %d: buy %s for promotion %d -> never answered", in.op, centsString(in.cents), in.promotion)
		case in.totalBuys == 0:
			return fmt.Sprintf("op %d: buy %s for promotion %d -> exported as purchase %d, answer lost", in.op, centsString(in.cents), in.promotion, in.purchaseID)
		}
		return fmt.Sprintf("op %d: buy %s for promotion %d -> purchase %d, total %d", in.op, centsString(in.cents), in.promotion, in.purchaseID, in.totalBuys)
	},
	DescribeState: func(state any) string { return state.(ledgerState).String() },
}

// deterministicLedgerModel is ledgerModel for histories without "maybe"
// buys, where every step has at most one next state: the power-set
// construction's bookkeeping is then pure cost.
func deterministicLedgerModel() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return ledgerState{} },
		Step: func(state, input, output any) (bool, any) {
			next := ledgerModel.Step(state, input, output)
			if len(next) == 0 {
				return false, state
			}
			return true, next[0]
		},
		Hash:              ledgerModel.Hash,
		DescribeOperation: ledgerModel.DescribeOperation,
		DescribeState:     ledgerModel.DescribeState,
	}
}

func centsString(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}
