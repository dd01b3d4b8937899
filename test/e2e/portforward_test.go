//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/buytracker/buytracker/node/adminapi"
)

// Ports every node listens on (SPEC "Node command line").
const (
	clientPort = 8080
	adminPort  = 8081
)

// podPorts is a port-forward to one pod's client and admin ports, from
// 127.0.0.1 on this machine through the API server and the kubelet: the
// way a test reaches each pod on any cluster, whatever its network.
type podPorts struct {
	clientURL string
	admin     *adminapi.Client
	stop      context.CancelFunc
	done      chan struct{}
}

// Close stops the forward and waits for it.
func (p *podPorts) Close() {
	p.stop()
	<-p.done
}

// forward opens a port-forward to pod's client and admin ports. The admin
// client speaks HTTPS (adminTLS) and carries the cluster's bearer token.
func (e *env) forward(ctx context.Context, pod, token string) (*podPorts, error) {
	transport, upgrader, err := spdy.RoundTripperFor(e.cfg)
	if err != nil {
		return nil, fmt.Errorf("spdy round tripper: %w", err)
	}
	url := e.kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(e.ns).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)

	fctx, stop := context.WithCancel(context.Background())
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddressesWithContext(fctx, dialer, []string{"127.0.0.1"},
		[]string{fmt.Sprintf("0:%d", clientPort), fmt.Sprintf("0:%d", adminPort)}, ready, io.Discard, io.Discard)
	if err != nil {
		stop()
		return nil, fmt.Errorf("port-forward to %s: %w", pod, err)
	}
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(done)
		errc <- pf.ForwardPorts()
	}()
	select {
	case <-ready:
	case err := <-errc:
		stop()
		<-done
		return nil, fmt.Errorf("port-forward to %s: %w", pod, err)
	case <-ctx.Done():
		stop()
		<-done
		return nil, fmt.Errorf("port-forward to %s: %w", pod, ctx.Err())
	case <-time.After(30 * time.Second):
		stop()
		<-done
		return nil, fmt.Errorf("port-forward to %s: not ready after 30s", pod)
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 2 {
		stop()
		<-done
		return nil, fmt.Errorf("port-forward to %s: ports %v: %v", pod, ports, err)
	}
	p := &podPorts{stop: stop, done: done}
	for _, fp := range ports {
		switch fp.Remote {
		case clientPort:
			p.clientURL = fmt.Sprintf("http://127.0.0.1:%d", fp.Local)
		case adminPort:
			tlsConfig, err := e.adminTLS(ctx, pod)
			if err != nil {
				p.Close()
				return nil, err
			}
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
			adm, err := adminapi.NewClient(fmt.Sprintf("https://127.0.0.1:%d", fp.Local), token, client)
			if err != nil {
				p.Close()
				return nil, err
			}
			p.admin = adm
		}
	}
	return p, nil
}

// adminTLS is how the test, like the operator, checks a node's admin
// API (HTTPS under the operator): the certificate must chain to the CAs
// of the pod's BuyTracker (read afresh, so that it follows a CA rotation)
// and name the pod's stable DNS name, whatever 127.0.0.1 port reaches it.
func (e *env) adminTLS(ctx context.Context, pod string) (*tls.Config, error) {
	i := strings.LastIndex(pod, "-")
	if i < 0 {
		return nil, fmt.Errorf("%s is not a pod of a BuyTracker", pod)
	}
	bt := pod[:i]
	s, err := e.kube.CoreV1().Secrets(e.ns).Get(ctx, bt+"-ca", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("CA secret of %s: %w", bt, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.Data["ca.crt"]) {
		return nil, fmt.Errorf("secret %s-ca has no ca.crt", bt)
	}
	return &tls.Config{
		RootCAs:    pool,
		ServerName: fmt.Sprintf("%s.%s-peers.%s.svc", pod, bt, e.ns),
		MinVersion: tls.VersionTLS12,
	}, nil
}

// withPod runs fn with a fresh port-forward to pod and closes it after.
func (e *env) withPod(ctx context.Context, pod, token string, fn func(p *podPorts) error) error {
	p, err := e.forward(ctx, pod, token)
	if err != nil {
		return err
	}
	defer p.Close()
	return fn(p)
}

// forwardPort opens a port-forward from 127.0.0.1 to one port of a pod and
// answers the local port and how to close it.
func (e *env) forwardPort(ctx context.Context, pod string, port int) (int, func(), error) {
	transport, upgrader, err := spdy.RoundTripperFor(e.cfg)
	if err != nil {
		return 0, nil, fmt.Errorf("spdy round tripper: %w", err)
	}
	url := e.kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(e.ns).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	fctx, stop := context.WithCancel(context.Background())
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddressesWithContext(fctx, dialer, []string{"127.0.0.1"},
		[]string{fmt.Sprintf("0:%d", port)}, ready, io.Discard, io.Discard)
	if err != nil {
		stop()
		return 0, nil, fmt.Errorf("port-forward to %s:%d: %w", pod, port, err)
	}
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(done)
		errc <- pf.ForwardPorts()
	}()
	closeFwd := func() { stop(); <-done }
	select {
	case <-ready:
	case err := <-errc:
		closeFwd()
		return 0, nil, fmt.Errorf("port-forward to %s:%d: %w", pod, port, err)
	case <-ctx.Done():
		closeFwd()
		return 0, nil, fmt.Errorf("port-forward to %s:%d: %w", pod, port, ctx.Err())
	case <-time.After(30 * time.Second):
		closeFwd()
		return 0, nil, fmt.Errorf("port-forward to %s:%d: not ready after 30s", pod, port)
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		closeFwd()
		return 0, nil, fmt.Errorf("port-forward to %s:%d: ports %v: %v", pod, port, ports, err)
	}
	return int(ports[0].Local), closeFwd, nil
}
