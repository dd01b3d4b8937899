package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/adminapi"
)

// membershipTimeout bounds one configuration change.
const membershipTimeout = 10 * time.Second

// Cluster describes the membership as this node sees it, from its own
// knowledge only: it asks no member, so a slow or frozen member never
// holds the answer up. Only this node's own member carries a last index
// (its applied index); hashicorp/raft keeps the leader's replication
// progress per follower to itself, and each member's GET /status gives it.
func (s *Store) Cluster() (*adminapi.Cluster, error) {
	f := s.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	_, leaderID := s.Raft().LeaderWithID()
	out := &adminapi.Cluster{
		ServedBy:     s.cfg.ID,
		Leader:       string(leaderID),
		Term:         s.Raft().CurrentTerm(),
		CommitIndex:  s.Raft().CommitIndex(),
		AppliedIndex: s.ledger.AppliedIndex(),
	}
	servers := f.Configuration().Servers
	index, committed := s.configurationIndex(servers)
	out.ConfigurationIndex, out.ConfigurationPending = index, !committed
	out.Members = make([]adminapi.Member, len(servers))
	for i, srv := range servers {
		m := &out.Members[i]
		m.ID, m.Address = string(srv.ID), string(srv.Address)
		m.Suffrage = adminapi.Nonvoter
		if srv.Suffrage == raft.Voter {
			m.Suffrage = adminapi.Voter
		}
		m.Leader = srv.ID == leaderID
		if info, ok := s.ledger.Node(m.ID); ok {
			m.HTTPURL, m.AdminURL = info.HTTPURL, info.AdminURL
		}
		if m.ID == s.cfg.ID {
			m.LastIndex = &out.AppliedIndex
		}
	}
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].ID < out.Members[j].ID })
	return out, nil
}

// Status is this node's own Raft status.
func (s *Store) Status() adminapi.Status {
	leaderAddr, leaderID := s.Raft().LeaderWithID()
	st := adminapi.Status{
		ID:            s.cfg.ID,
		State:         s.Raft().State().String(),
		Leader:        string(leaderID),
		LeaderAddress: string(leaderAddr),
		Term:          s.Raft().CurrentTerm(),
		LastIndex:     s.Raft().LastIndex(),
		CommitIndex:   s.Raft().CommitIndex(),
		AppliedIndex:  s.ledger.AppliedIndex(),
		Joining:       s.votesRefused.Load(),
	}
	st.HasData = s.hasData()
	if id := s.currentIdentity(); id != nil {
		st.ClusterID, st.Incarnation = id.ClusterID, id.Incarnation
		if id.Recovered != nil {
			st.RecoveredIndex = id.Recovered.LastIndex
		}
	}
	st.ClockUnixNano = s.clock.Now().UnixNano()
	if s.Raft().State() == raft.Leader {
		skewed, offset := s.clocks.snapshot()
		st.ClockSkewed, st.MaxClockOffsetSeconds = skewed, offset.Seconds()
	}
	// Disk space, as last measured.
	st.DiskFreeBytes, st.DiskTotalBytes, st.DiskPressure = s.disk.usage()
	st.DigestIndex, st.Digest = s.ledger.Digest()
	st.Diverged = s.divergence.reason()
	if err := s.ledger.Halted(); err != nil {
		st.Halted = err.Error()
	}
	return st
}

// hasData reports whether this node holds anything beyond the bootstrap
// configuration (index 1) or the restored backup's state: then a leader
// served, and the cluster exists.
func (s *Store) hasData() bool {
	base := s.baseIndex()
	return s.Raft().LastIndex() > max(1, base) || s.lastSnapshotIndex() > base
}

func (s *Store) server(id string) (raft.Server, bool, error) {
	f := s.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Server{}, false, fmt.Errorf("read configuration: %w", err)
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == id {
			return srv, true, nil
		}
	}
	return raft.Server{}, false, nil
}

// AddMember adds a server as a non-voter; the promoter makes it a voter once
// it has caught up. A member already present at the same address is left as
// it is. Only the leader changes membership: others answer ErrNotLeader.
func (s *Store) AddMember(id, address string) (uint64, error) {
	if s.Raft().State() != raft.Leader {
		return 0, s.notLeaderError()
	}
	srv, ok, err := s.server(id)
	if err != nil {
		return 0, err
	}
	if ok && string(srv.Address) == address {
		return 0, nil
	}
	s.addrs.learn([]raft.Server{{ID: raft.ServerID(id), Address: raft.ServerAddress(address)}})
	f := s.Raft().AddNonvoter(raft.ServerID(id), raft.ServerAddress(address), 0, membershipTimeout)
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("add %s as non-voter: %w", id, s.mapRaftError(err))
	}
	s.logger.Info("Added member as non-voter", "member", id, "address", address, "index", f.Index())
	return f.Index(), nil
}

// RemoveMember removes a server; removing an absent one changes nothing.
func (s *Store) RemoveMember(id string) (uint64, error) {
	if s.Raft().State() != raft.Leader {
		return 0, s.notLeaderError()
	}
	_, ok, err := s.server(id)
	if err != nil || !ok {
		return 0, err
	}
	f := s.Raft().RemoveServer(raft.ServerID(id), 0, membershipTimeout)
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("remove %s: %w", id, s.mapRaftError(err))
	}
	s.logger.Info("Removed member", "member", id, "index", f.Index())
	return f.Index(), nil
}

// TransferLeadership hands leadership to target, or to the most up-to-date
// voter when target is empty. When target already leads it does nothing.
func (s *Store) TransferLeadership(target string) error {
	_, leaderID := s.Raft().LeaderWithID()
	if target != "" && string(leaderID) == target {
		return nil
	}
	if s.Raft().State() != raft.Leader {
		return s.notLeaderError()
	}
	start := s.Raft().LeadershipTransfer
	if target != "" {
		srv, ok, err := s.server(target)
		if err != nil {
			return err
		}
		if !ok || srv.Suffrage != raft.Voter {
			return fmt.Errorf("%w: %s is not a voter", ErrInvalidTarget, target)
		}
		start = func() raft.Future { return s.Raft().LeadershipTransferToServer(srv.ID, srv.Address) }
	}
	if err := s.transferLeadership(start); err != nil {
		if mapped := s.mapRaftError(err); mapped != err {
			return fmt.Errorf("transfer leadership: %w", mapped)
		}
		// Typically the target did not catch up within an election
		// timeout; the caller may simply ask again.
		return fmt.Errorf("%w: %v", ErrTransferFailed, err)
	}
	s.logger.Info("Transferred leadership", "target", target)
	return nil
}

// Leadership transfer errors.
var (
	// ErrInvalidTarget is returned for a transfer to a non-voter.
	ErrInvalidTarget = errors.New("invalid leadership transfer target")
	// ErrTransferFailed is returned when a transfer did not complete; it
	// is safe to ask again.
	ErrTransferFailed = errors.New("leadership transfer did not complete")
)

func (s *Store) mapRaftError(err error) error {
	switch err {
	case raft.ErrNotLeader, raft.ErrLeadershipLost:
		return fmt.Errorf("%w: %v", s.notLeaderError(), err)
	}
	return err
}

// Snapshot makes this node take a Raft snapshot now and compact its log.
// It answers the snapshot's last index; with nothing new since the last
// snapshot it answers that snapshot's index.
func (s *Store) Snapshot() (uint64, error) {
	f := s.Raft().Snapshot()
	err := f.Error()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return s.lastSnapshotIndex(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("take snapshot: %w", err)
	}
	meta, reader, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("open new snapshot: %w", err)
	}
	reader.Close()
	return meta.Index, nil
}

func (s *Store) lastSnapshotIndex() uint64 {
	var idx uint64
	fmt.Sscan(s.Raft().Stats()["last_snapshot_index"], &idx)
	return idx
}

// runPromoter makes caught-up non-voters voters, one per pass, while this
// node leads.
func (s *Store) runPromoter() {
	defer s.wg.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		if s.Raft().State() != raft.Leader {
			continue
		}
		if err := s.promoteOne(); err != nil {
			s.logger.Warn("Promoting a non-voter failed", "error", err)
		}
	}
}

// promoteLag is how far behind the leader's commit index a non-voter may be
// and still count as caught up.
const promoteLag = 256

func (s *Store) promoteOne() error {
	f := s.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage != raft.Nonvoter {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := s.peerStatus(ctx, string(srv.Address))
		cancel()
		if err != nil {
			continue
		}
		// A new incarnation votes only once its log holds the change that
		// took it back; until then it says it is joining.
		if st.Joining || st.AppliedIndex+promoteLag < s.Raft().CommitIndex() {
			continue
		}
		af := s.Raft().AddVoter(srv.ID, srv.Address, f.Index(), membershipTimeout)
		if err := af.Error(); err != nil {
			return fmt.Errorf("promote %s: %w", srv.ID, err)
		}
		s.logger.Info("Promoted caught-up member to voter", "member", srv.ID, "applied_index", st.AppliedIndex)
		s.metrics.promotions.Inc()
		return nil
	}
	return nil
}
