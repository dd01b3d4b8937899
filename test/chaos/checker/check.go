// Package checker decides whether a chaos run's history is correct: the
// buys and reads must be linearizable against a model of the ledger
// (porcupine), and the members' final exports must hold every acknowledged
// purchase exactly once, with dense ids, identically on every member.
//
// Porcupine's search is exponential in the worst case; three things keep it
// nearly linear on long histories:
//   - every acknowledged buy is pinned by its purchase_id, so only one
//     pending buy can be next;
//   - a buy never answered is resolved by the exports, which hold every
//     purchase: its key there means it took effect with that id (pinned
//     too, returning "at the end of time"), its key absent means it never
//     took effect and it is left out. Only without exports does it stay a
//     "maybe" (the model is nondeterministic);
//   - reads that no order can explain (fewer purchases than were
//     acknowledged before they began, more than had been sent before they
//     returned) are reported by name and left out of the search, which would
//     otherwise try every other order before giving up.
package checker

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/buytracker/buytracker/test/chaos/history"
)

// Options tune Check.
type Options struct {
	// VisualizePath is where porcupine's HTML visualization is written when
	// it rejects the history ("" : not written).
	VisualizePath string
	// Timeout bounds porcupine's search (default 2 minutes); a search that
	// runs out is an anomaly, since nothing was proven.
	Timeout time.Duration
}

const defaultTimeout = 2 * time.Minute

// Check checks a history against the members' exports (member id -> its
// GET /buys records in id order). With no exports, only the history is
// checked and unanswered buys may or may not have taken effect.
func Check(ops []history.Op, exports map[string][]history.Record, opts Options) Report {
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	c := &check{ops: ops, report: Report{Ops: len(ops), ReadsByConsistency: map[string]int{}}}
	c.indexOps()
	if len(exports) > 0 {
		c.report.FinalChecked = true
		c.checkExports(exports)
	}
	c.checkAcks()
	c.checkReplays()
	model := c.buildModel()
	wrong := c.checkReadBounds()
	c.runPorcupine(model, opts, wrong)
	c.report.Anomalies = c.anomalies.done()
	return c.report
}

// check is one run of Check.
type check struct {
	ops       []history.Op
	report    Report
	anomalies anomalyList
	// buyOf maps a key to its buy operation's index.
	buyOf map[string]int
	// exported maps a key to its record in the reference export (the first
	// member by id); nil without exports.
	exported map[string]history.Record
	// modelOps are the operations porcupine checks, and modelOp maps each
	// back to its history index.
	modelOps []porcupine.Operation
}

func (c *check) describe(i int) string {
	op := c.ops[i]
	ret := "never"
	if op.Returned() {
		ret = op.Return.String()
	}
	switch op.Kind {
	case history.KindRead:
		what := "read"
		if op.ReadPromotion != 0 {
			what = fmt.Sprintf("read of promotion %d", op.ReadPromotion)
		}
		return fmt.Sprintf("op %d (client %d, %s %s on %s, called %v, returned %s)", i, op.Client, op.Consistency, what, op.Node, op.Call, ret)
	default:
		return fmt.Sprintf("op %d (client %d, %s key %q on %s, called %v, returned %s)", i, op.Client, op.Kind, op.Key, op.Node, op.Call, ret)
	}
}

// indexOps counts the operations, checks their inputs are ones the model
// covers, and indexes buys by key.
func (c *check) indexOps() {
	c.buyOf = map[string]int{}
	for i, op := range c.ops {
		switch op.Kind {
		case history.KindBuy:
			c.report.Buys++
			switch op.Outcome {
			case history.OK:
				c.report.Acked++
				if op.Attempts > 1 {
					c.report.AckedAfterRetry++
				}
				if op.Replayed {
					c.report.AckedAsReplay++
				}
			case history.Fail:
				c.report.Failed++
			default:
				c.report.Unknown++
			}
			if op.PromotionID < 1 || op.PromotionID > promotions || op.AmountCents < 0 {
				c.anomalies.add("bad input", "%s buys %d cents for promotion %d; the model covers promotions 1..%d and amounts >= 0", c.describe(i), op.AmountCents, op.PromotionID, promotions)
				continue
			}
			if j, dup := c.buyOf[op.Key]; dup {
				c.anomalies.add("bad input", "%s reuses the key of op %d for a new buy", c.describe(i), j)
				continue
			}
			c.buyOf[op.Key] = i
		case history.KindReplay:
			if op.Outcome == history.OK {
				c.report.Replays++
			}
		case history.KindRead:
			if op.Outcome != history.OK {
				c.report.FailedReads++
				continue
			}
			c.report.Reads++
			c.report.ReadsByConsistency[op.Consistency]++
			if op.ReadPromotion < 0 || op.ReadPromotion > promotions {
				c.anomalies.add("bad input", "%s filters on promotion %d; the model covers 1..%d", c.describe(i), op.ReadPromotion, promotions)
			}
		default:
			c.anomalies.add("bad input", "op %d has unknown kind %q", i, op.Kind)
		}
	}
}

// checkAcks checks what acknowledged buys answered, on their own: each id
// once, total_buys equal to the id.
func (c *check) checkAcks() {
	byID := map[uint64]int{}
	for i, op := range c.ops {
		if op.Kind != history.KindBuy || op.Outcome != history.OK {
			continue
		}
		if op.PurchaseID == 0 {
			c.anomalies.add("bad answer", "%s was acknowledged without a purchase_id", c.describe(i))
			continue
		}
		if op.TotalBuys != op.PurchaseID {
			c.anomalies.add("bad answer", "%s answered purchase_id %d with total_buys %d; they must be equal", c.describe(i), op.PurchaseID, op.TotalBuys)
		}
		if j, dup := byID[op.PurchaseID]; dup {
			c.anomalies.add("duplicate id", "purchase_id %d was acknowledged twice, to %s and %s", op.PurchaseID, c.describe(j), c.describe(i))
			continue
		}
		byID[op.PurchaseID] = i
	}
}

// checkReplays checks that a key sent again after its acknowledgement got
// the first answer back, marked as replayed.
func (c *check) checkReplays() {
	for i, op := range c.ops {
		if op.Kind != history.KindReplay || op.Outcome != history.OK {
			continue
		}
		want, source := uint64(0), ""
		if j, ok := c.buyOf[op.Key]; ok && c.ops[j].Outcome == history.OK {
			want, source = c.ops[j].PurchaseID, "its first answer ("+c.describe(j)+")"
		} else if r, ok := c.exported[op.Key]; ok {
			want, source = r.PurchaseID, "the export"
		}
		switch {
		case want == 0:
			c.anomalies.add("duplicate retry", "%s was answered purchase %d but the key was never acknowledged nor exported", c.describe(i), op.PurchaseID)
		case op.PurchaseID != want:
			c.anomalies.add("duplicate retry", "%s was answered purchase %d, but the key is purchase %d in %s", c.describe(i), op.PurchaseID, want, source)
		case !op.Replayed:
			c.anomalies.add("duplicate retry", "%s got purchase %d back without Idempotent-Replayed: true", c.describe(i), op.PurchaseID)
		}
	}
}

// buildModel turns the buys and reads into porcupine operations. An
// unanswered buy whose key the exports hold took effect with its exported
// id; one they do not hold never took effect (the exports hold every
// purchase) and is left out. Without exports it may or may not have taken
// effect. Every unanswered buy returns "at the end of time".
func (c *check) buildModel() porcupine.Model {
	var end time.Duration
	for _, op := range c.ops {
		end = max(end, op.Call, op.Return)
	}
	end++
	for i, op := range c.ops {
		var in modelInput
		var out any
		ret := op.Return
		switch {
		case op.Kind == history.KindRead && op.Outcome == history.OK:
			if op.ReadPromotion < 0 || op.ReadPromotion > promotions {
				continue
			}
			in = modelInput{read: true, promotion: op.ReadPromotion, op: i}
			out = readOutput{buys: op.ReadBuys, cents: op.ReadAmountCents}
		case op.Kind == history.KindBuy && c.buyOf[op.Key] == i:
			in = modelInput{promotion: op.PromotionID, cents: op.AmountCents, op: i}
			switch op.Outcome {
			case history.OK:
				in.purchaseID, in.totalBuys = op.PurchaseID, op.TotalBuys
			case history.Fail:
				// Recorded all the same (reported by the export checks):
				// it took effect where the exports say, so that the
				// search checks the rest instead of failing on it.
				r, ok := c.exported[op.Key]
				if !ok {
					continue
				}
				in.purchaseID, ret = r.PurchaseID, end
			default:
				ret = end
				if c.exported == nil {
					in.maybe = true
				} else if r, ok := c.exported[op.Key]; ok {
					in.purchaseID = r.PurchaseID
					c.report.UnknownHappened++
				} else {
					c.report.UnknownDropped++
					continue
				}
			}
		default:
			continue
		}
		c.modelOps = append(c.modelOps, porcupine.Operation{
			ClientId: op.Client, Input: in, Output: out, Call: int64(op.Call), Return: int64(ret),
		})
	}
	for _, mop := range c.modelOps {
		if mop.Input.(modelInput).maybe {
			return ledgerModel.ToModel()
		}
	}
	return deterministicLedgerModel()
}

// runPorcupine checks linearizability of every buy and read but the reads
// already proven wrong; on a rejection it writes the visualization and names
// where the search got stuck. With reads proven wrong the verdict is Illegal
// whatever the search says about the rest.
func (c *check) runPorcupine(model porcupine.Model, opts Options, wrong map[int]bool) {
	if len(wrong) > 0 {
		kept := c.modelOps[:0:0]
		for _, mop := range c.modelOps {
			if !wrong[mop.Input.(modelInput).op] {
				kept = append(kept, mop)
			}
		}
		c.modelOps = kept
	}
	start := time.Now()
	res := porcupine.CheckOperationsTimeout(model, c.modelOps, opts.Timeout)
	c.report.CheckDuration = time.Since(start)
	c.report.Linearizable = res
	if len(wrong) > 0 && res == porcupine.Ok {
		c.report.Linearizable = porcupine.Illegal
	}
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		c.anomalies.add("not linearizable", "porcupine found no answer within %v: the history is not proven linearizable", opts.Timeout)
		return
	}
	vres, info := porcupine.CheckOperationsVerbose(model, c.modelOps, opts.Timeout)
	where := ""
	if vres == porcupine.Illegal {
		where = c.stuckAt(model, info)
	}
	if opts.VisualizePath != "" && vres == porcupine.Illegal {
		if err := porcupine.VisualizePath(model, info, opts.VisualizePath); err != nil {
			where += fmt.Sprintf(" (visualization not written: %v)", err)
		} else {
			c.report.Visualization = opts.VisualizePath
			where += " (visualization: " + opts.VisualizePath + ")"
		}
	}
	c.anomalies.add("not linearizable", "no order of the %d buys and reads fits the ledger's model%s", len(c.modelOps), where)
}

// stuckAt describes the end of porcupine's longest partial linearization:
// the state reached and the operations that were pending there and could not
// be placed.
func (c *check) stuckAt(model porcupine.Model, info porcupine.LinearizationInfo) string {
	partials := info.PartialLinearizations()
	if len(partials) == 0 {
		return ""
	}
	var longest []int
	for _, p := range partials[0] {
		if len(p) > len(longest) {
			longest = p
		}
	}
	done := make(map[int]bool, len(longest))
	state := model.Init()
	for _, id := range longest {
		done[id] = true
		_, state = model.Step(state, c.modelOps[id].Input, c.modelOps[id].Output)
	}
	// The pending operations are those not placed that were called before
	// the earliest return among them.
	var rest []int
	for id := range c.modelOps {
		if !done[id] {
			rest = append(rest, id)
		}
	}
	if len(rest) == 0 {
		return ""
	}
	firstReturn := c.modelOps[rest[0]].Return
	for _, id := range rest {
		firstReturn = min(firstReturn, c.modelOps[id].Return)
	}
	var pending []string
	for _, id := range rest {
		if c.modelOps[id].Call <= firstReturn && len(pending) < 8 {
			pending = append(pending, model.DescribeOperation(c.modelOps[id].Input, c.modelOps[id].Output))
		}
	}
	sort.Strings(pending)
	return fmt.Sprintf(": after %d operations the state is {%s} and none of %q fits", len(longest), model.DescribeState(state), pending)
}
