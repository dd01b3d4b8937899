// Command cert-manager-controller runs the part of cert-manager's controller
// that issues certificates from a CA Issuer: the Certificate controllers
// (trigger, key manager, request manager, issuing, readiness, revision
// manager), the CertificateRequest approver and CA signer, and the Issuer
// and ClusterIssuer controllers. It is cert-manager's own code, wired as
// its cmd/controller wires it, without the ACME, Vault and Venafi issuers
// (their cloud SDKs would triple the build) and without the webhook. The
// operator's envtest suite runs it against its API server
// (controllers/certmanager_real_envtest_test.go).
//
// Its own module, so the repository's `go vet ./...` and `go test ./...`
// never see it; hack/build-cert-manager.sh builds it into the cache.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
)

// controllers are the registered controllers this binary runs, by
// cert-manager's names.
var controllers = []string{
	"issuers", "clusterissuers",
	"certificates-trigger", "certificates-key-manager", "certificates-request-manager",
	"certificates-issuing", "certificates-readiness", "certificates-revision-manager",
	"certificaterequests-approver", "certificaterequests-issuer-ca",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager-controller:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cert-manager-controller", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server")
	clusterResourceNamespace := fs.String("cluster-resource-namespace", "cert-manager", "namespace of the Secrets ClusterIssuers name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   50,
		KubernetesAPIBurst: 100,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: *clusterResourceNamespace},
		CertificateOptions: controllerpkg.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Second,
			CertificateRequestMaximumBackoffDuration: 10 * time.Second,
		},
	})
	if err != nil {
		return fmt.Errorf("controller context: %w", err)
	}
	var loops []controllerpkg.Interface
	for _, name := range controllers {
		fn, ok := controllerpkg.Known()[name]
		if !ok {
			return fmt.Errorf("controller %q is not registered", name)
		}
		c, err := fn(factory)
		if err != nil {
			return fmt.Errorf("controller %q: %w", name, err)
		}
		loops = append(loops, c)
	}
	// The controllers registered their informers while being built; start
	// them all now (each controller waits for its caches to sync).
	shared, err := factory.Build()
	if err != nil {
		return fmt.Errorf("controller context: %w", err)
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	fmt.Fprintln(os.Stderr, "cert-manager-controller: running", len(loops), "controllers")
	var wg sync.WaitGroup
	errs := make(chan error, len(loops))
	for i, c := range loops {
		wg.Go(func() {
			if err := c.Run(1, ctx); err != nil {
				errs <- fmt.Errorf("controller %q: %w", controllers[i], err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(func() []error {
		var out []error
		for err := range errs {
			out = append(out, err)
		}
		return out
	}()...)
}
