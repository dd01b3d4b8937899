//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// pluginReport is the part of `kubectl buytracker status -o json` the
// suite checks (the plugin's own types are internal to its command).
type pluginReport struct {
	Leader      string `json:"leader"`
	Term        uint64 `json:"term"`
	CommitIndex uint64 `json:"commitIndex"`
	Members     []struct {
		Name        string  `json:"name"`
		Suffrage    string  `json:"suffrage"`
		Ready       bool    `json:"ready"`
		Incarnation string  `json:"incarnation"`
		Lag         *uint64 `json:"lag"`
		Error       string  `json:"error"`
	} `json:"members"`
}

// plugin runs bin/kubectl-buytracker against the suite's cluster and
// namespace.
func (e *env) plugin(ctx context.Context, args ...string) (string, error) {
	if e.opts.plugin == "" {
		return "", fmt.Errorf("BUYTRACKER_E2E_PLUGIN is not set: make test-e2e builds bin/kubectl-buytracker and sets it")
	}
	return run(ctx, 2*time.Minute, e.opts.plugin, append([]string{"--kubeconfig", e.opts.kubeconfig, "-n", e.ns}, args...)...)
}

// pluginCommands runs the kubectl plugin's commands on the three-member
// BuyTracker: status (JSON and table) agrees with the admin API, logs tags
// every member's lines, transfer-leader moves leadership, snapshot snapshots.
// Every call goes through a port-forward with the admin API's TLS verified.
func (e *env) pluginCommands(ctx context.Context, t *testing.T) {
	token, err := e.adminToken(ctx, btName)
	if err != nil {
		t.Fatal(err)
	}
	c := e.waitSettled(ctx, t, btName, 3, 2*time.Minute)

	out, err := e.plugin(ctx, "status", btName, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var r pluginReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	if r.Leader != c.Leader {
		t.Errorf("status says the leader is %q, the admin API %q", r.Leader, c.Leader)
	}
	if r.CommitIndex < c.CommitIndex || r.Term < c.Term {
		t.Errorf("status: commit index %d, term %d; the admin API said %d, %d before it ran", r.CommitIndex, r.Term, c.CommitIndex, c.Term)
	}
	if len(r.Members) != 3 {
		t.Fatalf("status lists %d members, want 3:\n%s", len(r.Members), out)
	}
	for _, m := range r.Members {
		if m.Suffrage != "voter" || !m.Ready || m.Error != "" || m.Incarnation == "" || m.Lag == nil || *m.Lag > 64 {
			t.Errorf("status member %+v: want a ready voter with an incarnation, no error and a lag of at most 64", m)
		}
	}

	table, err := e.plugin(ctx, "status", btName)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl buytracker status %s:\n%s", btName, table)
	if !strings.Contains(table, fmt.Sprintf("Leader: %s, term", c.Leader)) {
		t.Errorf("the status table does not name the leader %s:\n%s", c.Leader, table)
	}
	for _, pod := range podNames(btName, 3) {
		if !strings.Contains(table, "\n"+pod) {
			t.Errorf("the status table has no row for %s:\n%s", pod, table)
		}
	}

	logs, err := e.plugin(ctx, "logs", btName, "--tail", "5")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimRight(logs, "\n"), "\n") {
		tag, _, ok := strings.Cut(line, "] ")
		if !ok || !strings.HasPrefix(tag, "["+btName+"-") {
			t.Errorf("logs: line not tagged with its member: %q", line)
			continue
		}
		seen[strings.TrimPrefix(tag, "[")] = true
	}
	if len(seen) != 3 {
		t.Errorf("logs came from %d members (%v), want 3", len(seen), seen)
	}

	var target string
	for _, m := range c.Members {
		if !m.Leader {
			target = m.ID
			break
		}
	}
	if _, err := e.plugin(ctx, "transfer-leader", btName, "--to", target); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, time.Minute, target+" to lead after transfer-leader", func(ctx context.Context) (bool, string, error) {
		c, err := e.raftCluster(ctx, btName, token)
		if err != nil {
			return false, err.Error(), nil
		}
		return c.Leader == target, describeMembers(c), nil
	})

	pod := btName + "-0"
	out, err = e.plugin(ctx, "snapshot", btName, "--member", pod)
	if err != nil {
		t.Fatal(err)
	}
	var index uint64
	if _, err := fmt.Sscanf(out, pod+": snapshot at index %d\n", &index); err != nil || index == 0 {
		t.Errorf("snapshot --member %s printed %q, want %q with an index above 0 (%v)", pod, out, pod+": snapshot at index N", err)
	}
	e.waitSettled(ctx, t, btName, 3, 2*time.Minute)
}
