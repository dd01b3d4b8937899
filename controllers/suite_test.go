package controllers

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// apiServer is the kube-apiserver and etcd the envtest tests share, started
// by TestMain when their binaries are there (make envtest-assets).
type apiServer struct {
	cfg    *rest.Config
	scheme *runtime.Scheme
	client client.Client
}

var sharedAPIServer *apiServer

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var logs io.Writer = io.Discard
	if os.Getenv("BUYTRACKER_TEST_LOG") != "" {
		logs = os.Stderr
	}
	logf.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(logs)))

	assets := envtestAssets()
	if assets == "" {
		if os.Getenv("BUYTRACKER_REQUIRE_ENVTEST") != "" {
			fmt.Fprintln(os.Stderr, "envtest: no kube-apiserver and etcd found; run `make envtest-assets` or set KUBEBUILDER_ASSETS")
			return 1
		}
		fmt.Fprintln(os.Stderr, "envtest: kube-apiserver and etcd not built; API server tests skipped (`make test-operator` runs them)")
		return m.Run()
	}
	env := &envtest.Environment{
		// cert-manager's Certificate CRD (v1.21.2, verbatim from its
		// deploy/crds), for BuyTrackers that name an issuer.
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases"), filepath.Join("testdata", "crds")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtest: start kube-apiserver and etcd from %s: %v\n", assets, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "envtest: stop:", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "envtest: API server up in %s\n", time.Since(start).Round(100*time.Millisecond))

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		return 1
	}
	if err := buytrackerv1alpha1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		return 1
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest: client:", err)
		return 1
	}
	sharedAPIServer = &apiServer{cfg: cfg, scheme: scheme, client: c}
	return m.Run()
}

// envtestAssets is KUBEBUILDER_ASSETS, or the directory
// hack/build-k8s-assets.sh fills when both binaries are there.
func envtestAssets() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	cache := os.Getenv("BUYTRACKER_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache", "buytracker")
	}
	dir := filepath.Join(cache, "k8s", "v1.37.2", "bin")
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return ""
		}
	}
	return dir
}

// needAPIServer returns the shared API server, or skips the test.
func needAPIServer(t *testing.T) *apiServer {
	t.Helper()
	if sharedAPIServer == nil {
		t.Skip("no envtest API server (make envtest-assets)")
	}
	return sharedAPIServer
}

// newNamespace creates a namespace of the test's own.
func (s *apiServer) newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bt-"}}
	if err := s.client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// eventually polls cond until it returns nil, failing the test with the
// last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		<-tick.C
	}
}
