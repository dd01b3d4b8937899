package podconn

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	streamhttp "k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/pki"
)

// portForwardEndpoint serves pods/NAME/portforward the way the kubelet
// does behind the API server (protocol portforward.k8s.io over SPDY; it
// refuses websockets, so the plugin's fallback to SPDY is exercised):
// streams come in pairs by request ID, and each data stream is joined to a
// TCP connection to target. A failed dial is reported on the error stream.
// It records the paths it was asked for.
type portForwardEndpoint struct {
	target string
	mu     sync.Mutex
	paths  []string
}

func (e *portForwardEndpoint) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	e.mu.Lock()
	e.paths = append(e.paths, req.Method+" "+req.URL.Path)
	e.mu.Unlock()
	if strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "websockets are not served here", http.StatusBadRequest)
		return
	}
	if _, err := streamhttp.Handshake(req, w, []string{"portforward.k8s.io"}); err != nil {
		return
	}
	streams := make(chan streamhttp.Stream, 16)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, req, func(s streamhttp.Stream, _ <-chan struct{}) error {
		streams <- s
		return nil
	})
	if conn == nil {
		return
	}
	defer conn.Close()
	type pair struct{ errs, data streamhttp.Stream }
	pairs := map[string]*pair{}
	for {
		select {
		case s := <-streams:
			id := s.Headers().Get(corev1.PortForwardRequestIDHeader)
			p := pairs[id]
			if p == nil {
				p = &pair{}
				pairs[id] = p
			}
			if s.Headers().Get(corev1.StreamType) == corev1.StreamTypeError {
				p.errs = s
			} else {
				p.data = s
			}
			if p.errs != nil && p.data != nil {
				delete(pairs, id)
				go e.forward(p.errs, p.data)
			}
		case <-conn.CloseChan():
			return
		}
	}
}

func (e *portForwardEndpoint) forward(errs, data streamhttp.Stream) {
	defer errs.Close()
	defer data.Close()
	c, err := net.Dial("tcp", e.target)
	if err != nil {
		fmt.Fprintf(errs, "error forwarding port 8081 to pod: %v", err)
		return
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, data)
		close(done)
	}()
	_, _ = io.Copy(data, c)
	<-done
}

// memberServer is a TLS server with the certificate the operator issues
// for pod promo-0 of BuyTracker promo in namespace shop, answering
// GET /status as a member does.
func memberServer(t *testing.T) (addr string, caPEM []byte) {
	t.Helper()
	caPEM, caKey, err := pki.NewCA("test CA", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := pki.IssueMember(caPEM, caKey, "promo-0", []string{"promo-0.promo-peers.shop.svc"}, nil, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(adminapi.Status{ID: "promo-0", State: "Leader", Term: 3})
	}))
	cert, err := tlsKeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ts.TLS = cert
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String(), caPEM
}

// apiServer serves the port-forward endpoint over HTTPS and returns a
// PortForward that reaches it as it would an API server.
func apiServer(t *testing.T, e *portForwardEndpoint) *PortForward {
	t.Helper()
	ts := httptest.NewTLSServer(e)
	t.Cleanup(ts.Close)
	cfg := &rest.Config{Host: ts.URL, TLSClientConfig: rest.TLSClientConfig{
		CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pf := NewPortForward(cfg, cs.CoreV1().RESTClient(), "shop", AdminPort)
	t.Cleanup(func() { _ = pf.Close() })
	return pf
}

func TestAdminCallsTravelThroughThePortForwardWithTLSEndToEnd(t *testing.T) {
	addr, caPEM := memberServer(t)
	e := &portForwardEndpoint{target: addr}
	pf := apiServer(t, e)
	clients, err := NewAdminClients(pf, Credentials{Token: "s3cret", CABundle: caPEM})
	if err != nil {
		t.Fatal(err)
	}
	c, err := clients.Client(MemberOf("promo", "shop", "promo-0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 2 {
		s, err := c.Status(ctx)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if s.ID != "promo-0" || s.Term != 3 {
			t.Errorf("call %d: status %+v", i, s)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var upgrades []string
	for _, p := range e.paths {
		if strings.HasPrefix(p, "POST ") {
			upgrades = append(upgrades, p)
		}
	}
	// One SPDY connection carries both calls' streams.
	if want := "POST /api/v1/namespaces/shop/pods/promo-0/portforward"; len(upgrades) != 1 || upgrades[0] != want {
		t.Errorf("port-forward requests %v, want one %s (after the websocket attempt)", e.paths, want)
	}
}

func TestAPortThePodRefusesIsReportedFromTheErrorStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	pf := apiServer(t, &portForwardEndpoint{target: closed})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pf.DialPod(ctx, "promo-0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.Read(make([]byte, 1))
	if err == nil || !strings.Contains(err.Error(), "port-forward to pod promo-0 port 8081: error forwarding port 8081 to pod") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("read from a refused port: %v, want the error stream's message", err)
	}
}

func TestAClosedPortForwardDialsNothing(t *testing.T) {
	pf := apiServer(t, &portForwardEndpoint{target: "127.0.0.1:1"})
	if err := pf.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pf.DialPod(context.Background(), "promo-0"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("dial after Close: %v", err)
	}
}
