package main

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The chart carries exactly what this generator writes: `make dashboard`
// after every change here.
func TestChartCarriesTheGeneratedDashboard(t *testing.T) {
	want, err := render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(chartFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the generator's output: run `make dashboard` and commit it", chartFile)
	}
}

// nodeSources declare every metric the node exports.
var nodeSources = []string{"../../node/store/metrics.go", "../../node/httpapi/metrics.go"}

// Every node metric a panel queries exists in the node's code, so that a
// renamed metric cannot leave an empty panel behind.
func TestPanelsQueryMetricsTheNodeExports(t *testing.T) {
	exported := map[string]bool{}
	declared := regexp.MustCompile(`"(buytracker_[a-z_]+)"`)
	for _, f := range nodeSources {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range declared.FindAllStringSubmatch(string(src), -1) {
			exported[m[1]] = true
		}
	}
	raw, err := render()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`\bbuytracker_[a-z_]+\b`)
	queries := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			queries++
			names := used.FindAllString(target.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q queries no node metric: %s", p.Title, target.Expr)
			}
			for _, name := range names {
				family := strings.TrimSuffix(name, "_bucket")
				if !exported[name] && !exported[family] {
					t.Errorf("panel %q queries %s, which the node does not export", p.Title, name)
				}
			}
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}
}
