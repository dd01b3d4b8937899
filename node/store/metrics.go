package store

import (
	"io"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/buytracker/buytracker/node/ledger"
)

type storeMetrics struct {
	buysRecorded     prometheus.Counter
	overloaded       prometheus.Counter
	batchSize        prometheus.Histogram
	readRounds       prometheus.Counter
	promotions       prometheus.Counter
	rejoins          prometheus.Counter
	rejoinAttempts   prometheus.Counter
	clockHandovers   prometheus.Counter
	snapshotTotal    *prometheus.CounterVec
	snapshotDuration prometheus.Histogram
	restoreTotal     *prometheus.CounterVec
	restoreDuration  prometheus.Histogram
	// The stages of a purchase, to tell where its latency goes.
	logStoreDuration prometheus.Histogram
	applyDuration    prometheus.Histogram
	commitDuration   prometheus.Histogram
	forwardDuration  prometheus.Histogram
}

// stageHistogram times one stage of a purchase, with buckets that resolve
// 50 µs to 100 ms.
func stageHistogram(name, help string) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: name, Help: help, Buckets: prometheus.ExponentialBucketsRange(0.00005, 0.1, 28),
	})
}

func newStoreMetrics(reg prometheus.Registerer, s *Store) *storeMetrics {
	m := &storeMetrics{
		buysRecorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "buytracker_buys_total", Help: "Purchases recorded through this node while it led.",
		}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "buytracker_buys_rejected_overload_total", Help: "Purchases refused because the write queue was full.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "buytracker_buy_batch_size", Help: "Purchases per Raft entry.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		readRounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "buytracker_read_index_rounds_total", Help: "Leadership confirmations made for linearizable reads.",
		}),
		promotions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "buytracker_member_promotions_total", Help: "Non-voters promoted to voters by this node.",
		}),
		rejoins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "buytracker_member_rejoins_total", Help: "Members that came back with an empty data dir and were taken back as non-voters by this node.",
		}),
		rejoinAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "buytracker_rejoin_attempts_total", Help: "Rounds in which this node, a new incarnation waiting to be a member again, looked for the leader to take it back.",
		}),
		clockHandovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "buytracker_clock_skew_handovers_total", Help: "Times this leader handed leadership over because its clock disagreed with a majority of the voters.",
		}),
		snapshotTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "buytracker_snapshot_persist_total", Help: "Snapshots written, by result.",
		}, []string{"result"}),
		snapshotDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "buytracker_snapshot_persist_duration_seconds", Help: "Time to write a snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		restoreTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "buytracker_snapshot_restore_total", Help: "Snapshots restored, by result.",
		}, []string{"result"}),
		restoreDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "buytracker_snapshot_restore_duration_seconds", Help: "Time to restore a snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		logStoreDuration: stageHistogram("buytracker_raft_log_store_duration_seconds",
			"Time to write Raft entries to the log store, fsync included."),
		applyDuration: stageHistogram("buytracker_fsm_apply_duration_seconds",
			"Time for the ledger to apply one batch of committed entries."),
		commitDuration: stageHistogram("buytracker_buy_commit_duration_seconds",
			"Leader: time from handing a batch of purchases to Raft to its entry being applied."),
		forwardDuration: stageHistogram("buytracker_buy_forward_duration_seconds",
			"Follower: round trip of one batch of purchases forwarded to the leader."),
	}
	// Both results exist from the start: increase() cannot see a first
	// failure on a series that appears with the value 1.
	for _, r := range []string{"success", "error"} {
		m.snapshotTotal.WithLabelValues(r)
		m.restoreTotal.WithLabelValues(r)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(
		m.buysRecorded, m.overloaded, m.batchSize, m.readRounds, m.promotions, m.rejoins, m.rejoinAttempts, m.clockHandovers,
		m.snapshotTotal, m.snapshotDuration, m.restoreTotal, m.restoreDuration,
		m.logStoreDuration, m.applyDuration, m.commitDuration, m.forwardDuration,
		gauge("buytracker_purchases", "Purchases in the replicated state this node has applied.",
			func() float64 { return float64(s.ledger.Count()) }),
		gauge("buytracker_votes_refused", "1 while this node refuses to vote: it came back with an empty data dir and is not a member again yet.",
			func() float64 {
				if s.votesRefused.Load() {
					return 1
				}
				return 0
			}),
		gauge("buytracker_digest_mismatches", "Comparisons of this node's state digest with another member's that found a difference.",
			func() float64 {
				s.divergence.mu.Lock()
				defer s.divergence.mu.Unlock()
				return float64(s.divergence.mismatches)
			}),
		gauge("buytracker_diverged", "1 while this node answers nothing because its state differs from another member's and no majority decides.",
			func() float64 {
				if s.divergence.reason() != "" {
					return 1
				}
				return 0
			}),
		gauge("buytracker_clock_skewed", "1 while this leader's clock disagrees with a majority of the voters by more than the bound: it stamps no purchase.",
			func() float64 {
				if skewed, _ := s.clocks.snapshot(); skewed && s.Raft().State() == raft.Leader {
					return 1
				}
				return 0
			}),
		gauge("buytracker_clock_max_offset_seconds", "Leader: the largest clock offset to a voter at the last comparison.",
			func() float64 { _, offset := s.clocks.snapshot(); return offset.Seconds() }),
		gauge("buytracker_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.",
			func() float64 { return float64(s.Raft().State()) }),
		gauge("buytracker_raft_term", "Current Raft term.",
			func() float64 { return float64(s.Raft().CurrentTerm()) }),
		// The two voter gauges let an alert compare the voters a
		// configuration has with the members that answer as voters.
		gauge("buytracker_raft_voters", "Voters in the latest Raft configuration this node knows (0 while it is in none).",
			func() float64 { return float64(s.voters()) }),
		gauge("buytracker_raft_voter", "1 while this node is a voter in its latest Raft configuration, else 0.",
			func() float64 { return boolGauge(s.isVoter()) }),
		gauge("buytracker_raft_commit_index", "Raft commit index.",
			func() float64 { return float64(s.Raft().CommitIndex()) }),
		gauge("buytracker_raft_applied_index", "Index of the last entry the ledger applied.",
			func() float64 { return float64(s.ledger.AppliedIndex()) }),
		gauge("buytracker_raft_last_index", "Last index in the Raft log.",
			func() float64 { return float64(s.Raft().LastIndex()) }),
		gauge("buytracker_raft_last_contact_seconds", "Seconds since the last contact with the leader (0 on the leader).",
			func() float64 {
				if s.Raft().State() == raft.Leader {
					return 0
				}
				last := s.Raft().LastContact()
				if last.IsZero() {
					return -1
				}
				return time.Since(last).Seconds()
			}),
		gauge("buytracker_window_index_points", "Points held by the in-memory window indexes.",
			func() float64 { return float64(s.ledger.Footprint().WindowPoints) }),
		gauge("buytracker_ledger_halted", "1 when the ledger halted on a log entry that failed its checks: the node is out of service.",
			func() float64 { return boolGauge(s.ledger.Halted() != nil) }),
		gauge("buytracker_ledger_apply_blocked", "1 while applying is blocked by a failing write of the ledger's records (a full disk).",
			func() float64 { return boolGauge(s.ledger.ApplyBlocked() != nil) }),
		gauge("buytracker_raft_log_write_blocked", "1 while Raft waits for a failing write of its log (a follower deleting a conflicting tail) to succeed.",
			func() float64 { return boolGauge(s.logRetry.blocked() != nil) }),
		gauge("buytracker_ledger_digest_index", "Applied index of the ledger's state digest (the admin API's GET /status gives the digest).",
			func() float64 { index, _ := s.ledger.Digest(); return float64(index) }),
		gauge("buytracker_idempotency_keys", "Idempotency-Keys remembered.",
			func() float64 { return float64(s.ledger.Footprint().IdempotencyKeys) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "buytracker_idempotency_evictions_total",
			Help: "Idempotency-Keys forgotten before their 24 h because the table was full (--idempotency-max-keys).",
		}, func() float64 { return float64(s.ledger.Footprint().IdempotencyEvictions) }),
		gauge("buytracker_raft_log_cache_bytes", "Data bytes of the recent Raft log entries kept in memory.",
			func() float64 { return float64(s.logCache.size()) }),
		gauge("buytracker_disk_free_bytes", "Free bytes on the data dir's file system, as last measured.",
			func() float64 { free, _, _ := s.disk.usage(); return float64(free) }),
		gauge("buytracker_disk_total_bytes", "Size of the data dir's file system in bytes.",
			func() float64 { _, total, _ := s.disk.usage(); return float64(total) }),
		gauge("buytracker_disk_pressure", "1 while new purchases are refused because the disk is nearly full, else 0.",
			func() float64 {
				if _, _, p := s.disk.usage(); p {
					return 1
				}
				return 0
			}),
	)
	return m
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// instrumentedFSM times applies, snapshots and restores of the ledger.
type instrumentedFSM struct {
	*ledger.Ledger
	metrics       *storeMetrics
	delayForTests func() time.Duration
	// configuration is the latest committed configuration Raft told of.
	configuration committedConfiguration
}

func (f *instrumentedFSM) ApplyBatch(logs []*raft.Log) []any {
	if f.delayForTests != nil {
		time.Sleep(f.delayForTests())
	}
	start := time.Now()
	out := f.Ledger.ApplyBatch(logs)
	f.metrics.applyDuration.Observe(time.Since(start).Seconds())
	f.configuration.recordConfigurations(logs)
	return out
}

// timedLogStore times the writes to the Raft log: on the leader they come
// before replication, on a follower before its answer, so both are on the
// path of every purchase.
type timedLogStore struct {
	raft.LogStore
	duration prometheus.Observer
	// failed is told of every failed write.
	failed func(error)
}

func (t timedLogStore) StoreLog(l *raft.Log) error {
	return t.StoreLogs([]*raft.Log{l})
}

func (t timedLogStore) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := t.LogStore.StoreLogs(logs)
	t.duration.Observe(time.Since(start).Seconds())
	if err != nil && t.failed != nil {
		t.failed(err)
	}
	return err
}

func (f *instrumentedFSM) Snapshot() (raft.FSMSnapshot, error) {
	snap, err := f.Ledger.Snapshot()
	if err != nil {
		return nil, err
	}
	return &timedSnapshot{FSMSnapshot: snap, metrics: f.metrics}, nil
}

func (f *instrumentedFSM) Restore(rc io.ReadCloser) error {
	start := time.Now()
	err := f.Ledger.Restore(rc)
	f.metrics.restoreDuration.Observe(time.Since(start).Seconds())
	f.metrics.restoreTotal.WithLabelValues(result(err)).Inc()
	return err
}

type timedSnapshot struct {
	raft.FSMSnapshot
	metrics *storeMetrics
}

func (t *timedSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	err := t.FSMSnapshot.Persist(sink)
	t.metrics.snapshotDuration.Observe(time.Since(start).Seconds())
	t.metrics.snapshotTotal.WithLabelValues(result(err)).Inc()
	return err
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "success"
}
