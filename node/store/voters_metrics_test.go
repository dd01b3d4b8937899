package store_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/store"
)

// gauges returns the value of every unlabelled gauge in reg.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 0 && m.Gauge != nil {
				out[f.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// The alert BuyTrackerQuorumAtRisk compares the voters a cluster's
// configuration has (buytracker_raft_voters) with the members that answer a
// scrape as voters (buytracker_raft_voter): a non-voter must count in
// neither.
func TestVoterGaugesCountOnlyVoters(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := testnode.OpenSingle(t, func(c *store.Config) { c.Registerer = reg })

	g := gauges(t, reg)
	if g["buytracker_raft_voters"] != 1 || g["buytracker_raft_voter"] != 1 {
		t.Fatalf("a one-voter cluster: buytracker_raft_voters %v, buytracker_raft_voter %v, want 1 and 1",
			g["buytracker_raft_voters"], g["buytracker_raft_voter"])
	}

	// A non-voter joins the configuration (no process needs to run for it:
	// a non-voter is not needed to commit the change).
	if err := st.Raft().AddNonvoter("learner", "127.0.0.1:1", 0, 5*time.Second).Error(); err != nil {
		t.Fatalf("add a non-voter: %v", err)
	}
	g = gauges(t, reg)
	if g["buytracker_raft_voters"] != 1 || g["buytracker_raft_voter"] != 1 {
		t.Fatalf("with a non-voter: buytracker_raft_voters %v, buytracker_raft_voter %v, want 1 and 1",
			g["buytracker_raft_voters"], g["buytracker_raft_voter"])
	}
}

// A node waiting to be added is in no configuration: it is no voter and
// knows of none.
func TestVoterGaugesOfANodeNotYetAMember(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr := testnode.FreeAddr(t)
	st, err := store.Open(store.Config{
		ID: "newcomer", DataDir: t.TempDir(), RaftBind: addr, RaftAdvertise: addr,
		HTTPURL: "http://127.0.0.1:1", AdminURL: "http://127.0.0.1:1",
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		Logger: testnode.Logger(t), Registerer: reg,
	})
	if err != nil {
		t.Fatalf("open a store outside any cluster: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	g := gauges(t, reg)
	for _, name := range []string{"buytracker_raft_voters", "buytracker_raft_voter"} {
		v, ok := g[name]
		if !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0", name, v, ok)
		}
	}
}

// increase() sees no first failure on a series that appears with the value
// 1, so the failure counters exist at 0 from the start, and
// BuyTrackerSnapshotsFailing fires on a node's first failed snapshot.
func TestSnapshotResultCountersStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	testnode.OpenSingle(t, func(c *store.Config) { c.Registerer = reg })
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && m.GetCounter().GetValue() == 0 {
					found[f.GetName()+"{result="+l.GetValue()+"}"] = true
				}
			}
		}
	}
	for _, want := range []string{
		"buytracker_snapshot_persist_total{result=error}", "buytracker_snapshot_persist_total{result=success}",
		"buytracker_snapshot_restore_total{result=error}", "buytracker_snapshot_restore_total{result=success}",
	} {
		if !found[want] {
			t.Errorf("%s is not exported at 0 on a fresh node (found %v)", want, found)
		}
	}
}
