package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/ledger"
)

// Members compare the digests of their applied state (node/ledger keeps a
// running digest and the last few thousand (index, digest) pairs): every
// few seconds each node asks every other member for its digest and the index
// it holds at, and compares it with its own at that index. Equal logs give
// equal digests, so a difference means one side applied something else (a
// bug, memory or disk corruption the checksums did not catch).
//
// Who is wrong is decided by the voters' majority. A node that a majority of
// the voters disagree with halts (out of service until replaced, as a
// corrupt log entry does). A node that disagrees with some member while no
// majority decides either way stops answering (reads and writes answer
// ErrDiverged, not ready) until a majority agrees with it again: it never
// answers from state that may be wrong.

// ErrDiverged means this node's state differs from another member's at the
// same index and no majority has decided which is right: it answers nothing
// until one has.
var ErrDiverged = errors.New("this node's state differs from another member's at the same index")

// digestCheckEvery is how often a node compares digests.
const digestCheckEvery = 2 * time.Second

// divergence is what the last comparison found.
type divergence struct {
	mu         sync.Mutex
	suspended  string // why this node answers nothing, "" when it answers
	mismatches uint64 // comparisons that found a difference
}

func (d *divergence) set(reason string) (changed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	changed = d.suspended != reason
	d.suspended = reason
	return changed
}

func (d *divergence) reason() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.suspended
}

// divergedError returns ErrDiverged with the reason while this node is
// suspended, nil otherwise.
func (s *Store) divergedError() error {
	if r := s.divergence.reason(); r != "" {
		return fmt.Errorf("%w: %s", ErrDiverged, r)
	}
	return nil
}

// digestVote is one member's digest compared with this node's.
type digestVote struct {
	id    string
	voter bool
	agree bool
	index uint64
}

// runDigestCheck compares digests until the store stops.
func (s *Store) runDigestCheck() {
	defer s.wg.Done()
	tick := time.NewTicker(digestCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.ledger.HaltedC():
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		votes, voters := s.compareDigests(ctx)
		cancel()
		s.judgeDigests(votes, voters)
	}
}

// compareDigests asks every other member for its digest and compares it
// with this node's at the same index. It also returns the number of voters.
func (s *Store) compareDigests(ctx context.Context) ([]digestVote, int) {
	f := s.Raft().GetConfiguration()
	if f.Error() != nil {
		return nil, 0
	}
	voters := 0
	var votes []digestVote
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, srv := range f.Configuration().Servers {
		isVoter := srv.Suffrage == raft.Voter
		if isVoter {
			voters++
		}
		if string(srv.ID) == s.cfg.ID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s.peerStatus(ctx, string(srv.Address))
			if err != nil || st.Halted != "" || st.Digest == "" {
				return
			}
			mine, ok := s.ledger.DigestAt(st.DigestIndex)
			if !ok {
				return // not applied here yet, or out of the kept window
			}
			mu.Lock()
			votes = append(votes, digestVote{id: string(srv.ID), voter: isVoter, agree: mine == st.Digest, index: st.DigestIndex})
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(votes, func(i, j int) bool { return votes[i].id < votes[j].id })
	return votes, voters
}

// judgeDigests halts this node when a majority of the voters disagree with
// it, suspends it while a member disagrees and no majority agrees with it,
// and resumes it once a majority does.
func (s *Store) judgeDigests(votes []digestVote, voters int) {
	quorum := voters/2 + 1
	agree, disagree := 1, 0 // this node agrees with itself
	var differ []string
	for _, v := range votes {
		if !v.agree {
			s.divergence.mu.Lock()
			s.divergence.mismatches++
			s.divergence.mu.Unlock()
			differ = append(differ, fmt.Sprintf("%s at index %d", v.id, v.index))
		}
		if !v.voter {
			continue
		}
		if v.agree {
			agree++
		} else {
			disagree++
		}
	}
	switch {
	case voters > 0 && disagree >= quorum:
		reason := fmt.Sprintf("its state's digest differs from a majority of the voters' (%s)", strings.Join(differ, ", "))
		s.logger.Error("Taking this node out of service: its applied state differs from the majority's; replace this member", "differs_from", differ)
		s.ledger.Halt(fmt.Errorf("%w: %s", ledger.ErrHalted, reason))
	case len(differ) > 0 && agree < quorum:
		if s.divergence.set("its state's digest differs from " + strings.Join(differ, ", ") + " and no majority has decided which is right") {
			s.logger.Error("Answering nothing: this node's applied state differs from another member's and no majority decides", "differs_from", differ)
		}
	default:
		if s.divergence.set("") {
			s.logger.Info("A majority of the voters agrees with this node's state again: answering again")
		}
		if len(differ) > 0 {
			s.logger.Warn("A member's applied state differs from the majority's", "differs_from", differ)
		}
	}
}
