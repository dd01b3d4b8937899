package podconn

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/pki"
)

func tlsKeyPair(certPEM, keyPEM []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}

// addrDialer dials one address whatever the pod: the member's network
// stands in for the port-forward.
type addrDialer string

func (a addrDialer) DialPod(ctx context.Context, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", string(a))
}

func TestAdminClientsRefuseAMemberThatIsNotThePodAsked(t *testing.T) {
	addr, caPEM := memberServer(t) // promo-0 of promo in shop
	otherCA, _, err := pki.NewCA("other", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		member Member
		want   string
	}{
		{"the member itself", caPEM, MemberOf("promo", "shop", "promo-0"), ""},
		{"another CA", otherCA, MemberOf("promo", "shop", "promo-0"), "certificate signed by unknown authority"},
		{"another namespace", caPEM, MemberOf("promo", "tills", "promo-0"), "certificate is valid for promo-0.promo-peers.shop.svc, not promo-0.promo-peers.tills.svc"},
		// The host name matches, but the certificate names server ID
		// promo-0: it is not promo-1's.
		{"another pod", caPEM, Member{Pod: "promo-1", Host: "promo-0.promo-peers.shop.svc"}, `does not name server ID "promo-1"`},
	} {
		clients, err := NewAdminClients(addrDialer(addr), Credentials{Token: "s3cret", CABundle: tc.bundle})
		if err != nil {
			t.Fatal(err)
		}
		c, err := clients.Client(tc.member)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Status(context.Background())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestNewAdminClientsNeedsATokenAndACA(t *testing.T) {
	if _, err := NewAdminClients(addrDialer(""), Credentials{CABundle: []byte("x")}); err == nil || !strings.Contains(err.Error(), "token is empty") {
		t.Errorf("no token: %v", err)
	}
	if _, err := NewAdminClients(addrDialer(""), Credentials{Token: "t", CABundle: []byte("not PEM")}); err == nil || !strings.Contains(err.Error(), "holds no certificate") {
		t.Errorf("no CA: %v", err)
	}
}
