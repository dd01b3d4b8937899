package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// installedChart is a kube-apiserver (envtest: no kubelet, so no pod runs)
// and a helm that talks to it.
type installedChart struct {
	renderers
	kubeconfig string
	client     client.Client
}

// needAPIServer starts kube-apiserver and etcd from KUBEBUILDER_ASSETS
// (`make test-chart` builds them and sets it), or skips the test.
func needAPIServer(t *testing.T, r renderers) installedChart {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if os.Getenv("BUYTRACKER_REQUIRE_CHART_TOOLS") != "" {
			t.Fatal("KUBEBUILDER_ASSETS must name kube-apiserver's and etcd's directory (make envtest-assets)")
		}
		t.Skip("KUBEBUILDER_ASSETS is unset: `make envtest-assets` builds kube-apiserver and etcd, then `make test-chart` installs the chart on them")
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop kube-apiserver and etcd: %v", err)
		}
	})
	admin, err := env.AddUser(envtest.User{Name: "chart-test", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := buytrackerv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(admin.Config(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return installedChart{renderers: r, kubeconfig: path, client: c}
}

// helmOnCluster runs helm against the API server.
func (ic installedChart) helmOnCluster(t *testing.T, args ...string) {
	t.Helper()
	ic.output(t, ic.renderers.helm, append(args, "--kubeconfig", ic.kubeconfig)...)
}

// get reads an object, reporting whether it exists.
func (ic installedChart) get(t *testing.T, key client.ObjectKey, obj client.Object) bool {
	t.Helper()
	err := ic.client.Get(t.Context(), key, obj)
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return true
}

func crd() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	return u
}

// The chart installs on a real API server with the end-to-end suite's
// values and the sample (which the CRD's schema validates and defaults),
// upgrades, installs again beside itself under another name, and uninstalls
// without taking the CRD, and so every BuyTracker, with it.
func TestChartInstallsUpgradesAndUninstalls(t *testing.T) {
	ic := needAPIServer(t, needRenderers(t))
	const ns = releaseNamespace
	ic.helmOnCluster(t, "install", release, chartDir, "--namespace", ns, "--create-namespace",
		"--set", "image.repository=buytracker/operator", "--set", "image.tag=dev", "--set", "image.pullPolicy=IfNotPresent",
		"--set", "nodeImage=buytracker/node:dev", "--set", "sample.enabled=true")

	var bt buytrackerv1alpha1.BuyTracker
	if !ic.get(t, client.ObjectKey{Namespace: ns, Name: "promo"}, &bt) {
		t.Fatal("the sample BuyTracker promo was not created")
	}
	if bt.Spec.Replicas == nil || *bt.Spec.Replicas != 3 || bt.Spec.Service.Port != 8080 {
		t.Errorf("sample spec %+v, want 3 replicas on port 8080", bt.Spec)
	}
	managerArgs := func() []string {
		t.Helper()
		var d appsv1.Deployment
		if !ic.get(t, client.ObjectKey{Namespace: ns, Name: "buytracker-controller-manager"}, &d) {
			t.Fatal("no Deployment buytracker-controller-manager")
		}
		return d.Spec.Template.Spec.Containers[0].Args
	}
	if args := managerArgs(); !slices.Contains(args, "--node-image=buytracker/node:dev") {
		t.Errorf("manager args %q, want --node-image=buytracker/node:dev", args)
	}

	ic.helmOnCluster(t, "upgrade", release, chartDir, "--namespace", ns, "--reuse-values", "--set", "nodeImage=buytracker/node:v2")
	if args := managerArgs(); !slices.Contains(args, "--node-image=buytracker/node:v2") {
		t.Errorf("after the upgrade, manager args %q, want --node-image=buytracker/node:v2", args)
	}

	// A second release, elsewhere: no cluster-scoped name is taken twice.
	ic.helmOnCluster(t, "install", "canary", chartDir, "--namespace", "canary", "--create-namespace")
	for _, name := range []string{"buytracker-manager-role", "canary-buytracker-manager-role"} {
		if !ic.get(t, client.ObjectKey{Name: name}, &rbacv1.ClusterRole{}) {
			t.Errorf("no ClusterRole %s", name)
		}
	}

	for _, rel := range [][2]string{{release, ns}, {"canary", "canary"}} {
		ic.helmOnCluster(t, "uninstall", rel[0], "--namespace", rel[1])
	}
	if ic.get(t, client.ObjectKey{Name: "buytracker-manager-role"}, &rbacv1.ClusterRole{}) {
		t.Error("the ClusterRole outlived helm uninstall")
	}
	if !ic.get(t, client.ObjectKey{Name: "buytrackers.buytracker.dev"}, crd()) {
		t.Error("helm uninstall deleted the CRD, and with it every BuyTracker")
	}
}
