package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// apiServerConfig is the envtest kube-apiserver the tests share, started by
// TestMain when its binaries are there (make envtest-assets); nil otherwise.
var apiServerConfig *rest.Config

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if os.Getenv("BUYTRACKER_REQUIRE_ENVTEST") != "" {
			fmt.Fprintln(os.Stderr, "envtest: KUBEBUILDER_ASSETS is not set; run `make envtest-assets`")
			return 1
		}
		fmt.Fprintln(os.Stderr, "envtest: KUBEBUILDER_ASSETS not set; API server tests skipped (`make test-plugin` runs them)")
		return m.Run()
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "..", "..", "config", "crd", "bases")},
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
	apiServerConfig = cfg
	return m.Run()
}

func needAPIServer(t *testing.T) *rest.Config {
	t.Helper()
	if apiServerConfig == nil {
		t.Skip("no envtest API server (KUBEBUILDER_ASSETS)")
	}
	return apiServerConfig
}
