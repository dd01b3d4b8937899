package checker

import (
	"sort"

	"github.com/buytracker/buytracker/test/chaos/history"
)

// checkReadBounds names the reads that cannot be right whatever the order:
// a read that sees fewer purchases than were acknowledged before it began
// (stale, or a lost acknowledgement), or more than had been sent before it
// returned. Porcupine would reject these too; this says which read and why,
// and returns them so that the search can leave them out: an impossible read
// makes porcupine try every other order of the history before it gives up.
func (c *check) checkReadBounds() map[int]bool {
	wrong := map[int]bool{}
	// acked: acknowledged buys by answer time; sent: buys that took or may
	// have taken effect, by invocation time. Index promotions+0 is "all".
	var acked, sent [promotions + 1][]int
	for _, mop := range c.modelOps {
		in := mop.Input.(modelInput)
		if in.read {
			continue
		}
		op := c.ops[in.op]
		for _, p := range []int64{0, in.promotion} {
			sent[p] = append(sent[p], in.op)
			if op.Outcome == history.OK {
				acked[p] = append(acked[p], in.op)
			}
		}
	}
	for p := range acked {
		sort.SliceStable(acked[p], func(a, b int) bool { return c.ops[acked[p][a]].Return < c.ops[acked[p][b]].Return })
		sort.SliceStable(sent[p], func(a, b int) bool { return c.ops[sent[p][a]].Call < c.ops[sent[p][b]].Call })
	}
	// The highest id acknowledged by each point of acked[0]: ids are dense,
	// so a read after it sees at least that many purchases.
	maxID := make([]int, len(acked[0]))
	for k, i := range acked[0] {
		maxID[k] = i
		if k > 0 && c.ops[maxID[k-1]].PurchaseID > c.ops[i].PurchaseID {
			maxID[k] = maxID[k-1]
		}
	}
	for i, op := range c.ops {
		if op.Kind != history.KindRead || op.Outcome != history.OK || op.ReadPromotion < 0 || op.ReadPromotion > promotions {
			continue
		}
		p := op.ReadPromotion
		before := sort.Search(len(acked[p]), func(k int) bool { return c.ops[acked[p][k]].Return >= op.Call })
		if before > 0 {
			latest := acked[p][before-1]
			least := uint64(before)
			if p == 0 {
				latest = maxID[before-1]
				least = max(least, c.ops[latest].PurchaseID)
			}
			if op.ReadBuys < least {
				c.anomalies.add("stale read", "%s saw %d purchases, but %d had been acknowledged before it began (the last: %s, purchase %d)",
					c.describe(i), op.ReadBuys, least, c.describe(latest), c.ops[latest].PurchaseID)
				wrong[i] = true
			}
		}
		upTo := sort.Search(len(sent[p]), func(k int) bool { return c.ops[sent[p][k]].Call > op.Return })
		if op.ReadBuys > uint64(upTo) {
			c.anomalies.add("phantom read", "%s saw %d purchases, but only %d buys that took effect had been sent before it returned",
				c.describe(i), op.ReadBuys, upTo)
			wrong[i] = true
		}
	}
	return wrong
}
