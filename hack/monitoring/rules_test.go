// Package monitoring tests the alerting rules that the chart ships
// (charts/buytracker/files/prometheus-rules.yaml): that each alert is
// documented and unit tested (here), and that a real Prometheus scraping a
// real three-node cluster fires the quorum alert when a member dies
// (prometheus_test.go). promtool runs the unit tests of tests/ (make
// test-monitoring).
package monitoring

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Paths from this package's directory.
const (
	rulesFile     = "../../charts/buytracker/files/prometheus-rules.yaml"
	operationsDoc = "../../docs/operations.md"
	unitTestsGlob = "tests/*.yaml"
	// runbookBase is where every runbook_url points, with the alert's
	// anchor; the chart's prometheusRule.runbookBaseURL replaces it.
	runbookBase = "https://github.com/buytracker/buytracker/blob/main/docs/operations.md"
)

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict(raw, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

func alerts(t *testing.T) []rule {
	t.Helper()
	var out []rule
	for _, g := range readRules(t).Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	return out
}

// Every alert says how bad it is, what happened, and where its runbook is;
// the runbook is a section of docs/operations.md.
func TestEveryAlertHasASeverityAndARunbookSection(t *testing.T) {
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			headings[strings.TrimSpace(h)] = true
		}
	}
	for _, r := range alerts(t) {
		if r.Alert == "" {
			t.Errorf("a rule with no alert name (recording rules belong elsewhere): %q", r.Expr)
			continue
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, key := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[key]) == "" {
				t.Errorf("%s: no %s", r.Alert, key)
			}
		}
		if want := runbookBase + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !headings[r.Alert] {
			t.Errorf("%s: no section \"### %s\" in %s", r.Alert, r.Alert, operationsDoc)
		}
		if !strings.Contains(string(doc), "| `"+r.Alert+"` |") {
			t.Errorf("%s: not in the alerts table of %s", r.Alert, operationsDoc)
		}
	}
}

// promtool's unit tests (tests/*.yaml) load the rules file and check, for
// every alert, input series that fire it and series that do not.
func TestEveryAlertHasUnitTestsThatFireItAndThatDoNot(t *testing.T) {
	files, err := filepath.Glob(unitTestsGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool unit tests in %s (%v)", unitTestsGlob, err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var suite struct {
			RuleFiles []string `json:"rule_files"`
			Tests     []struct {
				AlertRuleTests []struct {
					Alertname string `json:"alertname"`
					ExpAlerts []any  `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		if err := yaml.Unmarshal(raw, &suite); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if want := []string{"../" + rulesFile}; !slices.Equal(suite.RuleFiles, want) {
			t.Errorf("%s: rule_files %v, want %v (the chart's rules, as they ship)", f, suite.RuleFiles, want)
		}
		for _, tc := range suite.Tests {
			for _, at := range tc.AlertRuleTests {
				if len(at.ExpAlerts) > 0 {
					fires[at.Alertname] = true
				} else {
					quiet[at.Alertname] = true
				}
			}
		}
	}
	for _, r := range alerts(t) {
		if !fires[r.Alert] {
			t.Errorf("%s: no promtool test in which it fires", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("%s: no promtool test in which it stays quiet", r.Alert)
		}
	}
}

// nodeMetrics are the names of the node's series the rules use.
func nodeMetrics(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	word := regexp.MustCompile(`\bbuytracker_[a-z_]+\b`)
	for _, r := range alerts(t) {
		for _, name := range word.FindAllString(r.Expr, -1) {
			seen[name] = true
		}
	}
	var out []string
	for name := range seen {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
