package store

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// readLease is how long this leader may serve lease reads from its own
// state without asking a quorum again.
//
// Why a confirmed round grants one: a read-index round sends heartbeats
// after it starts, and a quorum answers them, so a quorum of members heard
// from this leader after `start`. hashicorp/raft's followers refuse votes
// (and pre-votes) while they know a leader, and forget it only a heartbeat
// timeout after their last contact; a member that restarts refuses votes
// for its first heartbeat timeout (Store.refuseVotes). So no other member
// can be elected before start + HeartbeatTimeout, and until then no other
// leader can commit anything this one does not see. The lease stops short
// of that (leaseFraction) to leave room for clock rate drift and
// scheduling.
//
// Two things end a lease early: a leadership transfer this node starts
// (its TimeoutNow makes a follower stand for election at once, and voters
// grant a transfer's votes whatever leader they know), and a new term.
// Monotonic time only: a wall clock shifted forward or back changes
// nothing.
type readLease struct {
	mu    sync.Mutex
	term  uint64
	until time.Time
	// transfers counts leadership transfers under way: no lease then.
	transfers int
}

// leaseFraction is the part of the heartbeat timeout a lease lasts.
const leaseFraction = 0.8

// extend grants the lease for term until `until`, unless a transfer is
// under way.
func (l *readLease) extend(term uint64, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.transfers > 0 {
		return
	}
	if term != l.term || until.After(l.until) {
		l.term, l.until = term, until
	}
}

// valid reports whether a lease for term holds at now.
func (l *readLease) valid(term uint64, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return term != 0 && l.transfers == 0 && l.term == term && now.Before(l.until)
}

// transferring ends the lease and keeps it from being granted again until
// the returned func is called, when the transfer has finished.
func (l *readLease) transferring() (done func()) {
	l.mu.Lock()
	l.transfers++
	l.until = time.Time{}
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		l.transfers--
		l.mu.Unlock()
	}
}

// transferLeadership runs a leadership transfer (start returns its
// future) with the read lease revoked until it finishes.
func (s *Store) transferLeadership(start func() raft.Future) error {
	done := s.lease.transferring()
	defer done()
	return start().Error()
}

// refuseVotes is true while this node must not vote: a node that has not
// yet decided how it takes part (an empty or joining data dir), and any
// node in its first heartbeat timeout, so that a member that restarted
// cannot help elect a leader while the old one's read lease may hold.
func (s *Store) refuseVotes() bool {
	return s.votesRefused.Load() || time.Since(s.startedAt) < s.cfg.HeartbeatTimeout
}
