package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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
// gets a BuyTracker its StatefulSet and Secret.
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
	bt := &buytrackerv1alpha1.BuyTracker{ObjectMeta: metav1.ObjectMeta{Name: "promo", Namespace: "default"}}
	if err := c.Create(ctx, bt); err != nil {
		t.Fatalf("create buytracker: %v", err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"--kubeconfig=" + kubeconfig, "--node-image=example/node:1",
			"--health-probe-bind-address=0", "--metrics-bind-address=0", "--zap-log-level=error"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var sts appsv1.StatefulSet
		var secret corev1.Secret
		errSts := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "promo"}, &sts)
		errSecret := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "promo-admin-token"}, &secret)
		if errSts == nil && errSecret == nil {
			if img := sts.Spec.Template.Spec.Containers[0].Image; img != "example/node:1" {
				t.Errorf("image %q, want the --node-image", img)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no StatefulSet and Secret within 30s: %v, %v", errSts, errSecret)
		}
		select {
		case err := <-done:
			t.Fatalf("the manager stopped before it created the StatefulSet and Secret: %v", err)
		case <-tick.C:
		}
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
