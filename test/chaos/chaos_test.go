//go:build chaos

// Package chaos is the Jepsen-style suite: buytracker-node processes, each in
// its own network namespace, under a seeded schedule of faults (partitions,
// pauses, crashes, lost volumes, skewed clocks, failing and full disks,
// membership changes, snapshots), with clients recording every operation;
// the history is then checked for linearizability and the members' final
// exports against every acknowledgement. `make test-chaos` runs it;
// docs/reliability.md says what it covers and how to replay a seed.
package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/test/chaos/checker"
	"github.com/buytracker/buytracker/test/chaos/cluster"
	"github.com/buytracker/buytracker/test/chaos/history"
	"github.com/buytracker/buytracker/test/chaos/nemesis"
	"github.com/buytracker/buytracker/test/chaos/netns"
	"github.com/buytracker/buytracker/test/chaos/workload"
)

// settings are a run's knobs, from the environment (the Makefile passes
// them through).
type settings struct {
	seed    uint64
	faults  int
	kinds   []nemesis.Kind
	members int
	budget  time.Duration
	dir     string
}

func readSettings(t *testing.T) settings {
	t.Helper()
	s := settings{faults: 100, members: 5, budget: 10 * time.Minute}
	s.seed = rand.Uint64() % 1_000_000_000
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
		s.seed = seed
	}
	if v := os.Getenv("CHAOS_FAULTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_FAULTS=%q: want a positive number", v)
		}
		s.faults = n
	}
	if v := os.Getenv("CHAOS_MEMBERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3 {
			t.Fatalf("CHAOS_MEMBERS=%q: want 3 or more", v)
		}
		s.members = n
	}
	if v := os.Getenv("CHAOS_BUDGET"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CHAOS_BUDGET=%q: %v", v, err)
		}
		s.budget = d
	}
	kinds, err := nemesis.ParseKinds(os.Getenv("CHAOS_KINDS"))
	if err != nil {
		t.Fatalf("CHAOS_KINDS: %v", err)
	}
	s.kinds = kinds
	root := os.Getenv("CHAOS_DIR")
	if root == "" {
		root = filepath.Join(os.TempDir(), "buytracker-chaos")
	}
	s.dir = filepath.Join(root, fmt.Sprintf("%s-seed%d", time.Now().UTC().Format("20060102T150405"), s.seed))
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestChaos(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the chaos suite needs root: it creates network namespaces, veth pairs, iptables rules and tmpfs mounts (run `sudo make test-chaos`)")
	}
	s := readSettings(t)
	t.Logf("chaos run: seed %d, %d faults, %d members, budget %v; artifacts in %s", s.seed, s.faults, s.members, s.budget, s.dir)
	t.Logf("replay this run's schedule with: make test-chaos CHAOS_SEED=%d CHAOS_FAULTS=%d", s.seed, s.faults)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	bin := buildNode(t, s.dir)
	// A run killed before its cleanup leaves namespaces behind: remove
	// those of dead runs first.
	if removed, err := netns.CleanupStale(ctx, "btc"); err != nil {
		t.Fatalf("remove the leftovers of earlier runs: %v", err)
	} else if len(removed) > 0 {
		t.Logf("removed leftovers of earlier runs: %v", removed)
	}
	net, err := netns.New(ctx, netns.PIDPrefix("btc"))
	if err != nil {
		t.Fatalf("network: %v", err)
	}
	t.Cleanup(func() {
		if err := net.Close(); err != nil {
			t.Errorf("remove the test network: %v", err)
		}
	})
	c, err := cluster.Start(ctx, net, cluster.Config{
		Bin: bin, Dir: s.dir, Members: s.members, Spares: 1, DiskBytes: 128 << 20,
		// Small snapshot and log thresholds, so that snapshots, log
		// compaction and snapshot installs happen during the faults.
		ExtraFlags: []string{"--snapshot-threshold=256", "--trailing-logs=128", "--snapshot-interval=3s", "--min-free-disk=16Mi"},
		Logf:       t.Logf,
	})
	if err != nil {
		t.Fatalf("start the cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("stop the cluster: %v", err)
		}
	})
	nodes := c.Nodes()
	members, spare := nodes[:s.members], nodes[s.members]

	rec := history.NewRecorder()
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.HTTPURL)
	}
	load := workload.Run(ctx, workload.Config{
		Writers: 8, Readers: 4, Rate: 15, Seed: s.seed,
		Nodes: func() []string { return urls }, Client: c.HTTPClient(),
	}, rec)

	plan := nemesis.Plan(s.seed, s.faults, s.kinds, s.members, nemesis.DefaultTiming)
	mustWrite(t, plan.WriteJSON(filepath.Join(s.dir, "schedule.json")))
	runner := &nemesis.Runner{
		Net: net, Cluster: c, Members: members, Spare: spare,
		Since: rec.Now, Logf: t.Logf, ConvergeTimeout: 90 * time.Second,
	}
	runCtx, stopRun := context.WithTimeout(ctx, s.budget)
	applied, runErr := runner.Run(runCtx, plan)
	stopRun()
	writeJSON(t, filepath.Join(s.dir, "applied.json"), applied)

	var problems []string
	if runErr != nil {
		problems = append(problems, fmt.Sprintf("the schedule stopped after %d of %d steps: %v", len(applied), len(plan.Steps), runErr))
	}
	if err := runner.HealAll(ctx); err != nil {
		problems = append(problems, fmt.Sprintf("heal everything: %v", err))
	}
	// Liveness: a healed cluster must come back whole.
	convCtx, stopConv := context.WithTimeout(ctx, 2*time.Minute)
	if err := c.AwaitConverged(convCtx); err != nil {
		problems = append(problems, fmt.Sprintf("no convergence within 2m of healing every fault: %v", err))
	}
	stopConv()

	load.Stop()
	settleCtx, stopSettle := context.WithTimeout(ctx, time.Minute)
	if err := load.Settle(settleCtx); err != nil {
		problems = append(problems, fmt.Sprintf("settle the unanswered purchases: %v", err))
	}
	stopSettle()

	final := members
	if runner.SpareIsMember() {
		final = append(final, spare)
	}
	exports := map[string][]history.Record{}
	for _, n := range final {
		recs, err := exportConverged(ctx, c, n)
		if err != nil {
			problems = append(problems, fmt.Sprintf("export of %s: %v", n.ID, err))
			continue
		}
		exports[n.ID] = recs
	}

	ops := rec.Ops()
	mustWrite(t, history.WriteJSON(filepath.Join(s.dir, "history.json"), ops))
	report := checker.Check(ops, exports, checker.Options{
		VisualizePath: filepath.Join(s.dir, "linearizability.html"),
		Timeout:       5 * time.Minute,
	})
	report.Anomalies = append(problems, report.Anomalies...)
	summary := summarize(s, plan, applied, report)
	writeJSON(t, filepath.Join(s.dir, "report.json"), summary)
	t.Log(summary.String())

	if !report.OK() {
		t.Errorf("seed %d: %d anomalies (porcupine: %s); the history, schedule, applied faults and every node's log are in %s; replay with: make test-chaos CHAOS_SEED=%d CHAOS_FAULTS=%d",
			s.seed, len(report.Anomalies), report.Linearizable, s.dir, s.seed, s.faults)
		for _, a := range report.Anomalies {
			t.Errorf("anomaly: %s", a)
		}
	}
	if len(applied) < s.faults {
		t.Errorf("injected %d faults, want %d (the budget of %v ran out)", len(applied), s.faults, s.budget)
	}
}

// exportConverged reads a member's export once the cluster agrees on one
// applied index.
func exportConverged(ctx context.Context, c *cluster.Cluster, n *cluster.Node) ([]history.Record, error) {
	ectx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.AwaitConverged(ectx); err != nil {
		return nil, err
	}
	return c.Export(ectx, n)
}

func buildNode(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "buytracker-node")
	cmd := exec.Command("go", "build", "-tags", "testhooks", "-o", bin, "github.com/buytracker/buytracker/node/cmd/buytracker-node")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the node with test hooks: %v\n%s", err, out)
	}
	return bin
}

// summary is the run's figures, written to report.json and the test log.
type summary struct {
	Seed      uint64               `json:"seed"`
	Planned   int                  `json:"planned_faults"`
	Injected  int                  `json:"injected_faults"`
	ByKind    map[nemesis.Kind]int `json:"faults_by_kind"`
	Elapsed   string               `json:"elapsed"`
	Report    checker.Report       `json:"report"`
	Artifacts string               `json:"artifacts"`
}

func summarize(s settings, plan nemesis.Schedule, applied []nemesis.Applied, r checker.Report) summary {
	steps := make([]nemesis.Step, len(applied))
	for i, a := range applied {
		steps[i] = a.Step
	}
	elapsed := time.Duration(0)
	if len(applied) > 0 {
		elapsed = applied[len(applied)-1].Healed - applied[0].Start
	}
	return summary{
		Seed: s.seed, Planned: len(plan.Steps), Injected: len(applied), ByKind: nemesis.Counts(steps),
		Elapsed: elapsed.Round(time.Second).String(), Report: r, Artifacts: s.dir,
	}
}

func (s summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d of %d faults injected in %s\n", s.Seed, s.Injected, s.Planned, s.Elapsed)
	kinds := make([]string, 0, len(s.ByKind))
	for k := range s.ByKind {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-28s %d\n", k, s.ByKind[nemesis.Kind(k)])
	}
	fmt.Fprintf(&b, "  checker: %s\n", s.Report.Summary())
	return b.String()
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		err = os.WriteFile(path, raw, 0o644)
	}
	mustWrite(t, err)
}

func mustWrite(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("write an artifact: %v", err)
	}
}
