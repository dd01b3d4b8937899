package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/buytracker/buytracker/node/internal/atomicfile"
)

// ErrUntrustedDataDir means the data dir cannot be used as it is: it belongs
// to another node or cluster, or part of its Raft state is gone. The node
// must not start on it.
var ErrUntrustedDataDir = errors.New("refusing the data dir")

// identityFile records whose a data dir is. It is written once when the dir
// first holds Raft state, and updated when a new incarnation becomes a
// member.
const identityFile = "identity.json"

// dataIdentity is the content of identityFile.
type dataIdentity struct {
	// ClusterID is the cluster this data belongs to (--cluster-id; the
	// BuyTracker's UID under the operator); empty when none was given.
	ClusterID string `json:"cluster_id,omitempty"`
	// NodeID is the server ID the data belongs to.
	NodeID string `json:"node_id"`
	// Incarnation is random and new each time the node starts on an
	// empty data dir, so peers and the operator can tell a member that came
	// back empty from one that restarted.
	Incarnation string `json:"incarnation"`
	// Joining is true from the moment an empty node learns the cluster
	// already exists until it sees itself added back as a non-voter: until
	// then it must not vote, since it forgot every vote it cast.
	Joining bool `json:"joining,omitempty"`
	// RestoreFrom is the checksum of the backup the node was started with
	// (--restore-from) on this data dir, so a restart with the same flag
	// is not taken for a restore over existing state. RestoredIndex is
	// the backup's index when this node restored it as the cluster's
	// starting state: up to it the node holds nothing beyond that state.
	RestoreFrom   string    `json:"restore_from,omitempty"`
	RestoredIndex uint64    `json:"restored_index,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	// Recovered is the latest recovery from a lost quorum on this data
	// dir (recover.go).
	Recovered *quorumRecovery `json:"recovered,omitempty"`
}

// quorumRecovery records a recovery from a lost quorum: this node made
// itself the only voter, keeping its log up to LastIndex.
type quorumRecovery struct {
	At        time.Time `json:"at"`
	LastIndex uint64    `json:"last_index"`
	// Term is the term the node was in when it recovered.
	Term uint64 `json:"term"`
	// Replaced is the configuration it replaced, "id=address" per voter,
	// for whoever investigates later.
	Replaced []string `json:"replaced"`
}

// dataDirState is what a node finds in its data dir at start.
type dataDirState struct {
	identity *dataIdentity // nil when there is no identity file
	// raftLog is true when raft.db (the log and stable store) exists.
	raftLog bool
	// snapshots is true when a snapshot exists.
	snapshots bool
}

// inspectDataDir reads what the data dir holds, before any store opens (and
// so creates) a file.
func inspectDataDir(dataDir string) (dataDirState, error) {
	var st dataDirState
	raw, err := os.ReadFile(filepath.Join(dataDir, identityFile))
	switch {
	case err == nil:
		var id dataIdentity
		if err := json.Unmarshal(raw, &id); err != nil || id.NodeID == "" {
			return st, fmt.Errorf("%w: %s is not a valid identity file: %v", ErrUntrustedDataDir, filepath.Join(dataDir, identityFile), err)
		}
		st.identity = &id
	case !errors.Is(err, os.ErrNotExist):
		return st, fmt.Errorf("read identity: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "raft", "raft.db")); err == nil {
		st.raftLog = true
	} else if !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("inspect raft.db: %w", err)
	}
	snaps, err := os.ReadDir(filepath.Join(dataDir, "raft", "snapshots"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("inspect snapshots: %w", err)
	}
	st.snapshots = len(snaps) > 0
	return st, nil
}

// check refuses a data dir of another node or cluster, or one whose log and
// stable store are gone while other state remains: such a node would start
// with its term and votes forgotten and could help elect a stale leader.
func (d dataDirState) check(dataDir, nodeID, clusterID string) error {
	if id := d.identity; id != nil {
		if id.NodeID != nodeID {
			return fmt.Errorf("%w: %s belongs to node %q, not %q", ErrUntrustedDataDir, dataDir, id.NodeID, nodeID)
		}
		if id.ClusterID != "" && clusterID != "" && id.ClusterID != clusterID {
			return fmt.Errorf("%w: %s belongs to cluster %q, not %q", ErrUntrustedDataDir, dataDir, id.ClusterID, clusterID)
		}
	}
	if !d.raftLog && (d.identity != nil || d.snapshots) {
		return fmt.Errorf("%w: %s holds this node's identity or snapshots but raft/raft.db is missing: "+
			"its log, term and votes are lost, so it cannot rejoin safely. Move the whole data dir away "+
			"and start again on an empty one: the node then rejoins as a new member", ErrUntrustedDataDir, dataDir)
	}
	return nil
}

func newIdentity(nodeID, clusterID string, joining bool) (*dataIdentity, error) {
	buf := make([]byte, 8)
	if _, err := rand.Read(buf); err != nil {
		return nil, fmt.Errorf("generate incarnation: %w", err)
	}
	return &dataIdentity{
		ClusterID: clusterID, NodeID: nodeID, Incarnation: hex.EncodeToString(buf),
		Joining: joining, CreatedAt: time.Now().UTC(),
	}, nil
}

// writeIdentity replaces the identity file durably: temp file, fsync,
// rename, fsync of the dir.
func writeIdentity(dataDir string, id *dataIdentity) error {
	raw, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(dataDir, identityFile, append(raw, '\n')); err != nil {
		return fmt.Errorf("record the data dir's identity: %w", err)
	}
	return atomicfile.SyncDir(dataDir)
}
