package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// renderTimeout bounds each helm or kustomize run; both take well under a
// second.
const renderTimeout = 2 * time.Minute

// renderers are the helm and kustomize binaries the Makefile built, and the
// repository they render.
type renderers struct {
	helm, kustomize, root string
}

// needRenderers returns the tools named by BUYTRACKER_HELM and
// BUYTRACKER_KUSTOMIZE (`make test-chart` sets both). Without them the test
// is skipped, as under `go test ./...`, unless
// BUYTRACKER_REQUIRE_CHART_TOOLS is set.
func needRenderers(t *testing.T) renderers {
	t.Helper()
	r := renderers{helm: os.Getenv("BUYTRACKER_HELM"), kustomize: os.Getenv("BUYTRACKER_KUSTOMIZE")}
	if r.helm == "" || r.kustomize == "" {
		if os.Getenv("BUYTRACKER_REQUIRE_CHART_TOOLS") != "" {
			t.Fatal("BUYTRACKER_HELM and BUYTRACKER_KUSTOMIZE must name helm and kustomize")
		}
		t.Skip("BUYTRACKER_HELM and BUYTRACKER_KUSTOMIZE are unset; `make test-chart` sets them")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	r.root = root
	return r
}

// chart renders charts/buytracker as release in namespace, with --set
// values, CRDs included.
func (r renderers) chart(t *testing.T, release, namespace string, set ...string) []manifest {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace, "--include-crds"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return r.run(t, r.helm, args...)
}

// config renders config/default, what `make deploy` applies.
func (r renderers) config(t *testing.T) []manifest {
	t.Helper()
	return r.run(t, r.kustomize, "build", "config/default")
}

func (r renderers) run(t *testing.T, tool string, args ...string) []manifest {
	t.Helper()
	ms, err := parseManifests(r.output(t, tool, args...))
	if err != nil {
		t.Fatalf("%s %s: output: %v", filepath.Base(tool), strings.Join(args, " "), err)
	}
	return ms
}

// output runs a tool in the repository and returns its standard output,
// failing the test with its standard error.
func (r renderers) output(t *testing.T, tool string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), renderTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Dir = r.root
	// Keep helm away from the user's repositories, plugins and clusters.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home, "KUBECONFIG="+filepath.Join(home, "no-kubeconfig"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}
