// Package store owns a node's Raft instance and its ledger. It exposes the
// domain operations the HTTP and admin APIs need (Buy, Stats, Records,
// membership) and hides Raft behind them: group commit for writes, ReadIndex
// for linearizable reads, node address publication and the promotion of
// caught-up non-voters.
package store

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/buytracker/buytracker/node/backup"
	"github.com/buytracker/buytracker/node/clock"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/peer"
)

// Errors the APIs map to HTTP answers.
var (
	// ErrNotLeader means the request must go to the leader; nothing was done.
	ErrNotLeader = errors.New("this node is not the leader")
	// ErrNoLeader means no leader is known right now; nothing was done.
	ErrNoLeader = errors.New("no leader is known")
	// ErrOutcomeUnknown means a write was handed to Raft but its commit was
	// not confirmed in time: it may or may not be recorded.
	ErrOutcomeUnknown = errors.New("commit was not confirmed in time; the outcome is unknown")
	// ErrOverloaded means the write queue is full; nothing was done.
	ErrOverloaded = errors.New("write queue is full")
	// ErrClosed means the store is shutting down; nothing was done.
	ErrClosed = errors.New("store is shutting down")
	// ErrHalted means this node's ledger halted on a log entry that failed
	// its checks: the node serves no reads or writes until it is replaced.
	ErrHalted = errors.New("this node halted on a corrupt log entry and is out of service")
)

// Config configures a Store.
type Config struct {
	// ID is the Raft server ID.
	ID string
	// DataDir holds the Raft log, stable store, snapshots and records.
	DataDir string
	// RaftBind is the address the Raft transport listens on;
	// RaftAdvertise is the address peers dial (may be a DNS name).
	RaftBind, RaftAdvertise string
	// HTTPURL and AdminURL are this node's advertised client and admin
	// URLs, published into the replicated state.
	HTTPURL, AdminURL string
	// ClusterID names the cluster (the BuyTracker's UID under the
	// operator); recorded in the data dir, which then refuses another.
	ClusterID string
	// InitialCluster is the bootstrap configuration. A node that starts on
	// an empty data dir and is part of it bootstraps the cluster only when
	// every other initial member says it holds nothing yet; otherwise it
	// comes back as a new incarnation (bootstrap.go).
	InitialCluster []raft.Server
	// ClusterCreatedFile, when it exists and holds ClusterID (or "true"),
	// says the cluster was created: a node that finds its data dir empty
	// then never bootstraps (nor restores), whatever its peers answer; it
	// waits to rejoin (bootstrap.go). Under the operator it is a key of a
	// ConfigMap written once the cluster was first Available.
	ClusterCreatedFile string
	// PeerTLS, when set, makes all member-to-member traffic mutual TLS;
	// NamesID tells whether a certificate names a server ID.
	PeerTLS peer.Identity
	NamesID func(cert *x509.Certificate, id string) bool

	HeartbeatTimeout  time.Duration
	ElectionTimeout   time.Duration
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// MaxBatch bounds the purchases per Raft entry; MaxInflight bounds the
	// entries in flight (and a follower's forwarded batches). Zero picks the
	// defaults. Fewer entries in flight make larger ones: on two shared
	// cores, 2 sustained about 7 % more purchases than 4, and 8 fewer
	// (docs/benchmarks.md).
	MaxBatch, MaxInflight int

	// MisapplyCentsForTests makes the ledger store every amount this much
	// off (ledger.Options.MisapplyCents): only test builds set it.
	MisapplyCentsForTests int64
	// WrapLogStoreForTests, when set, wraps the Raft log store under the
	// timing and the cache: test builds inject disk faults there
	// (node/testhook).
	WrapLogStoreForTests func(raft.LogStore) raft.LogStore
	// ApplyDelayForTests, when set, is waited before each batch the state
	// machine applies: test builds make a node's ledger lag its commit
	// index with it (node/testhook).
	ApplyDelayForTests func() time.Duration

	// Clock is the node's wall clock (default: the system's); MaxClockSkew
	// bounds how far the leader's may differ from a majority of the
	// voters' before it stops stamping purchases (default 1 s).
	Clock        clock.Clock
	MaxClockSkew time.Duration

	// MinFreeDisk is the free-space watermark of the data dir's file
	// system, in bytes: below it new purchases answer ErrDiskFull. Zero
	// sets no watermark (a write that fails for lack of space still puts
	// the node under pressure).
	MinFreeDisk uint64
	// IdempotencyMaxKeys bounds the Idempotency-Keys remembered; the
	// oldest by log position go first. Zero picks the ledger's default.
	// Every member must use the same value (see ledger.Options).
	IdempotencyMaxKeys int
	// LogCacheBytes bounds the data of the recent log entries kept in
	// memory; zero picks 32 MiB.
	LogCacheBytes int
	// RestoreFrom, when set on an empty data dir, is a checked backup
	// (OpenBackup) the cluster starts from instead of an empty state
	// (restore.go).
	RestoreFrom *backup.File

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = time.Second
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = time.Second
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 2 * time.Minute
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.Clock == nil {
		c.Clock = clock.System()
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = time.Second
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1024
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 2
	}
	if c.LogCacheBytes == 0 {
		c.LogCacheBytes = 32 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
}

// logCacheEntries is how many recent log entries are kept in memory.
const logCacheEntries = 1024

// Store is one node: Raft, its stores, and the ledger it applies to.
type Store struct {
	cfg    Config
	logger *slog.Logger
	// running is the Raft instance; a recovery from a lost quorum replaces
	// it (recover.go), so it is read through Raft().
	running atomic.Pointer[raft.Raft]
	ledger  *ledger.Ledger
	// fsm, logStore, logs and snapshots outlive a Raft instance: each new
	// one is built on them. transport is the current instance's.
	fsm       *instrumentedFSM
	logStore  *raftboltdb.BoltStore
	logs      raft.LogStore
	snapshots raft.SnapshotStore
	transport *raft.NetworkTransport
	metrics   *storeMetrics
	// leaderNotify is every Raft instance's NotifyCh.
	leaderNotify chan bool
	// recoverMu is held while the Raft instance is replaced, and by what
	// shuts it down, so that nothing stops an instance being replaced.
	recoverMu sync.Mutex
	// peers is the member-to-member endpoint on the Raft port; addrs maps
	// members' Raft addresses to their IDs for it.
	peers *peer.Endpoint
	addrs *addressBook

	// identity is whose the data dir is; votesRefused is true while this
	// node must not vote (an empty node that has not yet rejoined).
	// clock stamps purchases and ends read windows; clocks is the leader's
	// last comparison of it with the voters'.
	clock  clock.Clock
	clocks clockGuard
	// divergence is what the last comparison of digests with the other
	// members found.
	divergence divergence

	identityMu   sync.Mutex
	identity     *dataIdentity
	votesRefused atomic.Bool
	// startedAt is when this process opened the store (monotonic): it
	// refuses votes for a heartbeat timeout after it (refuseVotes).
	startedAt time.Time
	// lease lets the leader serve lease reads without a quorum round
	// trip, for a while after one.
	lease    readLease
	disk     *diskSpace
	logCache *logCache
	logRetry *retryingLogStore

	buys    chan *pendingBuy
	batches chan inflightBatch
	// forwardQueue and forwardSlots batch a follower's purchases on their
	// way to the leader.
	forwardQueue chan *pendingBuy
	forwardSlots chan struct{}
	slots        chan struct{}
	reads        chan *pendingRead
	// followerReads wait for a read index asked from the leader.
	followerReads chan *pendingRead

	// leaderReady is the term in which this node, as leader, has applied
	// an entry of its own; before that its state may miss committed entries
	// of earlier terms, so it serves no linearizable or lease read.
	readyMu    sync.Mutex
	readyTerm  uint64
	readyCh    chan struct{} // closed when readyTerm changes
	leaderTerm atomic.Uint64 // term of the latest leadership, 0 when follower

	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

// Open starts a node: opens its stores, starts Raft, and bootstraps when
// it has no state and is part of the initial cluster.
func Open(cfg Config) (*Store, error) { return OpenContext(context.Background(), cfg) }

// OpenContext is Open; ctx bounds only the wait, before Raft starts, of a
// node restoring a backup for its peers to say whether the cluster exists.
func OpenContext(ctx context.Context, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if cfg.ID == "" {
		return nil, errors.New("store: an ID is required")
	}
	if cfg.PeerTLS != nil && cfg.NamesID == nil {
		return nil, errors.New("store: NamesID is required with PeerTLS")
	}
	dirState, err := inspectDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if err := dirState.check(cfg.DataDir, cfg.ID, cfg.ClusterID); err != nil {
		return nil, err
	}
	fresh := dirState.identity == nil && !dirState.raftLog && !dirState.snapshots
	if cfg.RestoreFrom != nil && !fresh {
		if dirState.identity == nil || dirState.identity.RestoreFrom == "" {
			return nil, fmt.Errorf("%w: the data dir %s is not empty and was not started from a backup", ErrRestoreRefused, cfg.DataDir)
		}
		cfg.RestoreFrom = nil // a restart: the backup was taken into account
	}
	raftDir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return nil, fmt.Errorf("create raft dir: %w", err)
	}
	s := &Store{
		cfg:           cfg,
		startedAt:     time.Now(),
		logger:        cfg.Logger,
		buys:          make(chan *pendingBuy, 16*cfg.MaxBatch),
		batches:       make(chan inflightBatch, cfg.MaxInflight),
		slots:         make(chan struct{}, cfg.MaxInflight),
		forwardQueue:  make(chan *pendingBuy, 16*cfg.MaxBatch),
		forwardSlots:  make(chan struct{}, cfg.MaxInflight),
		reads:         make(chan *pendingRead, 4096),
		followerReads: make(chan *pendingRead, 4096),
		readyCh:       make(chan struct{}),
		stop:          make(chan struct{}),
		identity:      dirState.identity,
		clock:         cfg.Clock,
		clocks:        clockGuard{bound: cfg.MaxClockSkew, recheckNow: make(chan struct{}, 1)},
	}
	ledgerOpts := ledger.Options{MaxIdempotencyKeys: cfg.IdempotencyMaxKeys, MisapplyCents: cfg.MisapplyCentsForTests}
	if s.ledger, err = ledger.OpenWith(filepath.Join(cfg.DataDir, "ledger"), s.logger, ledgerOpts); err != nil {
		return nil, err
	}
	s.disk = newDiskSpace(cfg.DataDir, cfg.MinFreeDisk, s.logger)
	s.disk.check()
	s.metrics = newStoreMetrics(cfg.Registerer, s)
	s.addrs = newAddressBook(cfg.InitialCluster)
	restore := false
	if cfg.RestoreFrom != nil {
		exists, err := s.restoreDecision(ctx)
		if err != nil {
			s.closeStores()
			return nil, err
		}
		restore = !exists
	}
	if err := s.startRaft(raftDir, restore); err != nil {
		s.closeStores()
		return nil, err
	}
	s.wg.Add(13)
	go s.watchHalt()
	go s.runDigestCheck()
	go s.watchApplyBlocked()
	go s.refreshAddressBook()
	go s.runClockCheck()
	go func() {
		defer s.wg.Done()
		s.disk.run(s.stop)
	}()
	go s.runFollowerReadIndex()
	go s.runBatcher()
	go s.runForwarder()
	go s.runCompleter()
	go s.runReadIndex()
	go s.runPublisher()
	go s.runPromoter()
	return s, nil
}

func (s *Store) startRaft(raftDir string, restore bool) error {
	var err error
	s.logStore, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, "raft.db")})
	if err != nil {
		return fmt.Errorf("open raft log store: %w", err)
	}
	hlog := newHCLog(s.logger, "raft")
	snapshots, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hlog)
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	s.snapshots = snapshots
	s.peers, err = peer.Listen(peer.Config{
		Bind: s.cfg.RaftBind, Advertise: s.cfg.RaftAdvertise,
		TLS: s.cfg.PeerTLS, NamesID: s.cfg.NamesID, ResolveID: s.addrs.lookup,
		RefuseVotes: s.refuseVotes,
		Logger:      s.logger.With("module", "peer"),
	})
	if err != nil {
		return err
	}
	s.registerPeerHandlers(s.peers)
	s.transport = s.newTransport()
	s.leaderNotify = make(chan bool, 16)

	if restore {
		if err := s.writeRestoredSnapshot(snapshots); err != nil {
			return err
		}
		// The identity is written last: a data dir with the snapshot but
		// without it is refused by a later --restore-from.
		if err := s.recordRestore(s.cfg.RestoreFrom.Manifest.Index, false); err != nil {
			return err
		}
		s.logger.Info("Restored the backup as this cluster's starting state",
			"index", s.cfg.RestoreFrom.Manifest.Index, "purchases", s.cfg.RestoreFrom.Manifest.Purchases,
			"source_cluster", s.cfg.RestoreFrom.Manifest.ClusterID, "checksum", s.cfg.RestoreFrom.Checksum)
	}
	hasState, err := raft.HasExistingState(s.logStore, s.logStore, snapshots)
	if err != nil {
		return fmt.Errorf("inspect raft state: %w", err)
	}
	s.fsm = &instrumentedFSM{Ledger: s.ledger, metrics: s.metrics, delayForTests: s.cfg.ApplyDelayForTests}
	// The leader sends each new entry to every follower right after writing
	// it; the cache spares reading it back from bbolt and decoding it again.
	// Injected faults sit right above bbolt, as a failing disk would: the
	// cache holds only what the store took, and a failed write is timed and
	// reported like any other.
	var disk raft.LogStore = s.logStore
	if s.cfg.WrapLogStoreForTests != nil {
		disk = s.cfg.WrapLogStoreForTests(disk)
	}
	timed := timedLogStore{LogStore: disk, duration: s.metrics.logStoreDuration, failed: s.disk.writeFailed}
	s.logRetry = newRetryingLogStore(timed, s.stop, s.logger)
	s.logCache = newLogCache(s.logRetry, logCacheEntries, s.cfg.LogCacheBytes)
	s.logs = s.logCache
	// A node that has not decided how it takes part refuses votes from the
	// first RPC on.
	fresh := !hasState
	s.votesRefused.Store(fresh || (s.identity != nil && s.identity.Joining))
	r, err := raft.NewRaft(s.raftConfig(), s.fsm, s.logs, s.logStore, snapshots, s.transport)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	s.running.Store(r)
	s.peers.Serve()
	s.wg.Add(1)
	go s.watchLeadership(s.leaderNotify)

	switch {
	case fresh:
		s.logger.Info("Empty data dir: asking the peers whether the cluster exists before taking part")
		s.wg.Add(1)
		go s.startFresh()
	case s.identity == nil:
		// A data dir from before identities were recorded.
		id, err := newIdentity(s.cfg.ID, s.cfg.ClusterID, false)
		if err == nil {
			err = writeIdentity(s.cfg.DataDir, id)
		}
		if err != nil {
			return fmt.Errorf("record the data dir's identity: %w", err)
		}
		s.identity = id
		fallthrough
	default:
		// Operators and the end-to-end tests read this line to tell a
		// restart on its own volume from a fresh start.
		last, _ := s.logStore.LastIndex()
		s.logger.Info("Existing Raft state found: rejoining with it", "last_log_index", last, "incarnation", s.identity.Incarnation)
		if s.identity.Joining {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.join()
			}()
		}
	}
	return nil
}

// newTransport returns a Raft transport over the peer endpoint. Its stream
// layer is detached: shutting a Raft instance down leaves the endpoint open
// for the next one (recover.go) and Close closes it.
func (s *Store) newTransport() *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: s.peers.DetachedRaftLayer(), MaxPool: 8, Timeout: 10 * time.Second,
		Logger: newHCLog(s.logger, "raft"),
		// No pipelined replication: when a follower answers an AppendEntries
		// with a failure (its disk failed a write), hashicorp/raft v1.7's
		// pipeline can deadlock, its decoder gone while the sender waits for
		// it, and the leader never sends that follower another entry while
		// its heartbeats keep it from calling an election. One request at a
		// time, each carrying up to MaxAppendEntries entries, recovers.
		MaxRPCsInFlight: 1,
	})
}

// raftConfig is the configuration of every Raft instance of this node.
func (s *Store) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.ID)
	rc.Logger = newHCLog(s.logger, "raft")
	rc.HeartbeatTimeout = s.cfg.HeartbeatTimeout
	rc.ElectionTimeout = s.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = min(rc.LeaderLeaseTimeout, s.cfg.HeartbeatTimeout)
	rc.SnapshotThreshold = s.cfg.SnapshotThreshold
	rc.SnapshotInterval = s.cfg.SnapshotInterval
	rc.TrailingLogs = s.cfg.TrailingLogs
	rc.MaxAppendEntries = 256
	// Followers learn the commit index from the next AppendEntries; when
	// writes pause, this bounds how long a follower's linearizable read
	// waits for it.
	rc.CommitTimeout = 5 * time.Millisecond
	rc.NotifyCh = s.leaderNotify
	return rc
}

func (s *Store) inInitialCluster() bool {
	for _, srv := range s.cfg.InitialCluster {
		if string(srv.ID) == s.cfg.ID {
			return true
		}
	}
	return false
}

// Close stops the node: it hands leadership over when it leads, fails queued
// writes, shuts Raft down and closes every store.
func (s *Store) Close() error {
	var err error
	s.stopped.Do(func() {
		s.HandOverLeadership()
		close(s.stop)
		// Closing the ledger first ends an apply that is retrying a failed
		// records write (a full disk): raft.Shutdown waits for it.
		s.ledger.Close()
		// A recovery replacing the Raft instance finishes first, so that
		// the instance shut down is the last one.
		s.recoverMu.Lock()
		err = s.Raft().Shutdown().Error()
		s.recoverMu.Unlock()
		s.waitLoops(10 * time.Second)
		s.closeStores()
	})
	return err
}

// waitLoops waits for the store's goroutines. hashicorp/raft can shut down
// without answering a future whose entry it had already taken in, which would
// leave the completer waiting forever; past the deadline the store closes
// anyway and the purchases of such an entry, whose outcome is unknown, are
// answered by their requests' own deadlines (504).
func (s *Store) waitLoops(deadline time.Duration) {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(deadline):
		s.logger.Warn("Raft left an entry unanswered at shutdown; closing without it")
	}
}

// HandOverLeadership moves leadership to another voter when this node leads,
// so that a planned stop costs the cluster no election timeout.
func (s *Store) HandOverLeadership() {
	if s.Raft().State() != raft.Leader || s.voters() < 2 {
		return
	}
	if err := s.transferLeadership(s.Raft().LeadershipTransfer); err != nil {
		s.logger.Warn("Handing leadership over before stopping failed", "error", err)
		return
	}
	s.logger.Info("Handed leadership over before stopping")
}

func (s *Store) closeStores() {
	if s.transport != nil {
		s.transport.Close()
	}
	if s.peers != nil {
		s.peers.Close()
	}
	if s.logStore != nil {
		s.logStore.Close()
	}
	s.ledger.Close()
}

func (s *Store) voters() int {
	f := s.Raft().GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// ID returns the node's server ID.
func (s *Store) ID() string { return s.cfg.ID }

// Ledger returns the node's state machine, for read-only use.
func (s *Store) Ledger() *ledger.Ledger { return s.ledger }

// Raft returns the Raft instance, for tests and metrics.
func (s *Store) Raft() *raft.Raft { return s.running.Load() }

// IsLeader reports whether this node currently leads.
func (s *Store) IsLeader() bool { return s.Raft().State() == raft.Leader }

// Leader returns the leader's ID and published addresses, if known.
func (s *Store) Leader() (ledger.NodeInfo, bool) {
	_, id := s.Raft().LeaderWithID()
	if id == "" {
		return ledger.NodeInfo{}, false
	}
	info, ok := s.ledger.Node(string(id))
	if !ok {
		info = ledger.NodeInfo{ID: string(id)}
	}
	return info, true
}

// Ready reports whether the node is a member that knows a leader and has
// applied close to the commit index, with room on its disk. The reason says
// what is missing.
func (s *Store) Ready() (bool, string) {
	if problem := s.healthProblem(); problem != "" {
		return false, problem
	}
	if s.disk.pressure.Load() {
		return false, s.disk.reason()
	}
	leader, ok := s.Leader()
	if !ok {
		return false, "no leader known"
	}
	if leader.HTTPURL == "" {
		return false, "the leader's address is not known yet"
	}
	if !s.isMember() {
		return false, "not a member of the cluster"
	}
	const maxLag = 1024
	commit, applied := s.Raft().CommitIndex(), s.ledger.AppliedIndex()
	if raftApplied := s.Raft().AppliedIndex(); raftApplied > applied {
		applied = raftApplied
	}
	if commit > applied+maxLag {
		return false, fmt.Sprintf("applied index %d lags commit index %d", applied, commit)
	}
	if s.Raft().State() != raft.Leader && time.Since(s.Raft().LastContact()) > 3*s.cfg.HeartbeatTimeout {
		return false, "no recent contact with the leader"
	}
	return true, ""
}

// isVoter reports whether this node is a voter in its latest configuration.
// GetConfiguration reads a copy the Raft loop keeps, so a scrape never waits
// for a busy Raft loop.
func (s *Store) isVoter() bool {
	f := s.Raft().GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == s.cfg.ID {
			return srv.Suffrage == raft.Voter
		}
	}
	return false
}

func (s *Store) isMember() bool {
	f := s.Raft().GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == s.cfg.ID {
			return true
		}
	}
	return false
}

// watchLeadership tracks leadership and commits a first entry of each new
// term (the leader's own addresses) before reads are served.
func (s *Store) watchLeadership(notify <-chan bool) {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case isLeader := <-notify:
			if !isLeader {
				s.leaderTerm.Store(0)
				s.logger.Info("Lost leadership")
				continue
			}
			term := s.Raft().CurrentTerm()
			s.leaderTerm.Store(term)
			s.logger.Info("Became leader", "term", term)
			s.wg.Add(1)
			go s.startTerm(term)
		}
	}
}

func (s *Store) startTerm(term uint64) {
	defer s.wg.Done()
	// Compare clocks at once, so that writes are not held until the first
	// periodic check.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = s.checkClocks(ctx, term)
	cancel()
	cmd := ledger.EncodePublishNode(s.selfInfo())
	if err := s.Raft().Apply(cmd, 10*time.Second).Error(); err != nil {
		s.logger.Warn("Committing the first entry of the term failed", "term", term, "error", err)
		return
	}
	s.readyMu.Lock()
	if term > s.readyTerm {
		s.readyTerm = term
		close(s.readyCh)
		s.readyCh = make(chan struct{})
	}
	s.readyMu.Unlock()
}

// leaderReadyTerm returns the term this node is ready to serve reads in as
// leader (0 if none) and a channel closed when that changes.
func (s *Store) leaderReadyTerm() (uint64, <-chan struct{}) {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	return s.readyTerm, s.readyCh
}

func (s *Store) selfInfo() ledger.NodeInfo {
	return ledger.NodeInfo{ID: s.cfg.ID, HTTPURL: s.cfg.HTTPURL, AdminURL: s.cfg.AdminURL}
}
