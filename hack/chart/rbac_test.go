package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// With watchNamespaces the chart grants config's rules through a Role in
// each of those namespaces, binds them to the operator's ServiceAccount,
// passes --watch-namespaces, and installs no ClusterRole.
func TestNamespacedModeGrantsTheRulesOnlyInTheWatchedNamespaces(t *testing.T) {
	r := needRenderers(t)
	var clusterRole rbacv1.ClusterRole
	if err := only(t, r.config(t), "ClusterRole").decode(&clusterRole); err != nil {
		t.Fatal(err)
	}
	want := grants(clusterRole.Rules)
	chart := r.chart(t, release, releaseNamespace, "watchNamespaces={shop,tills}")
	if problems := validate(chart, releaseNamespace, "shop", "tills"); len(problems) > 0 {
		t.Fatalf("invalid render:\n  %s", strings.Join(problems, "\n  "))
	}
	roles := map[string]bool{}
	for _, m := range chart {
		switch m.kind() {
		case "ClusterRole", "ClusterRoleBinding":
			t.Errorf("%s in namespaced mode", m.key())
		case "Role":
			var role rbacv1.Role
			if err := m.decode(&role); err != nil {
				t.Fatal(err)
			}
			if role.Name == "buytracker-leader-election-role" {
				continue
			}
			roles[role.Namespace] = true
			expect(t, m.key()+" name", role.Name, "buytracker-manager-role")
			if got := grants(role.Rules); !equality.Semantic.DeepEqual(got, want) {
				t.Errorf("%s grants %v, want config's ClusterRole's %v", m.key(), sortedSet(got), sortedSet(want))
			}
		case "RoleBinding":
			var b rbacv1.RoleBinding
			if err := m.decode(&b); err != nil {
				t.Fatal(err)
			}
			if b.Name == "buytracker-leader-election-rolebinding" {
				continue
			}
			expect(t, m.key()+" role", b.RoleRef, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "buytracker-manager-role"})
			expect(t, m.key()+" subjects", b.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "buytracker-controller-manager", Namespace: releaseNamespace}})
		}
	}
	expect(t, "namespaces with a manager Role", roles, map[string]bool{"shop": true, "tills": true})
	var d appsv1.Deployment
	if err := only(t, chart, "Deployment").decode(&d); err != nil {
		t.Fatal(err)
	}
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--watch-namespaces=shop,tills") {
		t.Errorf("manager args %q lack --watch-namespaces=shop,tills", args)
	}
}

// can asks the API server whether the ServiceAccount may do verb on
// resource in namespace ("" for every namespace).
func (ic installedChart) can(t *testing.T, serviceAccount, verb, group, resource, namespace string) bool {
	t.Helper()
	ns, name, _ := strings.Cut(serviceAccount, "/")
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   fmt.Sprintf("system:serviceaccount:%s:%s", ns, name),
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Verb: verb, Group: group, Resource: resource,
		},
	}}
	if err := ic.client.Create(t.Context(), review); err != nil {
		t.Fatalf("subject access review: %v", err)
	}
	return review.Status.Allowed
}

// Installed on a real API server (with RBAC), each mode grants what
// docs/operator.md says: cluster-wide, the listed verbs in every namespace
// and no others; namespaced, the same verbs in the watched namespaces only.
func TestInstallModesGrantWhatTheySay(t *testing.T) {
	ic := needAPIServer(t, needRenderers(t))
	for _, ns := range []string{"shop", "tills"} {
		if err := ic.client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	ic.helmOnCluster(t, "install", "wide", chartDir, "--namespace", "wide", "--create-namespace")
	ic.helmOnCluster(t, "install", "narrow", chartDir, "--namespace", "narrow", "--create-namespace", "--set", "watchNamespaces={shop}")
	const (
		wide   = "wide/wide-buytracker-controller-manager"
		narrow = "narrow/narrow-buytracker-controller-manager"
	)
	tests := []struct {
		sa, verb, group, resource, namespace string
		want                                 bool
	}{
		{wide, "list", "", "secrets", "tills", true},
		{wide, "list", "", "secrets", "", true},
		{wide, "patch", "", "secrets", "tills", true},
		{wide, "update", "", "secrets", "tills", false},
		{wide, "delete", "", "secrets", "tills", false},
		{wide, "delete", "", "pods", "tills", true},
		// A halted member's volume claim is deleted to replace it; the
		// only claim created is the backups' (<bt>-backups).
		{wide, "delete", "", "persistentvolumeclaims", "tills", true},
		{wide, "create", "", "persistentvolumeclaims", "tills", true},
		{wide, "patch", "", "persistentvolumeclaims", "tills", true},
		{wide, "update", "", "persistentvolumeclaims", "tills", false},
		// Backup Jobs are created and left to their TTL and owners.
		{wide, "create", "batch", "jobs", "tills", true},
		{wide, "delete", "batch", "jobs", "tills", false},
		{wide, "delete", "buytracker.dev", "buytrackerbackups", "tills", true},
		{wide, "patch", "buytracker.dev", "buytrackerbackups", "tills", false},
		{wide, "create", "networking.k8s.io", "networkpolicies", "tills", true},
		{wide, "delete", "networking.k8s.io", "networkpolicies", "tills", false},
		// The cluster-state ConfigMap is applied, never deleted (it goes with its BuyTracker).
		{wide, "create", "", "configmaps", "tills", true},
		{wide, "delete", "", "configmaps", "tills", false},
		{narrow, "list", "", "secrets", "shop", true},
		{narrow, "create", "", "secrets", "shop", true},
		{narrow, "delete", "", "pods", "shop", true},
		{narrow, "create", "networking.k8s.io", "networkpolicies", "shop", true},
		{narrow, "patch", "buytracker.dev", "buytrackers", "shop", true},
		{narrow, "list", "", "secrets", "tills", false},
		{narrow, "list", "", "secrets", "", false},
		{narrow, "delete", "", "pods", "tills", false},
		{narrow, "delete", "", "persistentvolumeclaims", "shop", true},
		{narrow, "delete", "", "persistentvolumeclaims", "tills", false},
		{narrow, "list", "buytracker.dev", "buytrackers", "", false},
		// Leader election stays in the operator's own namespace.
		{narrow, "create", "coordination.k8s.io", "leases", "narrow", true},
	}
	for _, tt := range tests {
		if got := ic.can(t, tt.sa, tt.verb, tt.group, tt.resource, tt.namespace); got != tt.want {
			where := tt.namespace
			if where == "" {
				where = "every namespace"
			}
			t.Errorf("%s may %s %s.%s in %s: %v, want %v", tt.sa, tt.verb, tt.resource, tt.group, where, got, tt.want)
		}
	}
	for _, rel := range []string{"wide", "narrow"} {
		ic.helmOnCluster(t, "uninstall", rel, "--namespace", rel)
	}
	var roles rbacv1.RoleList
	if err := ic.client.List(t.Context(), &roles); err != nil {
		t.Fatal(err)
	}
	for _, r := range roles.Items {
		if strings.HasPrefix(r.Name, "narrow-") {
			t.Errorf("Role %s/%s outlived helm uninstall", r.Namespace, r.Name)
		}
	}
}

func expect[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}
