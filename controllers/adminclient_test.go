package controllers

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// adminServer is an HTTPS server on 127.0.0.1 with the given certificate
// that answers GET /cluster, and a factory whose clients reach it whatever
// host they dial.
func adminServer(t *testing.T, certPEM, keyPEM []byte) (AdminClientFactory, *string) {
	t.Helper()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var gotToken string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotToken = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"served_by":"promo-0","leader":"promo-0","term":3,"members":[]}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
	}
	return newAdminClientFactory(dial), &gotToken
}

func TestAdminClientSpeaksHTTPSAndVerifiesTheNode(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now.Add(time.Hour))
	other := newTestCA(t, now.Add(time.Hour))
	names := memberDNSNames(testNames, "promo-0")
	target := AdminTarget{URL: testNames.adminURL("promo-0"), ID: "promo-0", Token: "secret", CABundle: ca.certPEM}
	tests := []struct {
		name    string
		serves  map[string][]byte
		target  func(AdminTarget) AdminTarget
		wantErr string
	}{
		{name: "a certificate of the cluster's CA naming the pod", serves: ca.issue(t, "promo-0", names, now.Add(time.Hour))},
		{name: "the bundle of a rotation trusts the new CA", serves: other.issue(t, "promo-0", names, now.Add(time.Hour)),
			target: func(a AdminTarget) AdminTarget { a.CABundle = concatPEM(ca.certPEM, other.certPEM); return a }},
		{name: "a certificate of another CA", serves: other.issue(t, "promo-0", names, now.Add(time.Hour)), wantErr: "certificate signed by unknown authority"},
		{name: "a certificate for another host", serves: ca.issue(t, "promo-0", memberDNSNames(testNames, "promo-3"), now.Add(time.Hour)), wantErr: "not promo-0.promo-peers.shop.svc.cluster.local"},
		{name: "a certificate that does not name the server ID", serves: ca.issue(t, "promo-0", names, now.Add(time.Hour)),
			target: func(a AdminTarget) AdminTarget { a.ID = "promo-1"; return a }, wantErr: `does not name server ID "promo-1"`},
		{name: "an expired certificate", serves: ca.issue(t, "promo-0", names, now.Add(-time.Minute)), wantErr: "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			factory, gotToken := adminServer(t, tt.serves[keyTLSCert], tt.serves[keyTLSKey])
			tgt := target
			if tt.target != nil {
				tgt = tt.target(tgt)
			}
			admin, err := factory(tgt)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := admin.Cluster(ctx)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("GET /cluster: %v", err)
				}
				expect(t, "leader", c.Leader, "promo-0")
				expect(t, "authorization", *gotToken, "Bearer secret")
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			expect(t, "requests that reached the handler", *gotToken, "")
		})
	}
}

func TestAdminClientNeedsABundleAndAnID(t *testing.T) {
	factory := NewAdminClientFactory()
	if _, err := factory(AdminTarget{URL: testNames.adminURL("promo-0"), ID: "promo-0", Token: "t"}); err == nil {
		t.Error("no CA bundle accepted")
	}
	ca := newTestCA(t, time.Now().Add(time.Hour))
	if _, err := factory(AdminTarget{URL: testNames.adminURL("promo-0"), Token: "t", CABundle: ca.certPEM}); err == nil {
		t.Error("no server ID accepted")
	}
}
