package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/peer"
)

// Consistency is how fresh a read must be.
type Consistency string

// Consistency levels, as GET /stats names them.
const (
	// Linearizable reads reflect every write acknowledged before the read
	// began: ReadIndex on the leader (confirm leadership with a quorum, then
	// wait until the commit index noted before is applied).
	Linearizable Consistency = "linearizable"
	// Lease reads are served by the leader from its local state, once it
	// has applied its commit index, with no quorum round trip while its
	// read lease holds (lease.go); past it, the read confirms leadership
	// as a linearizable one does, which renews the lease.
	Lease Consistency = "lease"
	// Stale reads are served by any node from its local state.
	Stale Consistency = "stale"
)

// pendingRead waits for a ReadIndex round.
type pendingRead struct {
	index chan readIndexResult // buffered
}

type readIndexResult struct {
	index uint64
	// at is the leader's clock at the round, in Unix nanoseconds: windows
	// of linearizable reads end there, so every member answers the same at
	// the same index.
	at  int64
	err error
}

// ReadBarrier returns once the local ledger reflects every write committed
// before the call, at the given consistency; ErrNotLeader or ErrNoLeader
// when the read must go to the leader; ErrHalted, at every consistency, when
// this node's ledger halted.
func (s *Store) ReadBarrier(ctx context.Context, c Consistency) error {
	_, err := s.readBarrier(ctx, c)
	return err
}

// readBarrier is ReadBarrier that also returns the time a read's window
// ends at: the leader's clock for linearizable and lease reads (checked
// against the voters'), this node's own for stale ones.
func (s *Store) readBarrier(ctx context.Context, c Consistency) (time.Time, error) {
	if err := s.haltedError(); err != nil {
		return time.Time{}, err
	}
	switch c {
	case Stale:
		return s.clock.Now(), nil
	case Lease:
		if s.Raft().State() != raft.Leader {
			return time.Time{}, s.notLeaderError()
		}
		if err := s.waitLeaderReady(ctx); err != nil {
			return time.Time{}, err
		}
		term := s.leaderTerm.Load()
		if err := s.clocks.allows(term); err != nil {
			return time.Time{}, err
		}
		if !s.lease.valid(term, time.Now()) {
			return s.linearizableBarrier(ctx)
		}
		// Everything acknowledged before this read is committed at or
		// below this index; the ledger may still be applying it (a slow
		// records disk), and the read must wait for it.
		if err := s.waitApplied(ctx, s.Raft().CommitIndex()); err != nil {
			return time.Time{}, err
		}
		return s.clock.Now(), nil
	case Linearizable:
		return s.linearizableBarrier(ctx)
	default:
		return time.Time{}, fmt.Errorf("unknown consistency %q", c)
	}
}

// linearizableBarrier waits for a read-index round and for this node's
// ledger to apply its index, and returns the leader's clock at the round.
func (s *Store) linearizableBarrier(ctx context.Context) (time.Time, error) {
	// The leader confirms its leadership for a round of reads; a follower
	// asks the leader for that round's index. Either way the read is then
	// served here once this node has applied the index.
	res := s.readIndexRound(ctx)
	if res.err != nil {
		return time.Time{}, res.err
	}
	if err := s.waitApplied(ctx, res.index); err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, res.at), nil
}

// waitApplied waits until the ledger has applied index.
func (s *Store) waitApplied(ctx context.Context, index uint64) error {
	if err := s.ledger.WaitApplied(ctx, index); err != nil {
		if herr := s.haltedError(); herr != nil {
			return herr
		}
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return nil
}

// ReadIndex returns an index such that a read served from a state machine
// that has applied it reflects every write acknowledged before the call. On
// the leader it comes from a ReadIndex round; a follower asks the leader,
// one request per round of concurrent reads.
func (s *Store) ReadIndex(ctx context.Context) (uint64, error) {
	res := s.readIndexRound(ctx)
	return res.index, res.err
}

func (s *Store) readIndexRound(ctx context.Context) readIndexResult {
	queue := s.reads
	if s.Raft().State() == raft.Leader {
		if err := s.waitLeaderReady(ctx); err != nil {
			return readIndexResult{err: err}
		}
	} else {
		if err := s.notLeaderError(); !errors.Is(err, ErrNotLeader) {
			return readIndexResult{err: err}
		}
		queue = s.followerReads
	}
	pr := &pendingRead{index: make(chan readIndexResult, 1)}
	select {
	case queue <- pr:
	case <-ctx.Done():
		return readIndexResult{err: fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())}
	case <-s.stop:
		return readIndexResult{err: ErrClosed}
	}
	select {
	case res := <-pr.index:
		return res
	case <-ctx.Done():
		return readIndexResult{err: fmt.Errorf("%w: confirming leadership: %v", ErrNoLeader, ctx.Err())}
	}
}

// runFollowerReadIndex asks the leader for a read index once per round of
// concurrent linearizable reads on this follower.
func (s *Store) runFollowerReadIndex() {
	defer s.wg.Done()
	s.serveReadRounds(s.followerReads, s.leaderReadIndex)
}

func (s *Store) leaderReadIndex() readIndexResult {
	leaderID, leaderAddr, ok := s.leaderAddress()
	if !ok {
		return readIndexResult{err: ErrNoLeader}
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerCallTimeout)
	defer cancel()
	res, err := s.peerReadIndex(ctx, leaderAddr)
	if err != nil {
		if peer.CodeOf(err) == peer.CodeUnavailable {
			return readIndexResult{err: fmt.Errorf("%w: read index from leader %s: %v", ErrClockSkew, leaderID, err)}
		}
		return readIndexResult{err: fmt.Errorf("%w: read index from leader %s: %v", ErrNoLeader, leaderID, err)}
	}
	return res
}

// waitLeaderReady waits until this leader has applied an entry of its own
// term, which it does within a round trip of winning the election.
func (s *Store) waitLeaderReady(ctx context.Context) error {
	for {
		term := s.leaderTerm.Load()
		if term == 0 {
			return s.notLeaderError()
		}
		ready, changed := s.leaderReadyTerm()
		if ready == term {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: new leader not ready: %v", ErrNoLeader, ctx.Err())
		case <-time.After(50 * time.Millisecond): // re-check the term
		}
	}
}

// runReadIndex confirms leadership for reads in rounds: every read that
// arrives while a round is under way waits for the next one, so one quorum
// round trip serves any number of concurrent reads and no read writes to the
// log.
func (s *Store) runReadIndex() {
	defer s.wg.Done()
	s.serveReadRounds(s.reads, func() readIndexResult {
		s.metrics.readRounds.Inc()
		return s.readIndex()
	})
}

// serveReadRounds takes the reads queued on queue in rounds until the store
// stops: one call of round answers every read that was waiting when it began.
func (s *Store) serveReadRounds(queue chan *pendingRead, round func() readIndexResult) {
	var waiting []*pendingRead
	for {
		waiting = waiting[:0]
		select {
		case pr := <-queue:
			waiting = append(waiting, pr)
		case <-s.stop:
			return
		}
	drain:
		for {
			select {
			case pr := <-queue:
				waiting = append(waiting, pr)
			default:
				break drain
			}
		}
		res := round()
		for _, pr := range waiting {
			pr.index <- res
		}
	}
}

// Stats answers a stats query after the read barrier for c.
func (s *Store) Stats(ctx context.Context, q ledger.StatsQuery, c Consistency) (ledger.Stats, error) {
	now, err := s.readBarrier(ctx, c)
	if err != nil {
		return ledger.Stats{}, err
	}
	return s.ledger.Stats(q, now), nil
}

// Records returns purchase records after the read barrier for c.
func (s *Store) Records(ctx context.Context, after uint64, limit int, c Consistency) ([]ledger.Record, error) {
	if err := s.ReadBarrier(ctx, c); err != nil {
		return nil, err
	}
	return s.ledger.Records(after, limit)
}

// readIndex notes the commit index and confirms with a quorum that this node
// still leads. The commit index is only trustworthy once the leader has
// committed an entry of its own term, so rounds in a term that has not yet
// are refused.
func (s *Store) readIndex() readIndexResult {
	term := s.leaderTerm.Load()
	if ready, _ := s.leaderReadyTerm(); term == 0 || ready != term {
		return readIndexResult{err: s.notLeaderError()}
	}
	// The window of every read of the round ends at this leader's clock,
	// which must agree with the voters'.
	if err := s.clocks.allows(term); err != nil {
		return readIndexResult{err: err}
	}
	at := s.clock.Now().UnixNano()
	// Any write acknowledged before these reads began is at or below it.
	index := s.Raft().CommitIndex()
	// The quorum that confirms leadership below heard from this leader
	// after now: that grants the read lease (lease.go).
	leaseFrom := time.Now()
	if err := s.Raft().VerifyLeader().Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return readIndexResult{err: s.notLeaderError()}
		}
		return readIndexResult{err: fmt.Errorf("%w: %v", ErrNoLeader, err)}
	}
	if s.leaderTerm.Load() != term {
		return readIndexResult{err: s.notLeaderError()}
	}
	s.lease.extend(term, leaseFrom.Add(time.Duration(float64(s.cfg.HeartbeatTimeout)*leaseFraction)))
	return readIndexResult{index: index, at: at}
}

// Backup returns a point-in-time view of the ledger, for GET /backup, after
// the read barrier for c: with Linearizable it reflects every purchase
// acknowledged before the call. Apply goes on while the view is streamed.
func (s *Store) Backup(ctx context.Context, c Consistency) (*ledger.Capture, error) {
	if err := s.ReadBarrier(ctx, c); err != nil {
		return nil, err
	}
	capture, err := s.ledger.Capture()
	if err != nil {
		if herr := s.haltedError(); herr != nil {
			return nil, herr
		}
		return nil, fmt.Errorf("capture the ledger: %w", err)
	}
	return capture, nil
}
