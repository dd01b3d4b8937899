package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// kindSpec says how a kind the chart may render is checked.
type kindSpec struct {
	apiVersion    string
	clusterScoped bool
	newTyped      func() runtime.Object // nil: no Go type here; checked by field
}

func kindSpecs() map[string]kindSpec {
	return map[string]kindSpec{
		"CustomResourceDefinition": {apiVersion: "apiextensions.k8s.io/v1", clusterScoped: true},
		"ClusterRole":              {"rbac.authorization.k8s.io/v1", true, func() runtime.Object { return &rbacv1.ClusterRole{} }},
		"ClusterRoleBinding":       {"rbac.authorization.k8s.io/v1", true, func() runtime.Object { return &rbacv1.ClusterRoleBinding{} }},
		"Role":                     {"rbac.authorization.k8s.io/v1", false, func() runtime.Object { return &rbacv1.Role{} }},
		"RoleBinding":              {"rbac.authorization.k8s.io/v1", false, func() runtime.Object { return &rbacv1.RoleBinding{} }},
		"ServiceAccount":           {"v1", false, func() runtime.Object { return &corev1.ServiceAccount{} }},
		"Service":                  {"v1", false, func() runtime.Object { return &corev1.Service{} }},
		"Deployment":               {"apps/v1", false, func() runtime.Object { return &appsv1.Deployment{} }},
		"BuyTracker":               {"buytracker.dev/v1alpha1", false, func() runtime.Object { return &buytrackerv1alpha1.BuyTracker{} }},
		"ServiceMonitor":           {apiVersion: "monitoring.coreos.com/v1"},
		"PodMonitor":               {apiVersion: "monitoring.coreos.com/v1"},
		"PrometheusRule":           {apiVersion: "monitoring.coreos.com/v1"},
		"ConfigMap":                {"v1", false, func() runtime.Object { return &corev1.ConfigMap{} }},
	}
}

// rendered is a render decoded: its objects by key, and the typed ones.
type rendered struct {
	keys  map[string]bool
	typed map[string]runtime.Object
}

// validate checks a render on its own, as an API server would and more:
// each object has a known kind and apiVersion, decodes into its Go type
// with no unknown field, sits in the release's namespace unless cluster
// scoped (or a Role or RoleBinding in one of the watched namespaces), and
// every reference resolves (ServiceAccounts, roles, selectors, ports).
func validate(ms []manifest, namespace string, watched ...string) []string {
	specs := kindSpecs()
	r := rendered{keys: map[string]bool{}, typed: map[string]runtime.Object{}}
	var problems []string
	for _, m := range ms {
		spec, ok := specs[m.kind()]
		switch {
		case !ok:
			problems = append(problems, m.key()+": a kind the chart is not meant to install")
			continue
		case m.apiVersion() != spec.apiVersion:
			problems = append(problems, fmt.Sprintf("%s: apiVersion %s, want %s", m.key(), m.apiVersion(), spec.apiVersion))
		case spec.clusterScoped && m.namespace() != "":
			problems = append(problems, m.key()+": cluster-scoped, but has a namespace")
		case !spec.clusterScoped && m.namespace() != namespace &&
			!((m.kind() == "Role" || m.kind() == "RoleBinding") && slices.Contains(watched, m.namespace())):
			problems = append(problems, fmt.Sprintf("%s: namespace %q, want the release's, %q", m.key(), m.namespace(), namespace))
		}
		if r.keys[m.key()] {
			problems = append(problems, m.key()+": rendered twice")
		}
		r.keys[m.key()] = true
		if spec.newTyped != nil {
			obj := spec.newTyped()
			if err := m.decode(obj); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", m.key(), err))
				continue
			}
			r.typed[m.key()] = obj
		}
	}
	for _, m := range ms {
		problems = append(problems, r.references(m)...)
	}
	return problems
}

// references checks what one object names.
func (r rendered) references(m manifest) []string {
	var problems []string
	need := func(what, key string) {
		if !r.keys[key] {
			problems = append(problems, fmt.Sprintf("%s: %s %s is not in the render", m.key(), what, key))
		}
	}
	switch obj := r.typed[m.key()].(type) {
	case *appsv1.Deployment:
		need("serviceAccountName", "ServiceAccount "+obj.Namespace+"/"+obj.Spec.Template.Spec.ServiceAccountName)
		sel, err := metav1.LabelSelectorAsSelector(obj.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(obj.Spec.Template.Labels)) {
			problems = append(problems, m.key()+": the selector does not select the pod template")
		}
	case *rbacv1.ClusterRoleBinding:
		need("roleRef", obj.RoleRef.Kind+" "+obj.RoleRef.Name)
		problems = append(problems, r.subjects(m, obj.Subjects, "")...)
	case *rbacv1.RoleBinding:
		ref := obj.RoleRef.Kind + " " + obj.RoleRef.Name
		if obj.RoleRef.Kind == "Role" {
			ref = "Role " + obj.Namespace + "/" + obj.RoleRef.Name
		}
		need("roleRef", ref)
		problems = append(problems, r.subjects(m, obj.Subjects, obj.Namespace)...)
	case *corev1.Service:
		problems = append(problems, r.serviceTargets(m, obj)...)
	case nil:
		if m.kind() == "ServiceMonitor" {
			problems = append(problems, r.monitorTargets(m)...)
		}
	}
	return problems
}

func (r rendered) subjects(m manifest, subjects []rbacv1.Subject, namespace string) []string {
	var problems []string
	for _, s := range subjects {
		if s.Kind != "ServiceAccount" {
			problems = append(problems, fmt.Sprintf("%s: subject %s %s, want the operator's ServiceAccount", m.key(), s.Kind, s.Name))
			continue
		}
		ns := s.Namespace
		if ns == "" {
			ns = namespace
		}
		if !r.keys["ServiceAccount "+ns+"/"+s.Name] {
			problems = append(problems, fmt.Sprintf("%s: subject ServiceAccount %s/%s is not in the render", m.key(), ns, s.Name))
		}
	}
	return problems
}

// serviceTargets: the Service selects the operator's pods, and each port's
// targetPort is a port of theirs.
func (r rendered) serviceTargets(m manifest, svc *corev1.Service) []string {
	var problems []string
	selected := false
	for _, obj := range r.typed {
		d, ok := obj.(*appsv1.Deployment)
		if !ok || d.Namespace != svc.Namespace || len(svc.Spec.Selector) == 0 ||
			!labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		selected = true
		for _, p := range svc.Spec.Ports {
			if !hasContainerPort(d.Spec.Template.Spec, p.TargetPort.String()) {
				problems = append(problems, fmt.Sprintf("%s: port %s: targetPort %s is no container port of %s", m.key(), p.Name, p.TargetPort.String(), d.Name))
			}
		}
	}
	if !selected {
		problems = append(problems, m.key()+": selects no pods of the render")
	}
	return problems
}

func hasContainerPort(pod corev1.PodSpec, port string) bool {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
				return true
			}
		}
	}
	return false
}

// monitorTargets: the ServiceMonitor selects a Service of the render in its
// namespace, and scrapes a port that Service has.
func (r rendered) monitorTargets(m manifest) []string {
	var sel metav1.LabelSelector
	if err := decodeField(at(m.obj, "spec", "selector"), &sel); err != nil {
		return []string{fmt.Sprintf("%s: spec.selector: %v", m.key(), err)}
	}
	selector, err := metav1.LabelSelectorAsSelector(&sel)
	if err != nil || selector.Empty() {
		return []string{m.key() + ": spec.selector selects nothing in particular"}
	}
	var problems []string
	selected := false
	for _, obj := range r.typed {
		svc, ok := obj.(*corev1.Service)
		if !ok || svc.Namespace != m.namespace() || !selector.Matches(labels.Set(svc.Labels)) {
			continue
		}
		selected = true
		endpoints, _ := at(m.obj, "spec", "endpoints").([]any)
		if len(endpoints) == 0 {
			problems = append(problems, m.key()+": no endpoints")
		}
		for _, e := range endpoints {
			port := str(e, "port")
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == port }) {
				problems = append(problems, fmt.Sprintf("%s: endpoint port %q is no port of Service %s", m.key(), port, svc.Name))
			}
		}
	}
	if !selected {
		problems = append(problems, m.key()+": selects no Service of the render")
	}
	return problems
}

func reportInvalid(t *testing.T, problems []string) {
	t.Helper()
	if len(problems) > 0 {
		t.Errorf("the rendered chart is invalid:\n  %s", strings.Join(problems, "\n  "))
	}
}

func TestRenderedChartIsValid(t *testing.T) {
	r := needRenderers(t)
	for _, tc := range []struct {
		name, release, namespace string
		set                      []string
	}{
		{"default values", release, releaseNamespace, nil},
		{"the end-to-end suite's values", release, releaseNamespace, []string{
			"image.repository=buytracker/operator", "image.tag=dev", "image.pullPolicy=IfNotPresent", "nodeImage=buytracker/node:dev"}},
		{"every option on", release, releaseNamespace, []string{"serviceMonitor.enabled=true", "sample.enabled=true"}},
		{"metrics Service alone", release, releaseNamespace, []string{"metrics.service.enabled=true", "metrics.port=9090"}},
		{"sample with every field", "shop", "shop", []string{
			"sample.enabled=true", "sample.name=orders", "sample.replicas=5", "sample.image=buytracker/node:v2",
			"sample.storage.storageClassName=fast", "sample.storage.whenDeleted=Delete", "sample.service.type=LoadBalancer"}},
		{"another release and namespace", "tracker", "ops", []string{"serviceMonitor.enabled=true"}},
		{"fullnameOverride and scheduling", release, releaseNamespace, []string{
			"fullnameOverride=bt", "replicaCount=2", "nodeSelector.kubernetes\\.io/os=linux", "extraArgs={--zap-log-level=debug}",
			"clusterDomain=example.internal", "serviceAccount.annotations.team=payments", "priorityClassName=system-cluster-critical"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reportInvalid(t, validate(r.chart(t, tc.release, tc.namespace, tc.set...), tc.namespace))
		})
	}
}

// The sample's values reach the BuyTracker; unset ones are left to the CRD's
// defaults.
func TestSampleTakesItsValues(t *testing.T) {
	r := needRenderers(t)
	var bt buytrackerv1alpha1.BuyTracker
	ms := r.chart(t, release, releaseNamespace, "sample.enabled=true", "sample.name=orders", "sample.replicas=5", "sample.storage.size=")
	if err := only(t, ms, "BuyTracker").decode(&bt); err != nil {
		t.Fatal(err)
	}
	if bt.Name != "orders" || bt.Spec.Replicas == nil || *bt.Spec.Replicas != 5 {
		t.Errorf("sample %s with replicas %v, want orders with 5", bt.Name, bt.Spec.Replicas)
	}
	if bt.Spec.Image != "" || bt.Spec.Storage.Size != nil {
		t.Errorf("sample has image %q and storage size %v, want both unset (the operator's and the CRD's defaults)", bt.Spec.Image, bt.Spec.Storage.Size)
	}
	if _, ok := bt.Labels["app.kubernetes.io/name"]; ok {
		t.Errorf("sample labelled app.kubernetes.io/name=%s: that label is the operator's and the node pods'", bt.Labels["app.kubernetes.io/name"])
	}
}

// Two releases never share a cluster-scoped object: the ClusterRole and its
// binding carry the release's fullname.
func TestClusterScopedNamesCarryTheRelease(t *testing.T) {
	r := needRenderers(t)
	names := map[string]string{}
	for _, rel := range []string{"alpha", "beta"} {
		for _, m := range r.chart(t, rel, "ops") {
			if m.kind() != "ClusterRole" && m.kind() != "ClusterRoleBinding" {
				continue
			}
			if !strings.HasPrefix(m.name(), rel+"-buytracker-") {
				t.Errorf("release %s: %s does not start with the release's fullname %s-buytracker", rel, m.key(), rel)
			}
			if other, ok := names[m.key()]; ok {
				t.Errorf("releases %s and %s both install %s", other, rel, m.key())
			}
			names[m.key()] = rel
		}
	}
	if len(names) != 4 {
		t.Errorf("cluster-scoped objects of two releases: %v, want a ClusterRole and a ClusterRoleBinding each", names)
	}
}

// The validity check bites: a broken reference or a misspelt field in a
// template is reported.
func TestValidateReportsBrokenRenders(t *testing.T) {
	r := needRenderers(t)
	good := r.chart(t, release, releaseNamespace, "serviceMonitor.enabled=true", "sample.enabled=true")
	if problems := validate(good, releaseNamespace); len(problems) > 0 {
		t.Fatalf("the unchanged render is already invalid: %v", problems)
	}
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, ms []manifest)
		want   string
	}{
		{"another ServiceAccount in the pod", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "Deployment").obj, "spec", "template", "spec")["serviceAccountName"] = "default"
		}, "serviceAccountName ServiceAccount buytracker-system/default is not in the render"},
		{"a binding to a missing ClusterRole", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "ClusterRoleBinding").obj, "roleRef")["name"] = "manager-role"
		}, "roleRef ClusterRole manager-role is not in the render"},
		{"a misspelt container field", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "Deployment").obj, "spec", "template", "spec", "containers", 0)["imagePulPolicy"] = "Always"
		}, `unknown field "spec.template.spec.containers[0].imagePulPolicy"`},
		{"a misspelt sample field", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "BuyTracker").obj, "spec")["replica"] = 3.0
		}, `unknown field "spec.replica"`},
		{"a metrics Service aimed at no port", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "Service").obj, "spec", "ports", 0)["targetPort"] = "http"
		}, "targetPort http is no container port"},
		{"a ServiceMonitor that selects nothing", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "ServiceMonitor").obj, "spec", "selector", "matchLabels")["app.kubernetes.io/component"] = "web"
		}, "selects no Service of the render"},
		{"an object in another namespace", func(t *testing.T, ms []manifest) {
			object(t, only(t, ms, "Role").obj, "metadata")["namespace"] = "default"
		}, `namespace "default", want the release's`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := clone(t, good)
			tc.change(t, ms)
			problems := validate(ms, releaseNamespace)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("validate reported %q, want a line containing %q", problems, tc.want)
			}
		})
	}
}
