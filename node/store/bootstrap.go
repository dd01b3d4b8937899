package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/peer"
)

// A cluster is bootstrapped once in its life. A node that starts on an
// empty data dir does not know whether the cluster is being created or it
// lost its volume, so it asks its peers before it takes part in anything:
//
//   - An initial member bootstraps only when no initial member that answers
//     holds anything beyond the bootstrap configuration (a leader writes an
//     entry as soon as it is elected, so "nothing beyond" means no leader
//     ever served), and enough have answered that, with this node, they are
//     a majority of the initial members. One lost volume can then never be
//     mistaken for creation: the members that kept their data are a
//     majority, and one of them must answer before anything happens. (When
//     a majority of volumes is lost at once the quorum is lost too; that
//     needs a person, see docs/node.md.) Until then it waits.
//   - Peers alone cannot tell creation from a lost majority of volumes
//     while the members that kept their data are down: the empty members
//     would answer each other "nothing here" and create a new, empty
//     cluster. So the node also reads --cluster-created-file (written once
//     the cluster was first available: a ConfigMap under the operator);
//     while it says the cluster was created the node never bootstraps.
//   - Otherwise the cluster exists: the node is a new incarnation of a
//     member. It refuses every vote request (its forgotten votes could elect
//     a stale leader: hashicorp/raft grants votes from a node with an empty
//     configuration), asks the leader to count it as a non-voter again
//     (MethodRejoin; the leader demotes its old voter entry), and may vote
//     again once its log holds that configuration change. The leader's
//     promoter then makes it a voter when it has caught up.

// errNotAMember answers a rejoin request from a node the configuration does
// not list: new members are added through the admin API.
var errNotAMember = errors.New("not a member of the cluster: add it through the admin API")

// startFresh decides, in the background, how a node that found its data dir
// empty takes part. Votes are refused until it has decided.
func (s *Store) startFresh() {
	defer s.wg.Done()
	// With a backup to restore, the decision was taken before Raft started
	// (restore.go): here the cluster exists, and an empty bootstrap would
	// lose the backup's state.
	if s.inInitialCluster() && s.cfg.RestoreFrom == nil {
		exists, err := s.clusterExists(s.stop)
		if err != nil {
			return // stopping
		}
		if !exists {
			if err := s.bootstrap(); err != nil {
				s.logger.Error("Bootstrapping the cluster failed", "error", err)
			}
			return
		}
	}
	s.join()
}

// clusterExists asks the other initial members whether they hold data
// beyond the bootstrap configuration, until one says yes or enough have said
// no to make a majority with this node.
func (s *Store) clusterExists(done <-chan struct{}) (bool, error) {
	var others []raft.Server
	for _, srv := range s.cfg.InitialCluster {
		if string(srv.ID) != s.cfg.ID {
			others = append(others, srv)
		}
	}
	lastLog := time.Time{}
	for {
		created, why := s.clusterCreated()
		if created {
			s.logger.Warn("The cluster was created: an empty data dir never bootstraps it again; waiting to rejoin as a new incarnation",
				"because", why)
			return true, nil
		}
		var missing []string
		for _, srv := range others {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := s.peerStatus(ctx, string(srv.Address))
			cancel()
			if err != nil {
				missing = append(missing, string(srv.ID))
				continue
			}
			if st.HasData {
				s.logger.Info("The cluster exists: a peer holds its data; joining as a new incarnation",
					"peer", srv.ID, "peer_last_index", st.LastIndex)
				return true, nil
			}
		}
		empty := 1 + len(others) - len(missing) // this node and those that said no
		if len(missing) == 0 || empty > len(s.cfg.InitialCluster)/2 {
			return false, nil
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			sort.Strings(missing)
			s.logger.Info("Empty data dir: waiting for every initial member to say whether the cluster exists",
				"waiting_for", strings.Join(missing, ","), "cluster_created_file", why)
		}
		select {
		case <-done:
			return false, ErrClosed
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// clusterCreated reads --cluster-created-file: the cluster was created when
// the file holds the cluster's ID (or "true"); why says what the file said.
// A missing file, or one naming
// another cluster (a ConfigMap of a deleted BuyTracker of the same name not
// yet collected), says nothing; a file that cannot be read counts as
// created: waiting is safe, bootstrapping twice is not.
func (s *Store) clusterCreated() (bool, string) {
	path := s.cfg.ClusterCreatedFile
	if path == "" {
		return false, ""
	}
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, ""
	case err != nil:
		return true, fmt.Sprintf("cannot read %s (%v): taking the cluster as created", path, err)
	}
	v := strings.TrimSpace(string(raw))
	if v == "true" || (v != "" && v == s.cfg.ClusterID) {
		return true, fmt.Sprintf("%s says so", path)
	}
	if v != "" {
		return false, fmt.Sprintf("%s names another cluster (%q): ignored", path, v)
	}
	return false, ""
}

// bootstrap creates the cluster with the initial configuration; every
// initial member computes the same one.
func (s *Store) bootstrap() error {
	id, err := newIdentity(s.cfg.ID, s.cfg.ClusterID, false)
	if err != nil {
		return err
	}
	if err := writeIdentity(s.cfg.DataDir, id); err != nil {
		return err
	}
	s.setIdentity(id)
	s.logger.Info("Bootstrapping the cluster", "servers", len(s.cfg.InitialCluster), "incarnation", id.Incarnation)
	err = s.Raft().BootstrapCluster(raft.Configuration{Servers: s.cfg.InitialCluster}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.votesRefused.Store(false)
	return nil
}

// join runs a new incarnation until it may vote: it asks the leader to
// count it as a non-voter, then waits until its log holds that change.
func (s *Store) join() {
	id := s.currentIdentity()
	if id == nil || !id.Joining {
		var err error
		if id, err = newIdentity(s.cfg.ID, s.cfg.ClusterID, true); err == nil {
			if s.cfg.RestoreFrom != nil {
				// Started with --restore-from, it found the cluster there.
				id.RestoreFrom = s.cfg.RestoreFrom.Checksum
			}
			err = writeIdentity(s.cfg.DataDir, id)
		}
		if err != nil {
			s.logger.Error("Recording the new incarnation failed", "error", err)
			return
		}
		s.setIdentity(id)
	}
	s.votesRefused.Store(true)
	s.logger.Info("Waiting to be a member again: refusing votes until then", "incarnation", id.Incarnation)
	var joinIndex uint64
	lastLog := time.Time{}
	for {
		if joinIndex == 0 {
			s.metrics.rejoinAttempts.Inc()
			index, err := s.askToRejoin(id.Incarnation)
			if err == nil {
				joinIndex = index
			} else if time.Since(lastLog) > 10*time.Second {
				lastLog = time.Now()
				s.logger.Info("Asking the leader to take this node back failed; retrying", "error", err)
			}
		}
		if joinIndex > 0 && s.Raft().LastIndex() >= joinIndex && s.listedAs(raft.Nonvoter) {
			done := *id
			done.Joining = false
			if err := writeIdentity(s.cfg.DataDir, &done); err != nil {
				s.logger.Error("Recording the rejoin failed; retrying", "error", err)
			} else {
				s.setIdentity(&done)
				s.votesRefused.Store(false)
				s.logger.Info("Rejoined the cluster as a new incarnation", "incarnation", id.Incarnation, "index", joinIndex)
				return
			}
		}
		select {
		case <-s.stop:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// askToRejoin finds the leader and asks it to count this node as a
// non-voter; it returns the index of that configuration.
func (s *Store) askToRejoin(incarnation string) (uint64, error) {
	leaderAddr := s.findLeaderAddress()
	if leaderAddr == "" {
		return 0, ErrNoLeader
	}
	payload, err := json.Marshal(rejoinRequest{ID: s.cfg.ID, Address: s.cfg.RaftAdvertise, Incarnation: incarnation})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerCallTimeout+membershipTimeout)
	defer cancel()
	raw, err := s.peers.Call(ctx, leaderAddr, peer.MethodRejoin, payload, 0)
	if err != nil {
		return 0, err
	}
	var ans rejoinAnswer
	if err := json.Unmarshal(raw, &ans); err != nil || ans.Index == 0 {
		return 0, fmt.Errorf("malformed rejoin answer %q: %v", raw, err)
	}
	return ans.Index, nil
}

// findLeaderAddress returns the leader's Raft address as this node knows it,
// or as a peer it knows of reports it.
func (s *Store) findLeaderAddress() string {
	if _, addr, ok := s.leaderAddress(); ok {
		return addr
	}
	s.addrs.mu.RLock()
	var peers []string
	for id, addr := range s.addrs.byID {
		if id != s.cfg.ID {
			peers = append(peers, addr)
		}
	}
	s.addrs.mu.RUnlock()
	for _, addr := range peers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := s.peerStatus(ctx, addr)
		cancel()
		if err == nil && st.Leader != "" && st.LeaderAddress != "" {
			return st.LeaderAddress
		}
	}
	return ""
}

// listedAs reports whether the latest configuration lists this node with
// the given suffrage.
func (s *Store) listedAs(suffrage raft.ServerSuffrage) bool {
	srv, ok, err := s.server(s.cfg.ID)
	return err == nil && ok && srv.Suffrage == suffrage
}

// rejoin is the leader's side of MethodRejoin: a member that came back
// empty becomes a non-voter until it has caught up. It answers the index of
// the configuration that lists it so.
func (s *Store) rejoin(req rejoinRequest) (uint64, error) {
	if s.Raft().State() != raft.Leader {
		return 0, s.notLeaderError()
	}
	srv, ok, err := s.server(req.ID)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w: %s", errNotAMember, req.ID)
	}
	var f raft.IndexFuture
	switch {
	case srv.Suffrage == raft.Voter:
		f = s.Raft().DemoteVoter(srv.ID, 0, membershipTimeout)
	case string(srv.Address) != req.Address && req.Address != "":
		f = s.Raft().AddNonvoter(srv.ID, raft.ServerAddress(req.Address), 0, membershipTimeout)
	default:
		// Already a non-voter: the configuration that says so is in the
		// log at or below its last index (GetConfiguration's future
		// carries no index).
		return s.Raft().LastIndex(), nil
	}
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("take %s back as a non-voter: %w", req.ID, s.mapRaftError(err))
	}
	s.logger.Warn("A member came back with an empty data dir: it is a non-voter until it has caught up",
		"member", req.ID, "incarnation", req.Incarnation, "index", f.Index())
	s.metrics.rejoins.Inc()
	return f.Index(), nil
}

func (s *Store) setIdentity(id *dataIdentity) {
	s.identityMu.Lock()
	s.identity = id
	s.identityMu.Unlock()
}

func (s *Store) currentIdentity() *dataIdentity {
	s.identityMu.Lock()
	defer s.identityMu.Unlock()
	return s.identity
}
