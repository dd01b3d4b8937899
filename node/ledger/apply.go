package ledger

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// ErrHalted wraps the reason a ledger stopped applying: an entry that failed
// its checksum or could not be decoded. A halted ledger applies nothing from
// that entry on; its state stays the one before it.
var ErrHalted = errors.New("ledger halted")

// errClosed answers entries handed to a closed ledger.
var errClosed = errors.New("ledger is closed")

// Retry bounds for a records transaction that failed to commit (a full disk,
// most likely): nothing is applied until it succeeds.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 2 * time.Second
)

// Apply implements raft.FSM for callers that do not batch.
func (l *Ledger) Apply(log *raft.Log) any {
	return l.ApplyBatch([]*raft.Log{log})[0]
}

// ApplyBatch implements raft.BatchingFSM: every purchase in the batch is
// written in one bbolt transaction, and the in-memory state changes only
// once it committed. A CmdBuyBatch entry answers []BuyResult.
//
// An entry that fails its checksum, cannot be decoded or has an unknown type
// halts the ledger: the entries before it are applied, it and every later
// one are not (skipping it would fork this replica from its peers). A records
// transaction that fails to commit is retried, with a backoff, until it
// succeeds or the ledger is closed; meanwhile ApplyBlocked reports it.
func (l *Ledger) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	if len(logs) == 0 {
		return results
	}
	if err := l.Halted(); err != nil {
		fillErr(results, err)
		return results
	}
	wait := l.retryMin
	for {
		out, err := l.applyOnce(logs, results)
		if err == nil {
			l.setBlocked(nil)
			if out.applied > 0 {
				l.setApplied(out.applied)
			}
			if out.halt != nil {
				fillErr(results[out.done:], out.halt)
				l.halt(out.halt, out.applied)
			}
			return results
		}
		if errors.Is(err, errClosed) {
			fillErr(results, err)
			return results
		}
		l.setBlocked(err)
		select {
		case <-l.closing:
			fillErr(results, errClosed)
			return results
		case <-time.After(wait):
		}
		wait = min(2*wait, l.retryMax)
	}
}

func fillErr(results []any, err error) {
	for i := range results {
		results[i] = err
	}
}

// applyOutcome is what one successful attempt did.
type applyOutcome struct {
	// applied is the index of the last entry applied, 0 when none was.
	applied uint64
	// done is how many entries were applied; halt, when set, is why the
	// entry after them was not.
	done int
	halt error
}

// applyOnce makes one attempt at applying logs. It returns an error, and
// changes nothing, when the records transaction fails.
func (l *Ledger) applyOnce(logs []*raft.Log, results []any) (applyOutcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return applyOutcome{}, errClosed
	}
	plan := l.plan.reset(l.st)
	var tx *bolt.Tx
	defer func() {
		if tx != nil {
			_ = tx.Rollback()
		}
	}()
	var out applyOutcome
	for i, entry := range logs {
		if entry.Type == raft.LogCommand {
			cmd, err := decodeCommand(entry.Data)
			if err != nil {
				out.halt = fmt.Errorf("%w: log entry %d: %w", ErrHalted, entry.Index, err)
				break
			}
			if cmd.typ == CmdBuyBatch && tx == nil {
				if tx, err = l.db.Begin(true); err != nil {
					return applyOutcome{}, fmt.Errorf("begin records transaction: %w", err)
				}
			}
			res, err := plan.add(tx, entry.Index, cmd)
			if err != nil {
				return applyOutcome{}, err
			}
			results[i] = res
		}
		out.applied, out.done = entry.Index, i+1
	}
	if tx != nil {
		if l.failCommit != nil {
			if err := l.failCommit(); err != nil {
				return applyOutcome{}, fmt.Errorf("commit records: %w", err)
			}
		}
		err := tx.Commit()
		tx = nil
		if err != nil {
			return applyOutcome{}, fmt.Errorf("commit records: %w", err)
		}
	}
	if out.done > 0 {
		plan.commit(l.st, out.applied)
	}
	return out, nil
}

// command is a decoded, verified log command.
type command struct {
	typ   CommandType
	batch BuyBatch
	node  NodeInfo
}

func decodeCommand(data []byte) (command, error) {
	typ, version, err := commandHeader(data)
	if err != nil {
		return command{}, err
	}
	cmd := command{typ: typ}
	switch typ {
	case CmdBuyBatch:
		cmd.batch, err = decodeBuyBatch(version, data)
	case CmdPublishNode:
		cmd.node, err = decodePublishNode(version, data)
	default:
		// This binary is older than the log it replays.
		err = fmt.Errorf("command type %d is unknown to this version", typ)
	}
	return cmd, err
}

// applyPlan computes what a run of entries changes without changing the
// state: records go into the transaction, everything in memory waits in the
// plan until the transaction committed. A failed commit then leaves nothing
// half-applied, and the retry plans again from the same state.
type applyPlan struct {
	count  uint64
	lastAt int64
	// hash runs on from the state's; digest is its sum after the last
	// entry that recorded purchases.
	hash    recordsHash
	digest  stateDigest
	keys    keysPlan
	steps   []applyStep
	records []Record
	// bbolt keeps references to keys and values until commit, so encoded
	// records go into an arena that is never overwritten.
	arena []byte
	// misapplyCents is Options.MisapplyCents (tests only).
	misapplyCents int64
}

// applyStep is one entry's share of a plan.
type applyStep struct {
	index uint64
	typ   CommandType
	at    int64 // recorded time of a buy batch
	// records[recordsEnd-n:recordsEnd] are the n records it added.
	recordsEnd int
	digest     stateDigest
	node       NodeInfo
}

// reset readies the plan for a new apply on st, keeping its buffers.
func (p *applyPlan) reset(st *state) *applyPlan {
	p.count, p.lastAt = st.count, st.lastRecordedAt
	p.hash, p.digest = st.hash.clone(), st.digest
	p.keys.reset(&st.idempotency)
	clear(p.records) // drop references to the last apply's strings
	p.steps, p.records = p.steps[:0], p.records[:0]
	// bbolt is done with the last arena once its transaction ended, but a
	// fresh one costs little and keeps that reasoning out of the way.
	p.arena = nil
	return p
}

func (p *applyPlan) add(tx *bolt.Tx, index uint64, cmd command) (any, error) {
	step := applyStep{index: index, typ: cmd.typ, node: cmd.node}
	var res any
	if cmd.typ == CmdBuyBatch {
		var err error
		if res, err = p.addBuys(tx, &step, cmd.batch); err != nil {
			return nil, err
		}
	}
	if len(p.records) > p.recordsEnd() {
		p.digest = p.hash.sum()
	}
	step.recordsEnd, step.digest = len(p.records), p.digest
	p.steps = append(p.steps, step)
	return res, nil
}

// addBuys plans a batch of purchases, as state.index will apply them.
func (p *applyPlan) addBuys(tx *bolt.Tx, step *applyStep, batch BuyBatch) ([]BuyResult, error) {
	bucket := appendBucket(tx)
	at := max(batch.LeaderTime, p.lastAt)
	p.lastAt, step.at = at, at
	p.keys.expire(at - int64(IdempotencyRetention))
	results := make([]BuyResult, len(batch.Purchases))
	for i := range batch.Purchases {
		pu := &batch.Purchases[i]
		// A purchase that breaks the rules is skipped, the same way on every
		// replica: leaders validate before they propose, so only a log
		// written by an older version or by hand holds one, and stopping on
		// it would stop every member at the same entry, for ever.
		if err := ValidatePurchase(pu); err != nil {
			results[i] = BuyResult{Index: step.index, Err: err}
			continue
		}
		if pu.IdempotencyKey != "" {
			if prior, ok := p.keys.get(pu.IdempotencyKey); ok {
				results[i] = prior.result()
				if prior.fingerprint != pu.Fingerprint {
					results[i].Err = ErrIdempotencyConflict
				}
				continue
			}
		}
		p.count++
		rec := Record{Purchase: *pu, ID: p.count, RecordedAt: at, Index: step.index}
		rec.AmountCents += p.misapplyCents
		start := len(p.arena)
		p.arena = encodeRecord(p.arena, &rec)
		raw := p.arena[start:len(p.arena):len(p.arena)]
		if err := bucket.Put(recordKey(rec.ID), raw); err != nil {
			return nil, fmt.Errorf("store purchase %d: %w", rec.ID, err)
		}
		p.hash.add(raw)
		p.records = append(p.records, rec)
		if pu.IdempotencyKey != "" {
			p.keys.put(pu.IdempotencyKey, idempotencyEntry{purchaseID: rec.ID, recordedAt: at, index: step.index, fingerprint: pu.Fingerprint})
		}
		results[i] = BuyResult{PurchaseID: rec.ID, TotalBuys: rec.ID, RecordedAt: at, Index: step.index}
	}
	return results, nil
}

// recordsEnd is where the records of the next step start.
func (p *applyPlan) recordsEnd() int {
	if len(p.steps) == 0 {
		return 0
	}
	return p.steps[len(p.steps)-1].recordsEnd
}

// commit applies the plan to the in-memory state, once its records are
// stored; applied is the index of the last entry it covers.
func (p *applyPlan) commit(st *state, applied uint64) {
	next := 0
	for _, step := range p.steps {
		switch step.typ {
		case CmdBuyBatch:
			st.lastRecordedAt = step.at
			st.idempotency.expire(step.at - int64(IdempotencyRetention))
			for ; next < step.recordsEnd; next++ {
				st.count = p.records[next].ID
				st.index(&p.records[next])
			}
		case CmdPublishNode:
			st.nodes[step.node.ID] = step.node
		}
		if step.digest != st.digest {
			st.digest = step.digest
			st.digests.add(digestAt{index: step.index, digest: step.digest})
		}
	}
	st.lastIndex, st.hash = applied, p.hash
}
