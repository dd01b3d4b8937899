package peer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// countFSM counts applied entries. Its snapshot carries the count and a
// padding larger than the checking proxy's buffers, verified on restore.
type countFSM struct {
	mu       sync.Mutex
	count    uint64
	restores int
}

var snapshotPadding = bytes.Repeat([]byte("padding."), 32<<10) // 256 KiB

func (f *countFSM) Apply(*raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	return f.count
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return countSnapshot(f.count), nil
}

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if len(data) != 8+len(snapshotPadding) || !bytes.Equal(data[8:], snapshotPadding) {
		return fmt.Errorf("snapshot of %d bytes is damaged", len(data))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count = binary.BigEndian.Uint64(data)
	f.restores++
	return nil
}

func (f *countFSM) state() (count uint64, restores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count, f.restores
}

type countSnapshot uint64

func (s countSnapshot) Persist(sink raft.SnapshotSink) error {
	data := binary.BigEndian.AppendUint64(nil, uint64(s))
	if _, err := sink.Write(append(data, snapshotPadding...)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

// raftNode is a Raft instance whose transport is an endpoint.
type raftNode struct {
	id    string
	e     *Endpoint
	trans *raft.NetworkTransport
	r     *raft.Raft
	fsm   *countFSM
	// refuse is what the endpoint's RefuseVotes answers; voteChecks counts
	// the vote requests that asked it.
	refuse     atomic.Bool
	voteChecks atomic.Int64
}

// newRaftNode opens the endpoint and transport of id; start runs Raft.
func newRaftNode(n *testNet, id string) *raftNode {
	node := &raftNode{id: id, fsm: &countFSM{}}
	node.e = n.endpoint(id, func(c *Config) {
		c.RefuseVotes = func() bool {
			node.voteChecks.Add(1)
			return node.refuse.Load()
		}
	})
	node.e.Serve()
	node.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: node.e.RaftLayer(), MaxPool: 3, Timeout: 5 * time.Second, Logger: hclog.NewNullLogger(),
	})
	return node
}

func (node *raftNode) server() raft.Server {
	return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(node.id), Address: node.trans.LocalAddr()}
}

// start runs Raft on empty in-memory stores, bootstrapping servers if any.
func (node *raftNode) start(t *testing.T, servers []raft.Server, tune func(*raft.Config)) {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(node.id)
	conf.Logger = hclog.NewNullLogger()
	conf.HeartbeatTimeout = 200 * time.Millisecond
	conf.ElectionTimeout = 200 * time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	conf.CommitTimeout = 10 * time.Millisecond
	if tune != nil {
		tune(conf)
	}
	store := raft.NewInmemStore()
	snapshots := raft.NewInmemSnapshotStore()
	if len(servers) > 0 {
		if err := raft.BootstrapCluster(conf, store, store, snapshots, node.trans, raft.Configuration{Servers: servers}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := raft.NewRaft(conf, node.fsm, store, store, snapshots, node.trans)
	if err != nil {
		t.Fatal(err)
	}
	node.r = r
	t.Cleanup(node.stop)
}

// stop shuts Raft down and closes its transport and endpoint.
func (node *raftNode) stop() {
	node.r.Shutdown().Error()
	node.trans.Close()
}

// waitLeader waits until one of nodes leads and the others follow it.
func waitLeader(t *testing.T, nodes ...*raftNode) *raftNode {
	t.Helper()
	var leader *raftNode
	waitFor(t, 20*time.Second, "a leader that every node follows", func() bool {
		leader = nil
		for _, node := range nodes {
			if node.r.State() == raft.Leader {
				leader = node
			}
		}
		if leader == nil {
			return false
		}
		for _, node := range nodes {
			if _, id := node.r.LeaderWithID(); string(id) != leader.id {
				return false
			}
		}
		return true
	})
	return leader
}

func waitCount(t *testing.T, want uint64, nodes ...*raftNode) {
	t.Helper()
	for _, node := range nodes {
		waitFor(t, 20*time.Second, fmt.Sprintf("%s applies %d entries", node.id, want), func() bool {
			count, _ := node.fsm.state()
			return count == want
		})
	}
}

func TestRaftClusterOverEndpoints(t *testing.T) {
	n := newTestNet(t, true)
	nodes := []*raftNode{newRaftNode(n, "n1"), newRaftNode(n, "n2"), newRaftNode(n, "n3")}
	var servers []raft.Server
	for _, node := range nodes {
		servers = append(servers, node.server())
	}
	for _, node := range nodes {
		node.start(t, servers, nil)
	}

	leader := waitLeader(t, nodes...)
	if err := leader.r.Apply([]byte("buy"), 10*time.Second).Error(); err != nil {
		t.Fatalf("apply on %s: %v", leader.id, err)
	}
	waitCount(t, 1, nodes...)

	var followers []*raftNode
	for _, node := range nodes {
		if node != leader {
			followers = append(followers, node)
		}
	}
	// Both followers refuse votes: without the leader no one can win.
	base := make([]int64, len(followers))
	for i, f := range followers {
		f.refuse.Store(true)
		base[i] = f.voteChecks.Load()
	}
	leader.stop()
	waitFor(t, 20*time.Second, "each follower refuses two vote requests of the other", func() bool {
		for _, f := range followers {
			if f.r.State() == raft.Leader {
				t.Fatalf("%s was elected though every other voter refuses votes", f.id)
			}
		}
		for i, f := range followers {
			if f.voteChecks.Load()-base[i] < 2 {
				return false
			}
		}
		return true
	})
	for _, f := range followers {
		if f.r.State() == raft.Leader {
			t.Fatalf("%s was elected though every other voter refuses votes", f.id)
		}
	}

	// Votes allowed again: one of the two wins and commits.
	for _, f := range followers {
		f.refuse.Store(false)
	}
	next := waitLeader(t, followers...)
	if err := next.r.Apply([]byte("buy"), 10*time.Second).Error(); err != nil {
		t.Fatalf("apply on %s: %v", next.id, err)
	}
	waitCount(t, 2, followers...)
}

func TestInstallSnapshotThroughTheCheckedProxy(t *testing.T) {
	n := newTestNet(t, true)
	tune := func(c *raft.Config) {
		c.SnapshotThreshold = 8
		c.TrailingLogs = 4
	}
	first := newRaftNode(n, "n1")
	first.start(t, []raft.Server{first.server()}, tune)
	waitLeader(t, first)
	const entries = 40
	for i := range entries {
		if err := first.r.Apply([]byte("buy"), 10*time.Second).Error(); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	if err := first.r.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// The entries a new member needs are gone from the log: only a snapshot
	// can bring it up to date.
	if got := first.r.Stats()["last_snapshot_index"]; got == "0" {
		t.Fatal("no snapshot was taken")
	}

	second := newRaftNode(n, "n2")
	second.start(t, nil, tune)
	if err := first.r.AddVoter(raft.ServerID(second.id), second.trans.LocalAddr(), 0, 10*time.Second).Error(); err != nil {
		t.Fatalf("add %s: %v", second.id, err)
	}
	waitCount(t, entries, second)
	if _, restores := second.fsm.state(); restores == 0 {
		t.Fatalf("%s caught up without restoring a snapshot", second.id)
	}
	// It follows from there on: an entry now needs its acknowledgement.
	if err := first.r.Apply([]byte("buy"), 10*time.Second).Error(); err != nil {
		t.Fatalf("apply after the snapshot: %v", err)
	}
	waitCount(t, entries+1, first, second)
}
