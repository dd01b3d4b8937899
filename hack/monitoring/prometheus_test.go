package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/buytracker/buytracker/node/clustertest"
)

// The labels the chart's PodMonitor gives the members' series; the static
// scrape configuration below gives the same.
const (
	testNamespace  = "clustertest"
	testBuyTracker = "local"
)

// needPrometheus returns the Prometheus binary named by BUYTRACKER_PROMETHEUS
// (`make test-monitoring` builds it into bin/), or skips the test; with
// BUYTRACKER_REQUIRE_PROMETHEUS=1 (in `make test`) a missing one fails it.
func needPrometheus(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("BUYTRACKER_PROMETHEUS")
	if bin == "" {
		if os.Getenv("BUYTRACKER_REQUIRE_PROMETHEUS") == "1" {
			t.Fatal("BUYTRACKER_PROMETHEUS is not set: run `make test-monitoring`, which builds Prometheus into bin/")
		}
		t.Skip("BUYTRACKER_PROMETHEUS is not set: `make test-monitoring` builds Prometheus and runs this test")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("BUYTRACKER_PROMETHEUS: %v", err)
	}
	return bin
}

// A real Prometheus scrapes a real three-node cluster (mutual TLS between
// the members, /metrics on the client port) with the chart's rules, their
// `for:` shortened. Before a member dies no alert is pending or firing;
// after it is killed BuyTrackerQuorumAtRisk fires, through the HTTP API.
func TestPrometheusFiresQuorumAtRiskWhenAMemberIsKilled(t *testing.T) {
	bin := needPrometheus(t)
	cluster := clustertest.Start(t, 3)
	leader := cluster.WaitLeader(30 * time.Second)

	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	writeShortRules(t, rulesPath, "2s")
	var targets []string
	for _, n := range cluster.Nodes() {
		targets = append(targets, strings.TrimPrefix(n.HTTPURL, "http://")+"="+n.ID)
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	writeScrapeConfig(t, configPath, rulesPath, targets)
	prom := startPrometheus(t, bin, configPath, filepath.Join(dir, "data"))

	// Every member answers as a voter, and the rules have been evaluated
	// several times since (more than `for:` needs to fire).
	prom.eventually(t, 60*time.Second, "all three members scraped as voters", func() error {
		v, err := prom.scalar(`sum(buytracker_raft_voter{namespace="` + testNamespace + `"})`)
		if err == nil && v != 3 {
			err = fmt.Errorf("%v voters answer", v)
		}
		return err
	})
	allUp := time.Now()
	prom.eventually(t, 30*time.Second, "rules evaluated 3 s after every member answered", func() error {
		return prom.rulesEvaluatedAfter(allUp.Add(3 * time.Second))
	})
	for _, name := range nodeMetrics(t) {
		if v, err := prom.scalar(`count(` + name + `)`); err != nil || v == 0 {
			t.Errorf("the rules use %s, which no member exports (%v, %v)", name, v, err)
		}
	}
	// The disk alerts judge the machine's file system, which the test does
	// not control (with `for:` shortened, a test's writes on a full disk
	// predict it full within a day); every other alert must be quiet.
	for _, a := range prom.alerts(t) {
		if strings.HasPrefix(a.Labels["alertname"], "BuyTrackerDisk") {
			t.Logf("%s is %s about this machine's disk: %v", a.Labels["alertname"], a.State, a.Labels)
			continue
		}
		t.Errorf("%s is %s while every member runs: %v", a.Labels["alertname"], a.State, a.Labels)
	}
	if t.Failed() {
		t.FailNow()
	}

	victim := cluster.Followers(leader)[0]
	t.Logf("killing %s, a follower of %s", victim.ID, leader.ID)
	cluster.Kill(victim)

	prom.eventually(t, 60*time.Second, "BuyTrackerQuorumAtRisk firing", func() error {
		active := prom.alerts(t)
		for _, a := range active {
			if a.Labels["alertname"] == "BuyTrackerQuorumAtRisk" && a.State == "firing" {
				if a.Labels["namespace"] != testNamespace || a.Labels["buytracker"] != testBuyTracker || a.Labels["severity"] != "critical" {
					t.Fatalf("BuyTrackerQuorumAtRisk fires with labels %v", a.Labels)
				}
				if a.Value != "1e+00" {
					t.Fatalf("BuyTrackerQuorumAtRisk fires with value %s, want 1 (one voter down)", a.Value)
				}
				return nil
			}
		}
		return fmt.Errorf("active alerts: %+v", active)
	})
}

// writeShortRules writes the chart's rules with every `for:` set to short,
// so that a test need not wait minutes; the expressions are the same.
func writeShortRules(t *testing.T, path, short string) {
	t.Helper()
	rf := readRules(t)
	for g := range rf.Groups {
		for r := range rf.Groups[g].Rules {
			if rf.Groups[g].Rules[r].For != "" {
				rf.Groups[g].Rules[r].For = short
			}
		}
	}
	raw, err := yaml.Marshal(rf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeScrapeConfig scrapes each "host:port=pod" target every second, with
// the labels the PodMonitor would give it.
func writeScrapeConfig(t *testing.T, path, rulesPath string, targets []string) {
	t.Helper()
	var static []map[string]any
	for _, target := range targets {
		addr, pod, _ := strings.Cut(target, "=")
		static = append(static, map[string]any{
			"targets": []string{addr},
			"labels":  map[string]string{"namespace": testNamespace, "buytracker": testBuyTracker, "pod": pod},
		})
	}
	config := map[string]any{
		"global":     map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
		"rule_files": []string{rulesPath},
		"scrape_configs": []map[string]any{{
			"job_name": "buytracker", "metrics_path": "/metrics", "static_configs": static,
		}},
	}
	raw, err := yaml.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

type prometheus struct {
	url    string
	client *http.Client
	log    string
}

// startPrometheus runs bin until the test ends and waits until it is ready.
func startPrometheus(t *testing.T, bin, configPath, dataDir string) *prometheus {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &prometheus{url: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}, log: filepath.Join(filepath.Dir(configPath), "prometheus.log")}
	logFile, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+configPath, "--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			raw, _ := os.ReadFile(p.log)
			t.Logf("--- Prometheus's log ---\n%s", raw)
		}
	})
	p.eventually(t, 60*time.Second, "Prometheus ready", func() error {
		select {
		case <-exited:
			t.Fatalf("Prometheus exited at start")
		default:
		}
		resp, err := p.client.Get(p.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return p
}

func (p *prometheus) eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// get decodes the data of a Prometheus API answer.
func (p *prometheus) get(path string, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var answer struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return fmt.Errorf("GET %s: status %d, %q: %w", path, resp.StatusCode, raw, err)
	}
	if answer.Status != "success" {
		return fmt.Errorf("GET %s: %s", path, answer.Error)
	}
	return json.Unmarshal(answer.Data, data)
}

// scalar evaluates an expression that gives one sample, or none (0).
func (p *prometheus) scalar(expr string) (float64, error) {
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return 0, err
	}
	switch len(data.Result) {
	case 0:
		return 0, nil
	case 1:
		var v float64
		_, err := fmt.Sscan(fmt.Sprint(data.Result[0].Value[1]), &v)
		return v, err
	default:
		return 0, fmt.Errorf("%s: %d samples, want one", expr, len(data.Result))
	}
}

// rulesEvaluatedAfter reports an error until every rule has been evaluated
// after at, and fails when a rule's evaluation fails.
func (p *prometheus) rulesEvaluatedAfter(at time.Time) error {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name           string    `json:"name"`
				Health         string    `json:"health"`
				LastError      string    `json:"lastError"`
				LastEvaluation time.Time `json:"lastEvaluation"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get("/api/v1/rules", &data); err != nil {
		return err
	}
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health == "err" {
				return fmt.Errorf("rule %s fails: %s", r.Name, r.LastError)
			}
			if r.LastEvaluation.Before(at) {
				return fmt.Errorf("rule %s last evaluated at %v", r.Name, r.LastEvaluation)
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("no rules loaded")
	}
	return nil
}

type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
	Value  string            `json:"value"`
}

// alerts returns the pending and firing alerts.
func (p *prometheus) alerts(t *testing.T) []alert {
	t.Helper()
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	if err := p.get("/api/v1/alerts", &data); err != nil {
		t.Fatal(err)
	}
	return data.Alerts
}
