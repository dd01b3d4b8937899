package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/backup"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/peer"
)

// A restore is the cluster's bootstrap with a state: every initial member
// started with --restore-from on an empty data dir writes the backup's
// ledger snapshot into its Raft snapshot store, at the backup's index, with
// the initial cluster as its configuration, and Raft starts from it. Members
// that restore the same backup hold the same state at the same index, so
// they elect a leader as freshly bootstrapped members do.
//
// It is taken exactly where a bootstrap would be (bootstrap.go): only when
// no initial member that answers holds anything beyond that starting state
// and a majority has answered. A member that lost its volume later and
// comes back with the flag still set finds the cluster existing and rejoins
// as a new incarnation instead, catching up from the leader.

// Errors of --restore-from.
var (
	// ErrRestoreRefused means the data dir already holds state that was not
	// started from a backup: a restore never overwrites it.
	ErrRestoreRefused = errors.New("refusing --restore-from")
)

// RestoreNeeded tells, before anything is written to the data dir, what a
// --restore-from means for it: true when it is empty (the backup will be
// checked and used), false when it already holds state started from a backup
// (a restart: the flag has been taken into account), and ErrRestoreRefused
// when it holds other state.
func RestoreNeeded(dataDir string) (bool, error) {
	st, err := inspectDataDir(dataDir)
	if err != nil {
		return false, err
	}
	if st.identity == nil && !st.raftLog && !st.snapshots {
		return true, nil
	}
	if st.identity != nil && st.identity.RestoreFrom != "" && st.raftLog {
		return false, nil
	}
	return false, fmt.Errorf("%w: the data dir %s is not empty and was not started from a backup; "+
		"a restore only starts a new cluster on empty data dirs: give each member an empty one", ErrRestoreRefused, dataDir)
}

// OpenBackup opens a backup file and checks all of it: header, version,
// checksum, and every record of its ledger snapshot, which must agree with
// the manifest. Nothing is written anywhere.
func OpenBackup(path string) (*backup.File, error) {
	f, err := backup.OpenFile(path)
	if err != nil {
		return nil, err
	}
	info, err := ledger.CheckSnapshot(f.Body())
	if err == nil {
		err = matchManifest(f.Manifest, info)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("backup %s: %w", path, err)
	}
	return f, nil
}

// matchManifest checks that a backup's snapshot holds what its manifest
// announced, and some state.
func matchManifest(m backup.Manifest, info ledger.SnapshotInfo) error {
	if info.Index != m.Index || info.Purchases != m.Purchases {
		return fmt.Errorf("%w: the manifest says %d purchases at index %d, the snapshot holds %d at index %d",
			backup.ErrInvalid, m.Purchases, m.Index, info.Purchases, info.Index)
	}
	if info.Index == 0 {
		return fmt.Errorf("%w: the backup holds no applied state (index 0)", backup.ErrInvalid)
	}
	return nil
}

// restoreDecision asks the other initial members, before Raft starts, whether
// the cluster exists. Meanwhile a temporary endpoint on the Raft port answers
// their status calls as a member that holds nothing yet, so members restoring
// together count each other.
func (s *Store) restoreDecision(ctx context.Context) (exists bool, err error) {
	s.peers, err = peer.Listen(peer.Config{
		Bind: s.cfg.RaftBind, Advertise: s.cfg.RaftAdvertise,
		TLS: s.cfg.PeerTLS, NamesID: s.cfg.NamesID, ResolveID: s.addrs.lookup,
		RefuseVotes: func() bool { return true },
		Logger:      s.logger.With("module", "peer"),
	})
	if err != nil {
		return false, err
	}
	defer func() {
		s.peers.Close()
		s.peers = nil
	}()
	s.peers.Handle(peer.MethodStatus, func(context.Context, peer.Caller, []byte) ([]byte, error) {
		return json.Marshal(adminapi.Status{ID: s.cfg.ID, State: "Restoring", Joining: true})
	})
	s.peers.Serve()
	if !s.inInitialCluster() {
		return true, nil
	}
	s.logger.Info("Empty data dir and --restore-from: asking the peers whether the cluster exists before restoring",
		"backup_index", s.cfg.RestoreFrom.Manifest.Index, "backup_purchases", s.cfg.RestoreFrom.Manifest.Purchases)
	return s.clusterExists(ctx.Done())
}

// writeRestoredSnapshot puts the backup's ledger snapshot into Raft's
// snapshot store, at the backup's index, with the initial cluster as the
// configuration. Raft restores the ledger from it when it starts.
func (s *Store) writeRestoredSnapshot(snapshots raft.SnapshotStore) error {
	f := s.cfg.RestoreFrom
	index := f.Manifest.Index
	sink, err := snapshots.Create(raft.SnapshotVersionMax, index, 1,
		raft.Configuration{Servers: s.cfg.InitialCluster}, index, s.transport)
	if err != nil {
		return fmt.Errorf("create the restored snapshot: %w", err)
	}
	if _, err := io.Copy(sink, f.Body()); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write the restored snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("write the restored snapshot: %w", err)
	}
	return nil
}

// recordRestore writes the identity of a data dir started with
// --restore-from; restoredIndex is the backup's index when this node
// restored it, zero when it joined an existing cluster instead.
func (s *Store) recordRestore(restoredIndex uint64, joining bool) error {
	id, err := newIdentity(s.cfg.ID, s.cfg.ClusterID, joining)
	if err != nil {
		return err
	}
	id.RestoreFrom, id.RestoredIndex = s.cfg.RestoreFrom.Checksum, restoredIndex
	if err := writeIdentity(s.cfg.DataDir, id); err != nil {
		return err
	}
	s.setIdentity(id)
	return nil
}

// baseIndex is the index of the state this node started from: the restored
// backup's, or zero for a cluster bootstrapped empty.
func (s *Store) baseIndex() uint64 {
	if id := s.currentIdentity(); id != nil {
		return id.RestoredIndex
	}
	return 0
}
