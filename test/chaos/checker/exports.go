package checker

import (
	"sort"

	"github.com/buytracker/buytracker/test/chaos/history"
)

// checkExports checks the members' final exports: each dense from 1 with
// every key once, all identical, every acknowledged purchase on every member
// as acknowledged, no purchase nobody sent, no purchase of a key that was
// only ever answered "not recorded". It keeps the first member's records by
// key for resolving unanswered buys.
func (c *check) checkExports(exports map[string][]history.Record) {
	members := make([]string, 0, len(exports))
	for m := range exports {
		members = append(members, m)
	}
	sort.Strings(members)
	byKey := make(map[string]map[string]history.Record, len(members))
	for _, m := range members {
		byKey[m] = c.checkOneExport(m, exports[m])
	}
	ref := members[0]
	c.exported = byKey[ref]
	c.report.FinalPurchases = len(exports[ref])
	for _, m := range members[1:] {
		c.compareExports(ref, exports[ref], m, exports[m])
	}

	for i, op := range c.ops {
		if op.Kind != history.KindBuy || c.buyOf[op.Key] != i {
			continue
		}
		for _, m := range members {
			r, held := byKey[m][op.Key]
			switch {
			case op.Outcome == history.OK && !held:
				c.anomalies.add("lost acknowledgement", "%s was acknowledged as purchase %d but member %s's export does not hold its key", c.describe(i), op.PurchaseID, m)
			case op.Outcome == history.OK && r.PurchaseID != op.PurchaseID:
				c.anomalies.add("lost acknowledgement", "%s was acknowledged as purchase %d but member %s exports it as purchase %d", c.describe(i), op.PurchaseID, m, r.PurchaseID)
			case op.Outcome == history.Fail && held:
				c.anomalies.add("recorded after refusal", "%s was only ever answered \"not recorded\" (%s) but member %s exports it as purchase %d", c.describe(i), op.LastError, m, r.PurchaseID)
			}
			if held {
				c.compareRecord(i, m, r)
			}
		}
	}
}

// checkOneExport checks one member's records on their own and returns them
// by key.
func (c *check) checkOneExport(member string, records []history.Record) map[string]history.Record {
	byKey := make(map[string]history.Record, len(records))
	for k, r := range records {
		if r.PurchaseID != uint64(k)+1 {
			c.anomalies.add("ids not dense", "member %s's export holds purchase %d at position %d; ids must run 1, 2, 3, ... without gaps or repeats", member, r.PurchaseID, k+1)
		}
		if r.IdempotencyKey == "" {
			c.anomalies.add("phantom purchase", "member %s's export holds purchase %d without an Idempotency-Key; every client buy sends one", member, r.PurchaseID)
			continue
		}
		if prev, dup := byKey[r.IdempotencyKey]; dup {
			c.anomalies.add("duplicate retry", "member %s's export holds key %q twice, as purchases %d and %d", member, r.IdempotencyKey, prev.PurchaseID, r.PurchaseID)
			continue
		}
		byKey[r.IdempotencyKey] = r
		if _, sent := c.buyOf[r.IdempotencyKey]; !sent {
			c.anomalies.add("phantom purchase", "member %s's export holds purchase %d with key %q that no client sent", member, r.PurchaseID, r.IdempotencyKey)
		}
	}
	return byKey
}

// compareRecord checks that an exported purchase is what its buy sent.
func (c *check) compareRecord(i int, member string, r history.Record) {
	op := c.ops[i]
	cents, err := history.ParseCents(r.ProductAmount)
	if err != nil {
		c.anomalies.add("corrupt record", "member %s exports purchase %d (key %q) with product_amount %q: %v", member, r.PurchaseID, op.Key, r.ProductAmount, err)
		return
	}
	if cents != op.AmountCents || r.PromotionID != op.PromotionID {
		c.anomalies.add("corrupt record", "member %s exports purchase %d (key %q) as %s for promotion %d, but %s sent %s for promotion %d",
			member, r.PurchaseID, op.Key, r.ProductAmount, r.PromotionID, c.describe(i), centsString(op.AmountCents), op.PromotionID)
	}
}

// compareExports reports where member m's export first differs from ref's.
func (c *check) compareExports(ref string, want []history.Record, m string, got []history.Record) {
	if len(got) != len(want) {
		c.anomalies.add("members differ", "member %s exports %d purchases, member %s %d", m, len(got), ref, len(want))
	}
	for k := range min(len(got), len(want)) {
		if got[k] != want[k] {
			c.anomalies.add("members differ", "record %d differs: member %s has %+v, member %s has %+v", k+1, m, got[k], ref, want[k])
			return
		}
	}
}
