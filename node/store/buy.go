package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/ledger"
)

// pendingBuy is one purchase waiting for its Raft entry to commit.
type pendingBuy struct {
	purchase ledger.Purchase
	done     chan buyOutcome // buffered: the completer never blocks on it
}

type buyOutcome struct {
	result ledger.BuyResult
	err    error
}

// inflightBatch is a Raft entry handed to Raft and the purchases it carries.
type inflightBatch struct {
	future raft.ApplyFuture
	buys   []*pendingBuy
	start  time.Time
}

// Buy records a purchase through Raft and returns its result once the entry
// is committed and applied. Concurrent purchases share Raft entries (group
// commit): a batch forms from whatever is queued while earlier entries are
// in flight. On a follower it returns ErrNotLeader. While this node's disk
// is nearly full it records nothing and returns ErrDiskFull.
func (s *Store) Buy(ctx context.Context, p ledger.Purchase) (ledger.BuyResult, error) {
	if err := s.haltedError(); err != nil {
		return ledger.BuyResult{}, err
	}
	if err := s.disk.admit(); err != nil {
		// A retry of a recorded purchase writes nothing: it still gets its
		// answer, from this node's own copy of the table.
		if res, ok := s.recordedRetry(p); ok {
			return res, res.Err
		}
		return ledger.BuyResult{}, err
	}
	if s.Raft().State() != raft.Leader {
		if err := s.notLeaderError(); !errors.Is(err, ErrNotLeader) {
			return ledger.BuyResult{}, err
		}
		return s.enqueue(ctx, s.forwardQueue, p)
	}
	return s.buyAsLeader(ctx, p)
}

// buyAsLeader records a purchase through this node's own Raft; it never
// forwards.
func (s *Store) buyAsLeader(ctx context.Context, p ledger.Purchase) (ledger.BuyResult, error) {
	pb, done := s.submitAsLeader(p)
	if done != nil {
		return done.result, done.err
	}
	return pb.wait(ctx)
}

// submitAsLeader queues a purchase for the leader's group commit. When the
// purchase needs no log entry (an Idempotency-Key retry), breaks the rules or
// cannot be queued, it returns the outcome instead. Every purchase the leader
// proposes passes here, its own and its followers' alike, so nothing invalid
// reaches the log.
func (s *Store) submitAsLeader(p ledger.Purchase) (*pendingBuy, *buyOutcome) {
	if err := ledger.ValidatePurchase(&p); err != nil {
		return nil, &buyOutcome{err: err}
	}
	if s.Raft().State() != raft.Leader {
		return nil, &buyOutcome{err: ErrNoLeader}
	}
	// A retry of a recorded purchase is answered without a log entry.
	if res, ok := s.recordedRetry(p); ok {
		return nil, &buyOutcome{result: res, err: res.Err}
	}
	// A leader whose clock is off stamps nothing: recorded_at never goes
	// back, so one stamp ahead would hold every later purchase ahead.
	if err := s.clocks.wait(s.leaderTerm.Load(), 2*time.Second); err != nil {
		return nil, &buyOutcome{err: err}
	}
	// Checked here too, not only where the purchase arrived: a follower's
	// forwarded purchases are written to the leader's disk.
	if err := s.disk.admit(); err != nil {
		return nil, &buyOutcome{err: err}
	}
	return s.submit(s.buys, p)
}

// recordedRetry returns the recorded answer when p carries the
// Idempotency-Key of a purchase this node has applied.
func (s *Store) recordedRetry(p ledger.Purchase) (ledger.BuyResult, bool) {
	if p.IdempotencyKey == "" {
		return ledger.BuyResult{}, false
	}
	return s.ledger.Lookup(p.IdempotencyKey, p.Fingerprint)
}

// enqueue puts a purchase on a batching queue and waits for its outcome.
func (s *Store) enqueue(ctx context.Context, queue chan *pendingBuy, p ledger.Purchase) (ledger.BuyResult, error) {
	pb, done := s.submit(queue, p)
	if done != nil {
		return done.result, done.err
	}
	return pb.wait(ctx)
}

// pendingBuys recycles pendingBuy values with their channels: one per
// purchase is otherwise two allocations on the hot path. A pendingBuy goes
// back only once its outcome was received, so nothing can still send to it.
var pendingBuys = sync.Pool{New: func() any { return &pendingBuy{done: make(chan buyOutcome, 1)} }}

func (s *Store) submit(queue chan *pendingBuy, p ledger.Purchase) (*pendingBuy, *buyOutcome) {
	pb := pendingBuys.Get().(*pendingBuy)
	pb.purchase = p
	select {
	case queue <- pb:
		return pb, nil
	case <-s.stop:
		pendingBuys.Put(pb)
		return nil, &buyOutcome{err: ErrClosed}
	default:
		pendingBuys.Put(pb)
		s.metrics.overloaded.Inc()
		return nil, &buyOutcome{err: ErrOverloaded}
	}
}

func (pb *pendingBuy) wait(ctx context.Context) (ledger.BuyResult, error) {
	select {
	case out := <-pb.done:
		pb.purchase = ledger.Purchase{}
		pendingBuys.Put(pb)
		return out.result, out.err
	case <-ctx.Done():
		// The purchase is queued or in flight and may still commit.
		return ledger.BuyResult{}, fmt.Errorf("%w: %v", ErrOutcomeUnknown, ctx.Err())
	}
}

// notLeaderError says whether a leader is known, so the caller can decide to
// forward or to answer 503.
func (s *Store) notLeaderError() error {
	if info, ok := s.Leader(); ok && info.ID != s.cfg.ID {
		return ErrNotLeader
	}
	return ErrNoLeader
}

// runBatcher forms Raft entries from queued purchases. It takes an in-flight
// slot before draining the queue, so while Raft is busy the queue grows and
// the next entry carries more purchases: batches size themselves to the load.
func (s *Store) runBatcher() {
	defer s.wg.Done()
	defer close(s.batches)
	batch := make([]ledger.Purchase, 0, s.cfg.MaxBatch)
	for {
		var first *pendingBuy
		select {
		case first = <-s.buys:
		case <-s.stop:
			s.failQueue(s.buys)
			return
		}
		select {
		case s.slots <- struct{}{}:
		case <-s.stop:
			first.done <- buyOutcome{err: ErrClosed}
			s.failQueue(s.buys)
			return
		}
		buys := []*pendingBuy{first}
	drain:
		for len(buys) < s.cfg.MaxBatch {
			select {
			case pb := <-s.buys:
				buys = append(buys, pb)
			default:
				break drain
			}
		}
		batch = batch[:0]
		for _, pb := range buys {
			batch = append(batch, pb.purchase)
		}
		now := s.clock.Now()
		if err := s.clocks.allowsAt(s.leaderTerm.Load(), now); err != nil {
			// The clock jumped since it was last compared: stamp nothing.
			for _, pb := range buys {
				pb.done <- buyOutcome{err: err}
			}
			<-s.slots
			s.clocks.recheck()
			continue
		}
		cmd := ledger.EncodeBuyBatch(ledger.BuyBatch{LeaderTime: now.UnixNano(), Purchases: batch})
		s.metrics.batchSize.Observe(float64(len(buys)))
		start := time.Now()
		s.batches <- inflightBatch{future: s.Raft().Apply(cmd, 5*time.Second), buys: buys, start: start}
	}
}

// failQueue answers every purchase still in a queue; none was handed on,
// so none is recorded.
func (s *Store) failQueue(queue chan *pendingBuy) {
	for {
		select {
		case pb := <-queue:
			pb.done <- buyOutcome{err: ErrClosed}
		default:
			return
		}
	}
}

// runCompleter waits for each in-flight entry, in log order, and answers its
// purchases.
func (s *Store) runCompleter() {
	defer s.wg.Done()
	for b := range s.batches {
		err := b.future.Error()
		s.metrics.commitDuration.Observe(time.Since(b.start).Seconds())
		<-s.slots
		if err != nil {
			err = classifyApplyError(err)
			for _, pb := range b.buys {
				pb.done <- buyOutcome{err: err}
			}
			continue
		}
		results, ok := b.future.Response().([]ledger.BuyResult)
		if !ok || len(results) != len(b.buys) {
			err := fmt.Errorf("%w: unexpected apply response %T", ErrOutcomeUnknown, b.future.Response())
			for _, pb := range b.buys {
				pb.done <- buyOutcome{err: err}
			}
			continue
		}
		recorded := 0
		for i, pb := range b.buys {
			pb.done <- buyOutcome{result: results[i], err: results[i].Err}
			if !results[i].Replayed && results[i].Err == nil {
				recorded++
			}
		}
		s.metrics.buysRecorded.Add(float64(recorded))
	}
}

// classifyApplyError tells "certainly not recorded" from "maybe recorded".
func classifyApplyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
		// Never appended to the log.
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	default:
		// ErrLeadershipLost and friends: the entry may still commit under
		// the next leader.
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
}
