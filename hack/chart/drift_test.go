package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// The release that `helm template` renders: named so, in this namespace,
// the chart's objects have config/default's names, and each has its
// counterpart.
const (
	release          = "buytracker"
	releaseNamespace = "buytracker-system"
)

// valuesMeantToDiffer are what a render's values change on purpose, relative
// to config/default: the operator's image and the --node-image flag. Empty
// fields mean "as config/default has it".
type valuesMeantToDiffer struct {
	operatorImage, nodeImage string
}

// drift lists every way the chart's objects differ from config/default's,
// other than labels, annotations and the differences meant. Kinds in
// chartOnly may exist in the chart alone (the optional Service,
// ServiceMonitor and sample).
func drift(t *testing.T, config, chart []manifest, meant valuesMeantToDiffer, chartOnly ...string) []string {
	t.Helper()
	chartByKey := map[string]manifest{}
	for _, m := range chart {
		chartByKey[m.key()] = m
	}
	var problems []string
	inConfig := map[string]bool{}
	for _, c := range config {
		if c.kind() == "Namespace" {
			continue // helm install --create-namespace makes it; docs/chart.md says how to label it
		}
		inConfig[c.key()] = true
		h, ok := chartByKey[c.key()]
		if !ok {
			problems = append(problems, c.key()+": in config/default, not in the chart")
			continue
		}
		problems = append(problems, compareObject(t, c, h, meant)...)
	}
	for _, h := range chart {
		if !inConfig[h.key()] && !slices.Contains(chartOnly, h.kind()) {
			problems = append(problems, h.key()+": in the chart, not in config/default")
		}
	}
	return problems
}

func compareObject(t *testing.T, c, h manifest, meant valuesMeantToDiffer) []string {
	t.Helper()
	switch c.kind() {
	case "ClusterRole", "Role":
		return compareRules(t, c, h)
	case "Deployment":
		return compareDeployment(t, c, h, meant)
	default:
		// The CRD, the ServiceAccount and the bindings: equal but for
		// labels and annotations.
		var problems []string
		for _, d := range differences(withoutLabels(c), withoutLabels(h), 10) {
			problems = append(problems, c.key()+": "+d)
		}
		return problems
	}
}

// withoutLabels is an object without the metadata each renderer adds its
// own of.
func withoutLabels(m manifest) map[string]any {
	out := map[string]any{}
	for k, v := range m.obj {
		out[k] = v
	}
	meta := map[string]any{}
	for k, v := range m.obj["metadata"].(map[string]any) {
		if k != "labels" && k != "annotations" {
			meta[k] = v
		}
	}
	out["metadata"] = meta
	return out
}

// compareRules compares what two roles grant, one verb on one resource at
// a time, so that splitting or reordering rules is no difference but any
// verb or resource more or less is.
func compareRules(t *testing.T, c, h manifest) []string {
	t.Helper()
	var cr, hr []rbacv1.PolicyRule
	if err := decodeField(c.obj["rules"], &cr); err != nil {
		return []string{fmt.Sprintf("%s in config/default: rules: %v", c.key(), err)}
	}
	if err := decodeField(h.obj["rules"], &hr); err != nil {
		return []string{fmt.Sprintf("%s in the chart: rules: %v", h.key(), err)}
	}
	cg, hg := grants(cr), grants(hr)
	var problems []string
	for _, g := range sortedSet(hg) {
		if !cg[g] {
			problems = append(problems, fmt.Sprintf("%s: the chart grants %s, config/default does not", c.key(), g))
		}
	}
	for _, g := range sortedSet(cg) {
		if !hg[g] {
			problems = append(problems, fmt.Sprintf("%s: config/default grants %s, the chart does not", c.key(), g))
		}
	}
	return problems
}

// grants expands rules into single permissions in kubectl's words:
// "patch statefulsets.apps", "get pods/name", "get /healthz".
func grants(rules []rbacv1.PolicyRule) map[string]bool {
	g := map[string]bool{}
	for _, r := range rules {
		for _, verb := range r.Verbs {
			for _, url := range r.NonResourceURLs {
				g[verb+" "+url] = true
			}
			for _, group := range r.APIGroups {
				for _, res := range r.Resources {
					resource := res
					if group != "" {
						resource = strings.Replace(res, "/", "."+group+"/", 1)
						if !strings.Contains(res, "/") {
							resource = res + "." + group
						}
					}
					if len(r.ResourceNames) == 0 {
						g[verb+" "+resource] = true
					}
					for _, name := range r.ResourceNames {
						g[verb+" "+resource+"/"+name] = true
					}
				}
			}
		}
	}
	return g
}

func sortedSet(s map[string]bool) []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// compareDeployment compares the operator's Deployments field by field, for
// messages that name the field, then as a whole, for anything else.
func compareDeployment(t *testing.T, c, h manifest, meant valuesMeantToDiffer) []string {
	t.Helper()
	var cd, hd appsv1.Deployment
	if err := c.decode(&cd); err != nil {
		return []string{fmt.Sprintf("%s in config/default: %v", c.key(), err)}
	}
	if err := h.decode(&hd); err != nil {
		return []string{fmt.Sprintf("%s in the chart: %v", h.key(), err)}
	}
	cs, hs := cd.Spec, hd.Spec
	for _, s := range []*appsv1.DeploymentSpec{&cs, &hs} {
		// Meant to differ: the chart's selector and pod labels carry the
		// release, and it sets the pull policy that config leaves to the
		// default (the same for any tag but "latest").
		s.Selector, s.Template.Labels, s.Template.Annotations = nil, nil, nil
		for i := range s.Template.Spec.Containers {
			s.Template.Spec.Containers[i].ImagePullPolicy = ""
		}
	}
	expectValues(&cs.Template.Spec, meant)

	var problems []string
	field := func(name string, a, b any) {
		if !equality.Semantic.DeepEqual(a, b) {
			problems = append(problems, fmt.Sprintf("%s: %s: config/default has %s, the chart %s", c.key(), name, brief(generic(t, a)), brief(generic(t, b))))
		}
	}
	cp, hp := cs.Template.Spec, hs.Template.Spec
	field("replicas", cs.Replicas, hs.Replicas)
	field("serviceAccountName", cp.ServiceAccountName, hp.ServiceAccountName)
	field("pod securityContext", cp.SecurityContext, hp.SecurityContext)
	field("terminationGracePeriodSeconds", cp.TerminationGracePeriodSeconds, hp.TerminationGracePeriodSeconds)
	field("container names", containerNames(cp), containerNames(hp))
	for _, cc := range cp.Containers {
		i := slices.IndexFunc(hp.Containers, func(x corev1.Container) bool { return x.Name == cc.Name })
		if i < 0 {
			continue // reported as container names
		}
		hc := hp.Containers[i]
		name := "container " + cc.Name + " "
		field(name+"image", cc.Image, hc.Image)
		problems = append(problems, compareArgs(c.key(), name, cc.Args, hc.Args)...)
		field(name+"ports", cc.Ports, hc.Ports)
		field(name+"livenessProbe", cc.LivenessProbe, hc.LivenessProbe)
		field(name+"readinessProbe", cc.ReadinessProbe, hc.ReadinessProbe)
		field(name+"resources", cc.Resources, hc.Resources)
		field(name+"securityContext", cc.SecurityContext, hc.SecurityContext)
	}
	if len(problems) == 0 && !equality.Semantic.DeepEqual(cs, hs) {
		for _, d := range differences(generic(t, cs), generic(t, hs), 10) {
			problems = append(problems, c.key()+": spec"+d)
		}
	}
	return problems
}

// expectValues rewrites config/default's pod spec to what the render's
// values are meant to make of it.
func expectValues(pod *corev1.PodSpec, meant valuesMeantToDiffer) {
	for i := range pod.Containers {
		ct := &pod.Containers[i]
		if ct.Name != "manager" {
			continue
		}
		if meant.operatorImage != "" {
			ct.Image = meant.operatorImage
		}
		if meant.nodeImage != "" {
			for j, a := range ct.Args {
				if strings.HasPrefix(a, "--node-image=") {
					ct.Args[j] = "--node-image=" + meant.nodeImage
				}
			}
		}
	}
}

// compareArgs compares flags as sets: their order does not matter to the
// manager, any flag or value more or less does.
func compareArgs(key, container string, c, h []string) []string {
	var problems []string
	for _, a := range h {
		if !slices.Contains(c, a) {
			problems = append(problems, fmt.Sprintf("%s: %sargs: %s is in the chart only", key, container, a))
		}
	}
	for _, a := range c {
		if !slices.Contains(h, a) {
			problems = append(problems, fmt.Sprintf("%s: %sargs: %s is in config/default only", key, container, a))
		}
	}
	return problems
}

func containerNames(pod corev1.PodSpec) []string {
	var names []string
	for _, c := range pod.Containers {
		names = append(names, c.Name)
	}
	return names
}

func reportDrift(t *testing.T, problems []string) {
	t.Helper()
	if len(problems) > 0 {
		t.Errorf("the chart and config/default differ (fix the chart's templates, or run `make chart` for the CRD and ClusterRole):\n  %s", strings.Join(problems, "\n  "))
	}
}

func TestChartWithDefaultValuesMatchesConfig(t *testing.T) {
	r := needRenderers(t)
	config := r.config(t)
	chart := r.chart(t, release, releaseNamespace)
	reportDrift(t, drift(t, config, chart, valuesMeantToDiffer{}))
}

// The values the end-to-end suite sets (image.repository, image.tag,
// image.pullPolicy, nodeImage) change the operator's image, pull policy and
// --node-image, and nothing else.
func TestChartImageValuesChangeOnlyTheImages(t *testing.T) {
	r := needRenderers(t)
	config := r.config(t)
	chart := r.chart(t, release, releaseNamespace,
		"image.repository=registry.example/buytracker/operator", "image.tag=v0.9.0", "image.pullPolicy=Always",
		"nodeImage=registry.example/buytracker/node:v0.9.0")
	reportDrift(t, drift(t, config, chart, valuesMeantToDiffer{
		operatorImage: "registry.example/buytracker/operator:v0.9.0",
		nodeImage:     "registry.example/buytracker/node:v0.9.0",
	}))

	var d appsv1.Deployment
	if err := only(t, chart, "Deployment").decode(&d); err != nil {
		t.Fatal(err)
	}
	ct := d.Spec.Template.Spec.Containers[0]
	if ct.Image != "registry.example/buytracker/operator:v0.9.0" || ct.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("manager image %s (%s), want registry.example/buytracker/operator:v0.9.0 (Always)", ct.Image, ct.ImagePullPolicy)
	}
	if !slices.Contains(ct.Args, "--node-image=registry.example/buytracker/node:v0.9.0") {
		t.Errorf("manager args %q lack --node-image=registry.example/buytracker/node:v0.9.0", ct.Args)
	}
}

// maxConcurrentReconciles reaches the manager as --max-concurrent-reconciles;
// unset, the manager keeps its own default and no flag is passed.
func TestChartPassesMaxConcurrentReconciles(t *testing.T) {
	r := needRenderers(t)
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{nil, ""},
		{[]string{"maxConcurrentReconciles=8"}, "--max-concurrent-reconciles=8"},
	} {
		var d appsv1.Deployment
		if err := only(t, r.chart(t, release, releaseNamespace, tc.set...), "Deployment").decode(&d); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range d.Spec.Template.Spec.Containers[0].Args {
			if strings.HasPrefix(a, "--max-concurrent-reconciles") {
				got = append(got, a)
			}
		}
		if tc.want == "" && len(got) != 0 || tc.want != "" && (len(got) != 1 || got[0] != tc.want) {
			t.Errorf("with %v the manager's args have %q, want %q", tc.set, got, tc.want)
		}
	}
}

// Turning the options on adds the metrics Service, the ServiceMonitor and
// the sample, and changes nothing config/default has.
func TestChartWithOptionsOnAddsOnlyThem(t *testing.T) {
	r := needRenderers(t)
	config := r.config(t)
	chart := r.chart(t, release, releaseNamespace, "serviceMonitor.enabled=true", "sample.enabled=true")
	reportDrift(t, drift(t, config, chart, valuesMeantToDiffer{}, "Service", "ServiceMonitor", "BuyTracker"))
	for _, kind := range []string{"Service", "ServiceMonitor", "BuyTracker"} {
		only(t, chart, kind)
	}
}

// The drift check bites: each change to one field of the chart's render is
// reported, in words that name it.
func TestDriftCheckReportsEveryKindOfChange(t *testing.T) {
	r := needRenderers(t)
	config := r.config(t)
	rendered := r.chart(t, release, releaseNamespace)
	if problems := drift(t, config, rendered, valuesMeantToDiffer{}); len(problems) > 0 {
		t.Fatalf("the unchanged chart already differs: %v", problems)
	}
	pod := func(t *testing.T, ms []manifest) map[string]any {
		return object(t, only(t, ms, "Deployment").obj, "spec", "template", "spec")
	}
	manager := func(t *testing.T, ms []manifest) map[string]any {
		return object(t, pod(t, ms), "containers", 0)
	}
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, ms []manifest)
		want   string
	}{
		{"a verb more in the ClusterRole", func(t *testing.T, ms []manifest) {
			rule := rbacRule(t, only(t, ms, "ClusterRole"), "statefulsets")
			rule["verbs"] = append(rule["verbs"].([]any), "update")
		}, "ClusterRole buytracker-manager-role: the chart grants update statefulsets.apps"},
		{"a ClusterRole rule less", func(t *testing.T, ms []manifest) {
			role := only(t, ms, "ClusterRole").obj
			role["rules"] = slices.DeleteFunc(role["rules"].([]any), func(r any) bool {
				resources, _ := r.(map[string]any)["resources"].([]any)
				return slices.Contains(resources, any("secrets"))
			})
		}, "config/default grants create secrets, the chart does not"},
		{"a resource more in the ClusterRole", func(t *testing.T, ms []manifest) {
			rule := rbacRule(t, only(t, ms, "ClusterRole"), "pods")
			rule["resources"] = append(rule["resources"].([]any), "pods/exec")
		}, "the chart grants get pods/exec"},
		{"a verb less in the leader-election Role", func(t *testing.T, ms []manifest) {
			rule := rbacRule(t, only(t, ms, "Role"), "leases")
			rule["verbs"] = slices.DeleteFunc(rule["verbs"].([]any), func(v any) bool { return v == "delete" })
		}, "Role buytracker-system/buytracker-leader-election-role: config/default grants delete leases.coordination.k8s.io"},
		{"the RoleBinding's subject", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "RoleBinding").obj, "subjects", 0)["name"] = "default"
		}, "RoleBinding buytracker-system/buytracker-leader-election-rolebinding: .subjects[0].name"},
		{"the ClusterRoleBinding's role", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "ClusterRoleBinding").obj, "roleRef")["name"] = "cluster-admin"
		}, `.roleRef.name: config/default has "buytracker-manager-role", the chart "cluster-admin"`},
		{"--leader-elect dropped", func(t *testing.T, ms []manifest) {
			c := manager(t, ms)
			c["args"] = slices.DeleteFunc(c["args"].([]any), func(a any) bool { return a == "--leader-elect" })
		}, "container manager args: --leader-elect is in config/default only"},
		{"another node image by default", func(t *testing.T, ms []manifest) {
			setArg(t, manager(t, ms), "--node-image=", "buytracker/node:latest")
		}, "--node-image=buytracker/node:latest is in the chart only"},
		{"another metrics address", func(t *testing.T, ms []manifest) {
			setArg(t, manager(t, ms), "--metrics-bind-address=", ":9090")
		}, "--metrics-bind-address=:8080 is in config/default only"},
		{"another operator image", func(t *testing.T, ms []manifest) {
			manager(t, ms)["image"] = "buytracker/operator:latest"
		}, "container manager image"},
		{"a writable root file system", func(t *testing.T, ms []manifest) {
			object(t, manager(t, ms), "securityContext")["readOnlyRootFilesystem"] = false
		}, "container manager securityContext"},
		{"capabilities kept", func(t *testing.T, ms []manifest) {
			delete(object(t, manager(t, ms), "securityContext"), "capabilities")
		}, "container manager securityContext"},
		{"root allowed", func(t *testing.T, ms []manifest) {
			delete(object(t, pod(t, ms), "securityContext"), "runAsNonRoot")
		}, "pod securityContext"},
		{"no seccomp profile", func(t *testing.T, ms []manifest) {
			delete(object(t, pod(t, ms), "securityContext"), "seccompProfile")
		}, "pod securityContext"},
		{"another memory limit", func(t *testing.T, ms []manifest) {
			object(t, manager(t, ms), "resources", "limits")["memory"] = "1Gi"
		}, "container manager resources"},
		{"a field no comparison names", func(t *testing.T, ms []manifest) {
			pod(t, ms)["hostNetwork"] = true
		}, "spec.template.spec.hostNetwork: config/default has nothing, the chart true"},
		{"an even size allowed by the CRD", func(t *testing.T, ms []manifest) {
			replicas := object(t, named(t, ms, "CustomResourceDefinition", "buytrackers.buytracker.dev").obj, "spec", "versions", 0, "schema", "openAPIV3Schema", "properties", "spec", "properties", "replicas")
			replicas["enum"] = append(replicas["enum"].([]any), 2.0)
		}, "CustomResourceDefinition buytrackers.buytracker.dev: .spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.replicas.enum: config/default has [1,3,5,7,9], the chart [1,3,5,7,9,2]"},
		{"the ServiceAccount renamed", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "ServiceAccount").obj, "metadata")["name"] = "operator"
		}, "ServiceAccount buytracker-system/buytracker-controller-manager: in config/default, not in the chart"},
		{"an object config/default lacks", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "ServiceAccount").obj, "metadata")["name"] = "operator"
		}, "ServiceAccount buytracker-system/operator: in the chart, not in config/default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chart := clone(t, rendered)
			tc.change(t, chart)
			problems := drift(t, config, chart, valuesMeantToDiffer{})
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("drift reported %q, want a line containing %q", problems, tc.want)
			}
		})
	}
}

// setArg replaces the value of the container's flag that starts with prefix.
func setArg(t *testing.T, container map[string]any, prefix, value string) {
	t.Helper()
	args := container["args"].([]any)
	for i, a := range args {
		if strings.HasPrefix(a.(string), prefix) {
			args[i] = prefix + value
			return
		}
	}
	t.Fatalf("no %s flag in %v", prefix, args)
}

// rbacRule returns the first rule of a role that names resource.
func rbacRule(t *testing.T, role manifest, resource string) map[string]any {
	t.Helper()
	for _, r := range role.obj["rules"].([]any) {
		if slices.Contains(r.(map[string]any)["resources"].([]any), any(resource)) {
			return r.(map[string]any)
		}
	}
	t.Fatalf("%s has no rule for %s", role.key(), resource)
	return nil
}
