package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ErrClockSkew means this leader's clock differs from a majority of the
// members' by more than the bound, or has not been compared with them
// lately: it stamps no purchase and serves no read whose window depends on
// its clock. Nothing was recorded.
var ErrClockSkew = errors.New("the leader's clock disagrees with a majority of the members")

// The leader stamps every purchase with its clock (recorded_at never goes
// back, so a clock that ran ahead would hold every later purchase ahead
// too), and linearizable and lease reads take their window's end from it.
// So before it stamps or answers it compares its clock with the voters':
// each check asks every other voter for its clock over the peer channel and
// allows for half the round trip. The leader's clock is good when, with
// itself, a majority of the voters agree within the bound. A check older
// than clockCheckValid counts as none.
const (
	clockCheckEvery = 500 * time.Millisecond
	clockCheckValid = 3 * time.Second
)

// clockGuard holds the leader's last clock comparison. Between two
// comparisons it also watches the clock itself: the wall clock must advance
// as the monotonic one does, so a jump is caught at the next stamp, not at
// the next comparison.
type clockGuard struct {
	mu        sync.Mutex
	bound     time.Duration
	checkedAt time.Time // monotonic
	wallAt    time.Time // the node's wall clock at checkedAt, no monotonic reading
	term      uint64
	ok        bool
	reason    string
	maxOffset time.Duration
	// handedOver is when leadership was last handed over for skew.
	handedOver time.Time
	// changed is closed and replaced at every check.
	changed chan struct{}
	// recheckNow asks the checker for a comparison at once.
	recheckNow chan struct{}
}

// allowsAt is allows for a stamp taken at now: it also refuses when the
// wall clock moved away from where the monotonic clock says it should be
// since the last comparison.
func (g *clockGuard) allowsAt(term uint64, now time.Time) error {
	if err := g.allows(term); err != nil {
		return err
	}
	g.mu.Lock()
	expected := g.wallAt.Add(time.Since(g.checkedAt))
	bound := g.bound
	g.mu.Unlock()
	if jump := now.Round(0).Sub(expected); jump > bound/2 || jump < -bound/2 {
		return fmt.Errorf("%w: this node's clock jumped by %v since it was compared", ErrClockSkew, jump.Round(time.Millisecond))
	}
	return nil
}

// recheck asks for a comparison now.
func (g *clockGuard) recheck() {
	select {
	case g.recheckNow <- struct{}{}:
	default:
	}
}

// wait returns once the leader of term has compared clocks in it, or after
// timeout, and then says whether it may stamp and answer: a new leader
// compares at once, so a write that reaches it first waits a round trip
// rather than fail.
func (g *clockGuard) wait(term uint64, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		if g.changed == nil {
			g.changed = make(chan struct{})
		}
		checked, changed := g.term == term && !g.checkedAt.IsZero(), g.changed
		g.mu.Unlock()
		if checked {
			return g.allows(term)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return g.allows(term)
		}
	}
}

// allows reports whether the leader of term may stamp and answer.
func (g *clockGuard) allows(term uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.term != term || g.checkedAt.IsZero():
		return fmt.Errorf("%w: not compared yet in this term", ErrClockSkew)
	case time.Since(g.checkedAt) > clockCheckValid:
		return fmt.Errorf("%w: last compared %v ago", ErrClockSkew, time.Since(g.checkedAt).Round(time.Millisecond))
	case !g.ok:
		return fmt.Errorf("%w: %s", ErrClockSkew, g.reason)
	}
	return nil
}

func (g *clockGuard) record(term uint64, wall time.Time, ok bool, reason string, maxOffset time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.checkedAt, g.wallAt = time.Now(), wall.Round(0)
	g.term, g.ok, g.reason, g.maxOffset = term, ok, reason, maxOffset
	if g.changed != nil {
		close(g.changed)
	}
	g.changed = make(chan struct{})
}

func (g *clockGuard) snapshot() (skewed bool, maxOffset time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.ok && !g.checkedAt.IsZero(), g.maxOffset
}

// checkClocks compares this leader's clock with every other voter's and
// records the outcome for term.
func (s *Store) checkClocks(ctx context.Context, term uint64) error {
	f := s.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	var voters []raft.Server
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter && string(srv.ID) != s.cfg.ID {
			voters = append(voters, srv)
		}
	}
	quorum := (len(voters)+1)/2 + 1
	agree := 1 // this node
	var maxOffset time.Duration
	var far []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, srv := range voters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			mine := s.clock.Now()
			st, err := s.peerStatus(ctx, string(srv.Address))
			if err != nil || st.ClockUnixNano == 0 {
				return // unknown: counts as no agreement
			}
			rtt := time.Since(start)
			offset := time.Unix(0, st.ClockUnixNano).Sub(mine.Add(rtt / 2))
			abs := max(offset, -offset)
			mu.Lock()
			defer mu.Unlock()
			maxOffset = max(maxOffset, abs)
			if abs <= s.cfg.MaxClockSkew+rtt/2 {
				agree++
			} else {
				far = append(far, fmt.Sprintf("%s by %v", srv.ID, offset.Round(time.Millisecond)))
			}
		}()
	}
	wg.Wait()
	ok := agree >= quorum
	reason := ""
	if !ok {
		reason = fmt.Sprintf("%d of %d voters agree within %v (others: %v)", agree, len(voters)+1, s.cfg.MaxClockSkew, far)
	}
	s.clocks.record(term, s.clock.Now(), ok, reason, maxOffset)
	return nil
}

// runClockCheck compares clocks while this node leads, and hands leadership
// over when its clock is the odd one out.
func (s *Store) runClockCheck() {
	defer s.wg.Done()
	tick := time.NewTicker(clockCheckEvery)
	defer tick.Stop()
	wasSkewed := false
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		case <-s.clocks.recheckNow:
		}
		term := s.leaderTerm.Load()
		if term == 0 || s.Raft().State() != raft.Leader {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.checkClocks(ctx, term)
		cancel()
		if err != nil {
			continue
		}
		skewedNow := s.clocks.allows(term) != nil
		if skewedNow && !wasSkewed {
			s.logger.Error("This leader's clock disagrees with a majority of the members: it stamps no purchase and hands leadership over",
				"reason", s.clocks.allows(term).Error())
		} else if !skewedNow && wasSkewed {
			s.logger.Info("This leader's clock agrees with a majority of the members again")
		}
		wasSkewed = skewedNow
		if skewedNow {
			s.handOverForSkew()
		}
	}
}

// handOverForSkew moves leadership to another voter, at most every 5 s.
func (s *Store) handOverForSkew() {
	s.clocks.mu.Lock()
	recent := time.Since(s.clocks.handedOver) < 5*time.Second
	if !recent {
		s.clocks.handedOver = time.Now()
	}
	s.clocks.mu.Unlock()
	if recent || s.voters() < 2 {
		return
	}
	s.metrics.clockHandovers.Inc()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.transferLeadership(s.Raft().LeadershipTransfer); err != nil {
			s.logger.Warn("Handing leadership over for clock skew failed", "error", err)
		}
	}()
}
