//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// options is what the suite is told by its environment; `make test-e2e`
// sets every variable, the defaults fit a hand-run against a kind cluster
// made by hack/kind/cluster.sh with the images loaded.
type options struct {
	kubeconfig        string
	helm              string // helm binary
	chart             string // chart directory
	operatorNamespace string
	operatorImage     string // repository:tag of the operator image
	nodeImage         string // the node image the operator defaults to
	nodeImageRolled   string // a second tag of the node image, for the rolling update
	artifacts         string // where logs go when a test fails
	plugin            string // bin/kubectl-buytracker
	seaweedfsImage    string // the in-cluster object store's image (hack/image/build.sh seaweedfs)
}

func optionsFromEnv(t *testing.T) options {
	t.Helper()
	get := func(key, def string) string {
		if v := os.Getenv(key); v != "" {
			return v
		}
		return def
	}
	o := options{
		kubeconfig:        os.Getenv("KUBECONFIG"),
		helm:              get("BUYTRACKER_E2E_HELM", "helm"),
		chart:             get("BUYTRACKER_E2E_CHART", "../../charts/buytracker"),
		operatorNamespace: get("BUYTRACKER_E2E_OPERATOR_NAMESPACE", "buytracker-system"),
		operatorImage:     get("BUYTRACKER_E2E_OPERATOR_IMAGE", "buytracker/operator:dev"),
		nodeImage:         get("BUYTRACKER_E2E_NODE_IMAGE", "buytracker/node:dev"),
		nodeImageRolled:   get("BUYTRACKER_E2E_NODE_IMAGE_ROLLED", "buytracker/node:dev-rolled"),
		artifacts:         get("BUYTRACKER_E2E_ARTIFACTS", filepath.Join(os.TempDir(), "buytracker-e2e-artifacts")),
		plugin:            get("BUYTRACKER_E2E_PLUGIN", "../../bin/kubectl-buytracker"),
		seaweedfsImage:    get("BUYTRACKER_E2E_SEAWEEDFS_IMAGE", "buytracker/seaweedfs:dev"),
	}
	if o.kubeconfig == "" {
		t.Fatal("KUBECONFIG is not set: the end-to-end suite runs against the cluster it names (make test-e2e creates one)")
	}
	return o
}

// env is one run's handle on the cluster.
type env struct {
	opts options
	cfg  *rest.Config
	kube kubernetes.Interface
	k8s  client.Client
	ns   string // the test namespace, created by newEnv
	// s3Pod is the object store's pod, once deploySeaweedFS ran.
	s3Pod string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	opts := optionsFromEnv(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", opts.kubeconfig)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", opts.kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubernetes client: %v", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := buytrackerv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("controller-runtime client: %v", err)
	}
	e := &env{opts: opts, cfg: cfg, kube: kube, k8s: k8s, ns: "e2e-" + rand.String(5)}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace %s: %v", e.ns, err)
	}
	t.Logf("test namespace %s", e.ns)
	return e
}

// deleteNamespace removes the test namespace (and the PVCs in it).
func (e *env) deleteNamespace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := e.k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete namespace %s: %v", e.ns, err)
	}
}

// eventually polls cond every interval until it returns true, an error
// that is not retryable, or timeout passes; the failure names what was
// awaited and the last reason cond gave for not being done.
func eventually(ctx context.Context, t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (done bool, reason string, err error)) {
	t.Helper()
	if err := poll(ctx, timeout, cond); err != nil {
		t.Fatalf("waiting up to %s for %s: %v", timeout, what, err)
	}
}

func poll(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) (bool, string, error)) error {
	lastReason := "never checked"
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		done, reason, err := cond(ctx)
		if reason != "" {
			lastReason = reason
		}
		return done, err
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || wait.Interrupted(err) {
			return fmt.Errorf("timed out; last state: %s", lastReason)
		}
		return fmt.Errorf("%w (last state: %s)", err, lastReason)
	}
	return nil
}

// run executes a command with a bound and returns its combined output.
func run(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// dumpOnFailure writes, when the test failed, the logs of every pod (and
// the previous container's, if it restarted) and the events of the given
// namespaces into the artifacts directory.
func (e *env) dumpOnFailure(t *testing.T, namespaces ...string) {
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(e.opts.artifacts, e.ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("artifacts: %v", err)
		return
	}
	for _, ns := range namespaces {
		pods, err := e.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Logf("list pods in %s: %v", ns, err)
			continue
		}
		for _, p := range pods.Items {
			for _, c := range p.Spec.Containers {
				for _, previous := range []bool{false, true} {
					suffix := ""
					if previous {
						suffix = ".previous"
					}
					req := e.kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, Previous: previous})
					data, err := req.DoRaw(ctx)
					if err != nil {
						continue // no previous container, mostly
					}
					name := filepath.Join(dir, fmt.Sprintf("%s_%s_%s%s.log", ns, p.Name, c.Name, suffix))
					_ = os.WriteFile(name, data, 0o644)
				}
			}
		}
		events, err := e.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			var b strings.Builder
			for _, ev := range events.Items {
				fmt.Fprintf(&b, "%s %s %s/%s %s: %s\n", ev.LastTimestamp.Format(time.RFC3339), ev.Type,
					ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason, ev.Message)
			}
			_ = os.WriteFile(filepath.Join(dir, ns+"_events.txt"), []byte(b.String()), 0o644)
		}
	}
	t.Logf("pod logs and events of %v written to %s", namespaces, dir)
}

// podLogs returns the current container's log of a pod.
func (e *env) podLogs(ctx context.Context, pod string) (string, error) {
	rc, err := e.kube.CoreV1().Pods(e.ns).GetLogs(pod, &corev1.PodLogOptions{}).Stream(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return string(data), err
}
