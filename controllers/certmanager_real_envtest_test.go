package controllers

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
	"github.com/buytracker/buytracker/node/pki"
)

// certManagerAssets is the directory hack/build-cert-manager.sh fills
// (bin/cert-manager-controller, crds/), from BUYTRACKER_CERT_MANAGER or the
// cache, or "" when it has not been built.
func certManagerAssets(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BUYTRACKER_CERT_MANAGER")
	if dir == "" {
		mod, err := os.ReadFile(filepath.Join("..", "hack", "cert-manager", "go.mod"))
		if err != nil {
			t.Fatalf("read the cert-manager wrapper module: %v", err)
		}
		var version string
		for line := range strings.Lines(string(mod)) {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "require" && f[1] == "github.com/cert-manager/cert-manager" {
				version = f[2]
			}
		}
		cache := os.Getenv("BUYTRACKER_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return ""
			}
			cache = filepath.Join(home, ".cache", "buytracker")
		}
		dir = filepath.Join(cache, "cert-manager", version)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "cert-manager-controller")); err != nil {
		return ""
	}
	return dir
}

// runCertManager runs cert-manager's controller against the shared API
// server until the test ends; its log is printed if the test fails.
func runCertManager(t *testing.T, s *apiServer, dir, clusterResourceNamespace string) {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: s.cfg.Host, CertificateAuthorityData: s.cfg.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: s.cfg.CertData, ClientKeyData: s.cfg.KeyData, Token: s.cfg.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	cfg.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "bin", "cert-manager-controller"),
		"--kubeconfig="+kubeconfig, "--cluster-resource-namespace="+clusterResourceNamespace)
	var (
		mu  sync.Mutex
		log bytes.Buffer
	)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start cert-manager's controller: %v", err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-copied
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("cert-manager's log (last 8 KiB):\n%s", tail(log.Bytes(), 8<<10))
		}
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// TestCertManagerIssuesMemberCertificatesTheNodesAccept runs cert-manager's
// own controllers (hack/cert-manager, built by hack/build-cert-manager.sh)
// against the API server: a CA Issuer issues every member's certificate
// from the operator's Certificates, into Secrets in the layout the pods
// mount, which node/pki loads as each member's own.
func TestCertManagerIssuesMemberCertificatesTheNodesAccept(t *testing.T) {
	s := needAPIServer(t)
	dir := certManagerAssets(t)
	if dir == "" {
		if os.Getenv("BUYTRACKER_REQUIRE_ENVTEST") != "" {
			t.Fatal("cert-manager's controller is not built: run hack/build-cert-manager.sh (make cert-manager-assets)")
		}
		t.Skip("cert-manager's controller is not built (make cert-manager-assets)")
	}
	if _, err := envtest.InstallCRDs(s.cfg, envtest.CRDInstallOptions{Paths: []string{filepath.Join(dir, "crds")}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("install cert-manager's CRDs: %v", err)
	}
	ns := s.newNamespace(t)
	ctx := context.Background()

	caCert, caKey, err := pki.NewCA("promo issuer CA", time.Now().Add(caValidity))
	if err != nil {
		t.Fatal(err)
	}
	root := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "promo-root-ca", Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{keyTLSCert: caCert, keyTLSKey: caKey}}
	if err := s.client.Create(ctx, root); err != nil {
		t.Fatal(err)
	}
	issuer := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
		"metadata": map[string]any{"name": "promo-issuer", "namespace": ns},
		"spec":     map[string]any{"ca": map[string]any{"secretName": root.Name}},
	}}
	if err := s.client.Create(ctx, issuer); err != nil {
		t.Fatalf("create the CA Issuer: %v", err)
	}
	runCertManager(t, s, dir, ns)

	f := newDirectFixtureIn(t, ns, issuerSpec("promo-issuer"))
	start := time.Now()
	eventually(t, 2*time.Minute, "cert-manager issues every member's certificate", func() error {
		f.pass(t)
		c := f.condition(t, buytrackerv1alpha1.ConditionCertificatesReady)
		if c.Reason != buytrackerv1alpha1.ReasonCertManagerReady {
			return fmt.Errorf("CertificatesReady %s: %s", c.Reason, c.Message)
		}
		return nil
	})
	t.Logf("cert-manager issued three member certificates in %s", time.Since(start).Round(100*time.Millisecond))

	n := namesOf(f.buyTracker(t), "cluster.local")
	members := f.memberTLS(t, 3)
	for pod, sec := range members {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range sec.Data {
				if !yield(k) {
					return
				}
			}
		})
		expect(t, sec.Name+" keys", keys, []string{keyCABundle, keyTLSCert, keyTLSKey})
		expect(t, sec.Name+" type", sec.Type, corev1.SecretTypeTLS)
		if !bytes.Equal(bytes.TrimSpace(sec.Data[keyCABundle]), bytes.TrimSpace(caCert)) {
			t.Errorf("%s: ca.crt is not the issuer's CA", sec.Name)
		}
		// What the node does with --tls-dir: load the three files as its
		// own, for server and client use.
		tlsDir := filepath.Join(t.TempDir(), pod)
		if err := pki.WriteDir(tlsDir, sec.Data[keyCABundle], sec.Data[keyTLSCert], sec.Data[keyTLSKey]); err != nil {
			t.Fatalf("%s: %v", sec.Name, err)
		}
		if _, err := pki.NewReloader(tlsDir, nil); err != nil {
			t.Errorf("%s: the node would refuse its certificate: %v", pod, err)
		}
		leaf, err := parseCertPEM(sec.Data[keyTLSCert])
		if err != nil {
			t.Fatal(err)
		}
		for other := range members {
			if got := pki.NamesID(leaf, other); got != (other == pod) {
				t.Errorf("%s's certificate names %s: %v", pod, other, got)
			}
		}
		// Every member accepts every other with its own ca.crt.
		for other, otherSecret := range members {
			if err := verifyMember(n, other, otherSecret, sec.Data[keyCABundle]); err != nil {
				t.Errorf("%s does not accept %s: %v", pod, other, err)
			}
		}
	}
	if f.exists(t, "promo-ca", &corev1.Secret{}) {
		t.Error("the operator made its own CA although cert-manager issues")
	}
	if !f.exists(t, "promo", &appsv1.StatefulSet{}) {
		t.Error("no StatefulSet once every certificate is issued")
	}
}
