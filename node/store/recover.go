package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/ledger"
)

// Recovery from a lost quorum. When a majority of the voters lost their
// volumes for good, the members left cannot elect a leader: the empty ones
// refuse to vote until a leader takes them back (bootstrap.go) and the
// survivors are too few. A person then picks the most advanced survivor and
// asks it (POST /cluster/recover) to make itself the only voter.
// hashicorp/raft's RecoverCluster does that on the node's own stores: it
// replays the log into a state machine, writes a snapshot at the last index
// whose configuration is the new one, and compacts the log. Every entry the
// survivor held is then committed, including entries no majority had
// acknowledged; entries a majority without it acknowledged are lost. The
// empty members come back through the ordinary path: added as non-voters,
// promoted once caught up.
//
// RecoverCluster needs Raft stopped. The node shuts its Raft instance down
// and builds a new one in the same process, on the same stores, ledger and
// peer endpoint: the HTTP and admin APIs, the metrics and the store's loops
// go on and read the new instance through Raft(). RecoverCluster leaves the
// state machine it is given unfit for use, so it replays into a scratch
// ledger in the data dir, removed afterwards; the node's own ledger is
// restored from the new snapshot when the new instance starts, as at any
// start.

// ErrRecoveryRefused means a recovery was refused; nothing changed.
var ErrRecoveryRefused = errors.New("recovery refused")

// ErrRecoveryRunning means a recovery is under way on this node (or it is
// stopping): ask again later; a repeated request for the same index is then
// answered as the first.
var ErrRecoveryRunning = errors.New("a recovery is running on this node; ask again")

// RecoveryRefusal is a refused recovery: why, and the node's last log index.
type RecoveryRefusal struct {
	Reason    string
	LastIndex uint64
}

func (r *RecoveryRefusal) Error() string {
	return fmt.Sprintf("%v: %s (last index %d)", ErrRecoveryRefused, r.Reason, r.LastIndex)
}

// Is makes a RecoveryRefusal match ErrRecoveryRefused.
func (r *RecoveryRefusal) Is(target error) bool { return target == ErrRecoveryRefused }

// recoveryLeadTimeout bounds the wait for the recovered node to lead.
const recoveryLeadTimeout = 30 * time.Second

// scratchLedgerDir is where RecoverCluster replays the log, in the data dir.
const scratchLedgerDir = "recovery-ledger"

// RecoverQuorum makes this node the only voter of the configuration when the
// quorum is lost and its last log index is lastIndex, then waits for it to
// lead. Asked again once it leads a configuration it recovered at lastIndex,
// it answers the same.
func (s *Store) RecoverQuorum(ctx context.Context, lastIndex uint64) (adminapi.RecoverResult, error) {
	if err := s.recoverOnce(lastIndex); err != nil {
		return adminapi.RecoverResult{}, err
	}
	return s.awaitRecoveredLead(ctx, lastIndex)
}

func (s *Store) recoverOnce(lastIndex uint64) error {
	if !s.recoverMu.TryLock() {
		return ErrRecoveryRunning
	}
	defer s.recoverMu.Unlock()
	select {
	case <-s.stop:
		return ErrClosed
	default:
	}
	if s.recoveredAt(lastIndex) {
		return nil
	}
	if reason := s.recoveryRefusal(lastIndex); reason != "" {
		return &RecoveryRefusal{Reason: reason, LastIndex: s.Raft().LastIndex()}
	}
	return s.replaceRaft(lastIndex)
}

// recoveredAt reports whether this node already recovered at lastIndex and
// still leads, or will lead, that configuration.
func (s *Store) recoveredAt(lastIndex uint64) bool {
	id := s.currentIdentity()
	if id == nil || id.Recovered == nil || id.Recovered.LastIndex != lastIndex {
		return false
	}
	if s.Raft().State() == raft.Leader {
		return true
	}
	servers, err := s.configuration()
	return err == nil && len(servers) == 1 && string(servers[0].ID) == s.cfg.ID && servers[0].Suffrage == raft.Voter
}

// recoveryRefusal says why this node must not recover at lastIndex, or ""
// when it may.
func (s *Store) recoveryRefusal(lastIndex uint64) string {
	r := s.Raft()
	if err := s.ledger.Halted(); err != nil {
		return "this node's ledger halted: " + err.Error()
	}
	if s.votesRefused.Load() {
		return "this node is a new incarnation waiting to rejoin: it holds no data of its own"
	}
	if !s.hasData() {
		return "this node holds no data beyond the cluster's starting state"
	}
	if _, leader := r.LeaderWithID(); leader != "" {
		return fmt.Sprintf("a leader is known (%s): the quorum is not lost", leader)
	}
	if last := r.LastContact(); !last.IsZero() && time.Since(last) < s.cfg.ElectionTimeout {
		return fmt.Sprintf("this node heard from a leader %v ago: the quorum may not be lost", time.Since(last).Round(time.Millisecond))
	}
	if _, listed, err := s.server(s.cfg.ID); err != nil || !listed {
		return "this node is not in its own configuration: it was removed from the cluster"
	}
	if last := r.LastIndex(); last != lastIndex {
		return fmt.Sprintf("this node's last index is %d, not %d: look at the survivors again", last, lastIndex)
	}
	return ""
}

// replaceRaft records the recovery, shuts Raft down, recovers the stores
// with this node as the only voter and starts a new Raft instance on them.
// Whatever happens, a new instance is started: a failed recovery leaves the
// node as it was.
func (s *Store) replaceRaft(lastIndex uint64) error {
	old := s.Raft()
	servers, err := s.configuration()
	if err != nil {
		return err
	}
	self := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s.cfg.ID), Address: raft.ServerAddress(s.cfg.RaftAdvertise)}
	var replaced []string
	for _, srv := range servers {
		if srv.ID == self.ID {
			self.Address = srv.Address
		}
		if srv.Suffrage == raft.Voter {
			replaced = append(replaced, fmt.Sprintf("%s=%s", srv.ID, srv.Address))
		}
	}
	// Recorded first: a crash after RecoverCluster leaves a data dir that
	// says what happened to it. A failed recovery takes the record back.
	before := s.currentIdentity()
	if before == nil {
		return errors.New("this node's data dir has no identity to record the recovery in")
	}
	after := *before
	after.Recovered = &quorumRecovery{At: time.Now().UTC(), LastIndex: lastIndex, Term: old.CurrentTerm(), Replaced: replaced}
	if err := writeIdentity(s.cfg.DataDir, &after); err != nil {
		return fmt.Errorf("record the recovery: %w", err)
	}
	s.setIdentity(&after)
	s.logger.Warn("Recovering from a lost quorum: stopping Raft to make this node the only voter",
		"last_index", lastIndex, "term", after.Recovered.Term, "replaced_voters", replaced)

	if err := old.Shutdown().Error(); err != nil {
		s.logger.Warn("Shutting Raft down for the recovery failed", "error", err)
	}
	s.transport = s.newTransport()
	recoverErr := s.recoverStores(lastIndex, self)
	if recoverErr != nil {
		if err := writeIdentity(s.cfg.DataDir, before); err != nil {
			s.logger.Error("Taking back the record of a failed recovery failed", "error", err)
		}
		s.setIdentity(before)
	}
	r, err := raft.NewRaft(s.raftConfig(), s.fsm, s.logs, s.logStore, s.snapshots, s.transport)
	if err != nil {
		// Nothing serves Raft in this process any more: a restart starts
		// from the stores, recovered or not.
		s.logger.Error("Starting Raft again after the recovery failed; restart the node", "error", err, "recovery_error", recoverErr)
		return errors.Join(recoverErr, fmt.Errorf("start raft again: %w", err))
	}
	s.running.Store(r)
	if recoverErr != nil {
		s.logger.Warn("The recovery failed; Raft runs again as before", "error", recoverErr)
		return recoverErr
	}
	s.logger.Warn("Recovered from a lost quorum: this node is the only voter; add the other members back through the admin API",
		"last_index", lastIndex, "replaced_voters", replaced)
	return nil
}

// recoverStores runs RecoverCluster on the stopped stores, with a scratch
// ledger as its state machine.
func (s *Store) recoverStores(lastIndex uint64, self raft.Server) error {
	// Raft is stopped: what the stores hold now is what is recovered. A
	// leader heard at the last moment may have moved it.
	if last, err := s.storedLastIndex(); err != nil {
		return err
	} else if last != lastIndex {
		return &RecoveryRefusal{Reason: "this node's last index moved while Raft stopped", LastIndex: last}
	}
	dir := filepath.Join(s.cfg.DataDir, scratchLedgerDir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear the scratch ledger: %w", err)
	}
	scratch, err := ledger.OpenWith(dir, s.logger.With("ledger", "recovery-scratch"),
		ledger.Options{MaxIdempotencyKeys: s.cfg.IdempotencyMaxKeys, MisapplyCents: s.cfg.MisapplyCentsForTests})
	if err != nil {
		return fmt.Errorf("open the scratch ledger: %w", err)
	}
	defer func() {
		scratch.Close()
		if err := os.RemoveAll(dir); err != nil {
			s.logger.Warn("Removing the scratch ledger failed", "dir", dir, "error", err)
		}
	}()
	conf := raft.Configuration{Servers: []raft.Server{self}}
	if err := raft.RecoverCluster(s.raftConfig(), replayFSM{scratch}, s.logs, s.logStore, s.snapshots, s.transport, conf); err != nil {
		return fmt.Errorf("recover the Raft stores: %w", err)
	}
	return nil
}

// storedLastIndex is the last index in the log or the latest snapshot.
func (s *Store) storedLastIndex() (uint64, error) {
	last, err := s.logs.LastIndex()
	if err != nil {
		return 0, fmt.Errorf("read the last log index: %w", err)
	}
	snaps, err := s.snapshots.List()
	if err != nil {
		return 0, fmt.Errorf("list snapshots: %w", err)
	}
	if len(snaps) > 0 && snaps[0].Index > last {
		last = snaps[0].Index
	}
	return last, nil
}

// replayFSM is the scratch ledger RecoverCluster replays the log into. An
// entry that halts the ledger fails the snapshot, and so the recovery,
// before anything is written: a snapshot labelled with the last index must
// hold every entry up to it.
type replayFSM struct{ *ledger.Ledger }

func (f replayFSM) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.Halted(); err != nil {
		return nil, fmt.Errorf("replaying the log: %w", err)
	}
	return f.Ledger.Snapshot()
}

// awaitRecoveredLead waits until this node leads and has committed an entry
// of its term.
func (s *Store) awaitRecoveredLead(ctx context.Context, lastIndex uint64) (adminapi.RecoverResult, error) {
	ctx, cancel := context.WithTimeout(ctx, recoveryLeadTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond) // leadership can also be lost
	defer tick.Stop()
	for {
		r := s.Raft()
		ready, changed := s.leaderReadyTerm()
		if r.State() == raft.Leader && ready == r.CurrentTerm() {
			return adminapi.RecoverResult{Recovered: true, LastIndex: lastIndex, Term: ready}, nil
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-s.stop:
			return adminapi.RecoverResult{}, ErrClosed
		case <-ctx.Done():
			return adminapi.RecoverResult{}, fmt.Errorf("recovered at index %d but not leading yet: %w", lastIndex, ErrNoLeader)
		}
	}
}

// configuration is the latest Raft configuration's servers.
func (s *Store) configuration() ([]raft.Server, error) {
	f := s.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return f.Configuration().Servers, nil
}
