package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/peer"
)

// A follower does not proxy each POST /buy to the leader: it batches the
// purchases it receives, as the leader does, and hands each batch to the
// leader in one peer RPC (MethodForwardBuys). The leader puts them
// into its own group commit. One hop then carries many purchases, so a
// Service that spreads clients over every pod costs little more than
// sending them all to the leader.

// Outcome codes of a forwarded purchase, as the leader answers them.
const (
	outcomeRecorded  byte = 0
	outcomeReplayed  byte = 1
	outcomeConflict  byte = 2
	outcomeNoLeader  byte = 3 // certainly not recorded
	outcomeUnknown   byte = 4 // may be recorded
	outcomeNotQueued byte = 5 // overloaded or closing: not recorded
	outcomeInvalid   byte = 6 // refused by ledger.ValidatePurchase: not recorded
	outcomeDiskFull  byte = 7 // the leader's disk is nearly full: not recorded
	outcomeClockSkew byte = 8 // the leader's clock is off: not recorded
)

// forwardTimeout bounds one forwarded batch.
const forwardTimeout = 10 * time.Second

// maxForwardAnswer bounds the leader's answer to a forwarded batch: at most
// a few thousand purchases of a few dozen bytes of outcome each.
const maxForwardAnswer = 1 << 20

// BuyForwarded records purchases that a follower forwarded. It never
// forwards again: a node that is no longer leader answers outcomeNoLeader.
func (s *Store) BuyForwarded(ctx context.Context, encoded []byte) ([]byte, error) {
	batch, err := ledger.DecodeBuyBatch(encoded)
	if err != nil {
		return nil, fmt.Errorf("decode forwarded buys: %w", err)
	}
	pending := make([]*pendingBuy, len(batch.Purchases))
	immediate := make([]*buyOutcome, len(batch.Purchases))
	for i, p := range batch.Purchases {
		pending[i], immediate[i] = s.submitAsLeader(p)
	}
	out := make([]byte, 0, len(pending)*16)
	for i, pb := range pending {
		o := immediate[i]
		if o == nil {
			res, err := pb.wait(ctx)
			o = &buyOutcome{result: res, err: err}
		}
		out = appendOutcome(out, *o)
	}
	return out, nil
}

func appendOutcome(buf []byte, o buyOutcome) []byte {
	code := outcomeRecorded
	switch {
	case o.err == nil && o.result.Replayed:
		code = outcomeReplayed
	case o.err == nil:
	case errors.Is(o.err, ledger.ErrIdempotencyConflict):
		code = outcomeConflict
	case errors.Is(o.err, ledger.ErrInvalidPurchase):
		code = outcomeInvalid
	case errors.Is(o.err, ErrNotLeader), errors.Is(o.err, ErrNoLeader):
		code = outcomeNoLeader
	case errors.Is(o.err, ErrOverloaded), errors.Is(o.err, ErrClosed):
		code = outcomeNotQueued
	case errors.Is(o.err, ErrDiskFull):
		code = outcomeDiskFull
	case errors.Is(o.err, ErrClockSkew):
		code = outcomeClockSkew
	default:
		code = outcomeUnknown
	}
	buf = append(buf, code)
	buf = binary.AppendUvarint(buf, o.result.PurchaseID)
	buf = binary.AppendVarint(buf, o.result.RecordedAt)
	return binary.AppendUvarint(buf, o.result.Index)
}

func decodeOutcomes(raw []byte, n int) ([]buyOutcome, error) {
	out := make([]buyOutcome, n)
	for i := range out {
		if len(raw) == 0 {
			return nil, fmt.Errorf("leader answered %d outcomes for %d purchases", i, n)
		}
		code := raw[0]
		raw = raw[1:]
		var vals [3]uint64
		for j := range vals {
			var k int
			if j == 1 {
				var v int64
				v, k = binary.Varint(raw)
				vals[j] = uint64(v)
			} else {
				vals[j], k = binary.Uvarint(raw)
			}
			if k <= 0 {
				return nil, errors.New("malformed outcome from the leader")
			}
			raw = raw[k:]
		}
		res := ledger.BuyResult{PurchaseID: vals[0], TotalBuys: vals[0], RecordedAt: int64(vals[1]), Index: vals[2]}
		switch code {
		case outcomeRecorded:
		case outcomeReplayed:
			res.Replayed = true
		case outcomeConflict:
			res.Replayed = true
			res.Err = ledger.ErrIdempotencyConflict
			out[i].err = res.Err
		case outcomeNoLeader:
			out[i].err = ErrNoLeader
		case outcomeNotQueued:
			out[i].err = ErrOverloaded
		case outcomeDiskFull:
			out[i].err = fmt.Errorf("%w on the leader", ErrDiskFull)
		case outcomeClockSkew:
			out[i].err = fmt.Errorf("%w: the leader refused to stamp it", ErrClockSkew)
		case outcomeInvalid:
			// The code carries no field: the follower's own decoder
			// accepted the purchase, so the leader's rules differ from it.
			out[i].err = fmt.Errorf("the leader refused the purchase: %w", ledger.ErrInvalidPurchase)
		default:
			out[i].err = ErrOutcomeUnknown
		}
		out[i].result = res
	}
	return out, nil
}

// runForwarder batches purchases that arrive at a follower and sends each
// batch to the leader, with at most MaxInflight batches under way.
func (s *Store) runForwarder() {
	defer s.wg.Done()
	for {
		var first *pendingBuy
		select {
		case first = <-s.forwardQueue:
		case <-s.stop:
			s.failQueue(s.forwardQueue)
			return
		}
		select {
		case s.forwardSlots <- struct{}{}:
		case <-s.stop:
			first.done <- buyOutcome{err: ErrClosed}
			s.failQueue(s.forwardQueue)
			return
		}
		buys := []*pendingBuy{first}
	drain:
		for len(buys) < s.cfg.MaxBatch {
			select {
			case pb := <-s.forwardQueue:
				buys = append(buys, pb)
			default:
				break drain
			}
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.forwardSlots }()
			s.sendToLeader(buys)
		}()
	}
}

func (s *Store) sendToLeader(buys []*pendingBuy) {
	fail := func(err error) {
		for _, pb := range buys {
			pb.done <- buyOutcome{err: err}
		}
	}
	leaderID, leaderAddr, ok := s.leaderAddress()
	if !ok {
		fail(ErrNoLeader)
		return
	}
	batch := ledger.BuyBatch{Purchases: make([]ledger.Purchase, len(buys))}
	for i, pb := range buys {
		batch.Purchases[i] = pb.purchase
	}
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	start := time.Now()
	raw, err := s.peers.Call(ctx, leaderAddr, peer.MethodForwardBuys, ledger.EncodeBuyBatch(batch), maxForwardAnswer)
	s.metrics.forwardDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		switch {
		case errors.Is(err, peer.ErrNotSent), peer.CodeOf(err) == peer.CodeBadRequest:
			fail(fmt.Errorf("%w: %v", ErrNoLeader, err)) // never sent, or refused whole
		default:
			fail(fmt.Errorf("%w: forwarding to leader %s: %v", ErrOutcomeUnknown, leaderID, err))
		}
		return
	}
	outcomes, err := decodeOutcomes(raw, len(buys))
	if err != nil {
		fail(fmt.Errorf("%w: %v", ErrOutcomeUnknown, err))
		return
	}
	for i, pb := range buys {
		pb.done <- outcomes[i]
	}
}
