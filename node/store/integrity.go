package store

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// A node whose ledger halted (a log entry failed its checksum or could not
// be decoded) holds a log it must neither apply around nor pass on. It leaves
// service at once and stays out until it is replaced: Raft is shut down, so
// it neither votes, leads nor replicates its log to others, and every read
// and write answers ErrHalted. The process keeps running so that /ready,
// /metrics and the admin API's /status say why.

// watchHalt takes the node out of service when its ledger halts.
func (s *Store) watchHalt() {
	defer s.wg.Done()
	select {
	case <-s.stop:
		return
	case <-s.ledger.HaltedC():
	}
	s.logger.Error("Taking this node out of service: its ledger halted; replace this member", "error", s.ledger.Halted())
	// Never from inside Apply: Shutdown waits for the FSM goroutine, which
	// has returned from the halting apply by the time the channel closed.
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	if err := s.Raft().Shutdown().Error(); err != nil {
		s.logger.Warn("Shutting Raft down after the halt failed", "error", err)
	}
	// Peers learn at once that it is gone: the endpoint closes with Raft.
	s.peers.Close()
}

// blockedCheckInterval is how often the store looks for a blocked apply.
const blockedCheckInterval = 250 * time.Millisecond

// watchApplyBlocked acts while this node's ledger cannot apply (its records
// write keeps failing, a full disk most likely): it reports disk pressure
// when the cause is lack of space, and hands leadership over. Raft would go
// on committing through a blocked leader, but the entries it leads would
// never be answered: every purchase would time out until its disk had room
// again, while the other members could take them. It checks again after each
// handover, since the node may win a later election.
func (s *Store) watchApplyBlocked() {
	defer s.wg.Done()
	tick := time.NewTicker(blockedCheckInterval)
	defer tick.Stop()
	wasBlocked := false
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		blocked := s.ledger.ApplyBlocked()
		if blocked != nil && !wasBlocked {
			// A records write that failed for lack of space puts the node
			// under disk pressure, as a failed Raft log write does: new
			// purchases then answer 507 here instead of timing out. Once per
			// episode: the pressure lasts until space is back, measured from
			// the free space at this failure.
			s.disk.writeFailed(blocked)
		}
		wasBlocked = blocked != nil
		if !wasBlocked || s.Raft().State() != raft.Leader || s.voters() < 2 {
			continue
		}
		s.logger.Warn("Handing leadership over: this node cannot apply entries", "error", blocked)
		if err := s.transferLeadership(s.Raft().LeadershipTransfer); err != nil {
			s.logger.Warn("Handing leadership over while applying is blocked failed; will retry", "error", err)
		}
	}
}

// haltedError returns ErrHalted with the ledger's reason when the ledger
// halted, ErrDiverged while the node is suspended by a digest mismatch, nil
// otherwise.
func (s *Store) haltedError() error {
	if err := s.ledger.Halted(); err != nil {
		return fmt.Errorf("%w: %v", ErrHalted, err)
	}
	return s.divergedError()
}

// healthProblem says why the ledger or the Raft log keeps this node from
// being ready, or "" when nothing does.
func (s *Store) healthProblem() string {
	if err := s.ledger.Halted(); err != nil {
		return "halted, out of service until replaced: " + err.Error()
	}
	if err := s.ledger.ApplyBlocked(); err != nil {
		return "applying is blocked: " + err.Error()
	}
	if r := s.divergence.reason(); r != "" {
		return "answering nothing: " + r
	}
	if err := s.logRetry.blocked(); err != nil {
		return "writing the Raft log is failing, retrying: " + err.Error()
	}
	return ""
}
