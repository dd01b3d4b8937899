package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// TestManagerReconcilesThroughItsKubeconfig runs the manager as a user
// would, with --kubeconfig and --node-image, against a real API server,
// and checks that its wiring (scheme, filtered caches, watches, Events)
// gets a BuyTracker its StatefulSet, Secrets and NetworkPolicy, and that
// --watch-namespaces keeps it out of other namespaces.
func TestManagerReconcilesThroughItsKubeconfig(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if os.Getenv("BUYTRACKER_REQUIRE_ENVTEST") != "" {
			t.Fatal("KUBEBUILDER_ASSETS is not set (make envtest-assets)")
		}
		t.Skip("KUBEBUILDER_ASSETS is not set; make test-operator runs this test")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = buytrackerv1alpha1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// One BuyTracker in the watched namespace, one outside it.
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"elsewhere", "default"} {
		bt := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "promo", Namespace: ns}}
		if err := c.Create(ctx, bt); err != nil {
			t.Fatalf("create buytracker: %v", err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"--kubeconfig=" + kubeconfig, "--node-image=example/node:1",
			"--watch-namespaces=default", "--operator-namespace=ops",
			"--health-probe-bind-address=0", "--metrics-bind-address=0", "--zap-log-level=error"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var sts appsv1.StatefulSet
		var secret, ca corev1.Secret
		var policy networkingv1.NetworkPolicy
		errSts := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "promo"}, &sts)
		errSecret := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "promo-admin-token"}, &secret)
		errCA := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "promo-ca"}, &ca)
		errPolicy := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "promo"}, &policy)
		if errSts == nil && errSecret == nil && errCA == nil && errPolicy == nil {
			if img := sts.Spec.Template.Spec.Containers[0].Image; img != "example/node:1" {
				t.Errorf("image %q, want the --node-image", img)
			}
			admitsOps := false
			for _, rule := range policy.Spec.Ingress {
				for _, from := range rule.From {
					admitsOps = admitsOps || (from.NamespaceSelector != nil && from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "ops")
				}
			}
			if !admitsOps {
				t.Errorf("the NetworkPolicy does not admit the --operator-namespace: %+v", policy.Spec.Ingress)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no StatefulSet, Secrets and NetworkPolicy within 30s: %v, %v, %v, %v", errSts, errSecret, errCA, errPolicy)
		}
		select {
		case err := <-done:
			t.Fatalf("the manager stopped before it created the StatefulSet and Secret: %v", err)
		case <-tick.C:
		}
	}
	// Both were there when the manager started; the one outside
	// --watch-namespaces got nothing.
	var outside corev1.SecretList
	if err := c.List(ctx, &outside, client.InNamespace("elsewhere")); err != nil {
		t.Fatal(err)
	}
	for _, s := range outside.Items {
		t.Errorf("Secret %s made in a namespace the manager does not watch", s.Name)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("manager: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the manager did not stop within 30s")
	}
}

func TestWatchNamespacesRestrictTheCache(t *testing.T) {
	tests := []struct {
		flag    string
		want    []string
		wantErr bool
	}{
		{flag: "", want: nil},
		{flag: "shop", want: []string{"shop"}},
		{flag: "shop, tills,shop", want: []string{"shop", "tills"}},
		{flag: "shop,,tills", wantErr: true},
		{flag: "Shop", wantErr: true},
		{flag: "shop/tills", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseNamespaces(tt.flag)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseNamespaces(%q): error %v, want error %v", tt.flag, err, tt.wantErr)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("parseNamespaces(%q) = %q, want %q", tt.flag, got, tt.want)
		}
		opts := cacheOptions(got)
		if len(got) == 0 && opts.DefaultNamespaces != nil {
			t.Errorf("%q: cache restricted to %v, want every namespace", tt.flag, opts.DefaultNamespaces)
		}
		for _, ns := range got {
			if _, ok := opts.DefaultNamespaces[ns]; !ok || len(opts.DefaultNamespaces) != len(got) {
				t.Errorf("%q: cache namespaces %v, want %v", tt.flag, opts.DefaultNamespaces, got)
			}
		}
		for obj, by := range opts.ByObject {
			if by.Label == nil || by.Label.String() != "app.kubernetes.io/name=buytracker" {
				t.Errorf("%T cached with selector %v, want only the BuyTrackers' own", obj, by.Label)
			}
		}
	}
}

func TestBadFlagsStopTheManagerWithAClearError(t *testing.T) {
	for _, args := range [][]string{
		{"--watch-namespaces=Bad_Name"},
		{"--operator-namespace="},
		{"--node-image="},
		{"--max-concurrent-reconciles=0"},
	} {
		err := run(context.Background(), args)
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(strings.SplitN(args[0], "=", 2)[0], "--")) {
			t.Errorf("%v: error %v, want one naming the flag", args, err)
		}
	}
}
