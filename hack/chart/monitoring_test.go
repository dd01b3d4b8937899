package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// The monitoring options (docs/operations.md) and their sources in the chart.
const (
	rulesSource     = chartDir + "/files/prometheus-rules.yaml"
	dashboardSource = chartDir + "/files/dashboard.json"
	defaultRunbook  = "https://github.com/buytracker/buytracker/blob/main/docs/operations.md"
)

var monitoringOn = []string{"podMonitor.enabled=true", "prometheusRule.enabled=true", "dashboard.enabled=true", "serviceMonitor.enabled=true"}

// memberPodLabels are labels every member pod carries (controllers/names.go,
// clusterNames.labels: the selector labels, component and managed-by).
var memberPodLabels = map[string]string{
	"app.kubernetes.io/name":       "buytracker",
	"app.kubernetes.io/instance":   "promo",
	"app.kubernetes.io/component":  "node",
	"app.kubernetes.io/managed-by": "buytracker-operator",
}

func TestMonitoringIsOffByDefault(t *testing.T) {
	r := needRenderers(t)
	for _, m := range r.chart(t, release, releaseNamespace) {
		switch m.kind() {
		case "PodMonitor", "PrometheusRule", "ConfigMap":
			t.Errorf("%s rendered with the default values", m.key())
		}
	}
}

func TestMonitoringRendersValidObjects(t *testing.T) {
	r := needRenderers(t)
	reportInvalid(t, validate(r.chart(t, release, releaseNamespace, monitoringOn...), releaseNamespace))
	reportInvalid(t, validate(r.chart(t, "tracker", "ops", append(monitoringOn, "watchNamespaces={shop,tills}")...), "ops", "shop", "tills"))
}

// The PrometheusRule holds the plain rules file, unchanged but for the
// runbooks' address.
func TestPrometheusRuleIsThePlainRulesFile(t *testing.T) {
	r := needRenderers(t)
	raw, err := os.ReadFile(filepath.Join(r.root, rulesSource))
	if err != nil {
		t.Fatal(err)
	}
	var plain map[string]any
	if err := yaml.Unmarshal(raw, &plain); err != nil {
		t.Fatalf("%s: %v", rulesSource, err)
	}
	rule := only(t, r.chart(t, release, releaseNamespace, "prometheusRule.enabled=true"), "PrometheusRule")
	if spec := object(t, rule.obj, "spec"); !reflect.DeepEqual(spec, plain) {
		t.Fatalf("the PrometheusRule's spec differs from %s:\n%s", rulesSource, strings.Join(differences(spec, plain, 20), "\n"))
	}

	moved := only(t, r.chart(t, release, releaseNamespace, "prometheusRule.enabled=true", "prometheusRule.runbookBaseURL=https://wiki.example/ops"), "PrometheusRule")
	groups, _ := at(moved.obj, "spec", "groups").([]any)
	n := 0
	for g := range groups {
		rules, _ := at(groups[g], "rules").([]any)
		for i := range rules {
			url := str(rules[i], "annotations", "runbook_url")
			alert := str(rules[i], "alert")
			if want := "https://wiki.example/ops#" + strings.ToLower(alert); url != want {
				t.Errorf("%s: runbook_url %q, want %q", alert, url, want)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("the PrometheusRule has no rules")
	}
	if strings.Contains(string(mustJSON(t, moved.obj)), defaultRunbook) {
		t.Error("the default runbook address is still in the PrometheusRule")
	}
}

// The PodMonitor selects the members of every BuyTracker, not the
// operator's pods, scrapes their client port, and labels their series with
// the BuyTracker's name, which the rules group by.
func TestPodMonitorSelectsEveryMember(t *testing.T) {
	r := needRenderers(t)
	ms := r.chart(t, release, releaseNamespace, "podMonitor.enabled=true")
	pm := only(t, ms, "PodMonitor")
	selector := object(t, pm.obj, "spec", "selector", "matchLabels")
	for k, v := range selector {
		if memberPodLabels[k] != v {
			t.Errorf("the PodMonitor selects %s=%v, which member pods do not carry", k, v)
		}
	}
	operatorPod := object(t, only(t, ms, "Deployment").obj, "spec", "template", "metadata", "labels")
	if matches(selector, operatorPod) {
		t.Errorf("the PodMonitor selects the operator's pods %v", operatorPod)
	}
	if all, _ := at(pm.obj, "spec", "namespaceSelector", "any").(bool); !all {
		t.Errorf("cluster-wide, the PodMonitor's namespaceSelector is %v, want any", at(pm.obj, "spec", "namespaceSelector"))
	}
	endpoint := object(t, pm.obj, "spec", "podMetricsEndpoints", 0)
	if endpoint["port"] != "http" || endpoint["path"] != "/metrics" || endpoint["scheme"] != "http" {
		t.Errorf("endpoint %v, want port http (the node's client port), path /metrics, scheme http", endpoint)
	}
	relabel := object(t, endpoint, "relabelings", 0)
	if relabel["targetLabel"] != "buytracker" || !reflect.DeepEqual(relabel["sourceLabels"], []any{"__meta_kubernetes_pod_label_app_kubernetes_io_instance"}) {
		t.Errorf("relabeling %v, want the pod's app.kubernetes.io/instance as buytracker", relabel)
	}

	watched := only(t, r.chart(t, release, releaseNamespace, "podMonitor.enabled=true", "watchNamespaces={shop,tills}",
		"podMonitor.scheme=https", "podMonitor.tlsConfig.serverName=promo.shop.svc"), "PodMonitor")
	if got := at(watched.obj, "spec", "namespaceSelector"); !reflect.DeepEqual(got, map[string]any{"matchNames": []any{"shop", "tills"}}) {
		t.Errorf("with watchNamespaces the namespaceSelector is %v, want matchNames [shop tills]", got)
	}
	if str(watched.obj, "spec", "podMetricsEndpoints", 0, "scheme") != "https" ||
		str(watched.obj, "spec", "podMetricsEndpoints", 0, "tlsConfig", "serverName") != "promo.shop.svc" {
		t.Errorf("scheme and tlsConfig not passed on: %v", at(watched.obj, "spec", "podMetricsEndpoints", 0))
	}
}

func matches(selector, labels map[string]any) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The dashboard's ConfigMap carries files/dashboard.json as it is, labelled
// for Grafana's sidecar.
func TestDashboardConfigMapCarriesTheGeneratedJSON(t *testing.T) {
	r := needRenderers(t)
	want, err := os.ReadFile(filepath.Join(r.root, dashboardSource))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := only(t, r.chart(t, release, releaseNamespace, "dashboard.enabled=true", "dashboard.annotations.grafana_folder=Shop"), "ConfigMap").decode(&cm); err != nil {
		t.Fatal(err)
	}
	if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Shop" {
		t.Errorf("labels %v, annotations %v: want grafana_dashboard=1 and the folder annotation", cm.Labels, cm.Annotations)
	}
	if got := cm.Data["buytracker.json"]; got != strings.TrimRight(string(want), "\n") {
		t.Errorf("the ConfigMap's buytracker.json (%d bytes) is not %s (%d bytes)", len(got), dashboardSource, len(want))
	}
	if !json.Valid([]byte(cm.Data["buytracker.json"])) {
		t.Error("the dashboard is not valid JSON")
	}
	if keys := slices.Collect(maps.Keys(cm.Data)); len(keys) != 1 {
		t.Errorf("data keys %v, want only buytracker.json", keys)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
