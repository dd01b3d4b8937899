package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewCAIsASelfSignedP256CA(t *testing.T) {
	notAfter := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	certPEM, keyPEM, err := NewCA("buytracker test CA", notAfter)
	if err != nil {
		t.Fatal(err)
	}
	ca, key, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("ParseCA of a new CA: %v", err)
	}
	if ca.Subject.CommonName != "buytracker test CA" || !ca.IsCA || !ca.NotAfter.Equal(notAfter) {
		t.Errorf("CA: CN %q, IsCA %v, NotAfter %s; want the test CA, true, %s", ca.Subject.CommonName, ca.IsCA, ca.NotAfter, notAfter)
	}
	if ecKey, ok := key.(*ecdsa.PrivateKey); !ok || ecKey.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want an ECDSA P-256 key", key)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := ca.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("the CA does not verify against itself: %v", err)
	}
}

func TestNewCARejectsBadInput(t *testing.T) {
	if _, _, err := NewCA("", time.Now().Add(time.Hour)); err == nil {
		t.Error("NewCA with an empty name succeeded")
	}
	if _, _, err := NewCA("ca", time.Now().Add(-time.Hour)); err == nil || !strings.Contains(err.Error(), "not in the future") {
		t.Errorf("NewCA with a past notAfter: err %v, want 'not in the future'", err)
	}
}

func TestIssueMemberSignsAMemberCertificate(t *testing.T) {
	ca := newTestCA(t, "ca")
	notAfter := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	certPEM, keyPEM, err := IssueMember(ca.cert, ca.key, "promo-2", []string{"promo-2.promo-peers.ns.svc"}, ips, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("the key does not belong to the certificate: %v", err)
	}
	leaf := pair.Leaf
	if leaf.Subject.CommonName != "promo-2" || !slices.Equal(leaf.DNSNames, []string{"promo-2.promo-peers.ns.svc"}) {
		t.Errorf("names: CN %q, DNS %v", leaf.Subject.CommonName, leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(ips[0]) || !leaf.IPAddresses[1].Equal(ips[1]) {
		t.Errorf("IP SANs %v, want %v", leaf.IPAddresses, ips)
	}
	if !leaf.NotAfter.Equal(notAfter) || leaf.IsCA {
		t.Errorf("NotAfter %s (want %s), IsCA %v (want false)", leaf.NotAfter, notAfter, leaf.IsCA)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.pool(t), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("the member certificate does not verify for usage %v: %v", usage, err)
		}
	}
}

func TestIssueMemberRejectsBadInput(t *testing.T) {
	ca := newTestCA(t, "ca")
	other := newTestCA(t, "other")
	member := ca.issue(t, "n1")
	soon := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name            string
		caCert, caKey   []byte
		id              string
		ips             []net.IP
		notAfter        time.Time
		wantErrContains string
	}{
		{"empty id", ca.cert, ca.key, "", nil, soon, "id is empty"},
		{"notAfter in the past", ca.cert, ca.key, "n1", nil, time.Now().Add(-time.Minute), "not in the future"},
		{"notAfter after the CA's", ca.cert, ca.key, "n1", nil, time.Now().Add(30 * 24 * time.Hour), "after the CA's"},
		{"key of another CA", ca.cert, other.key, "n1", nil, soon, "does not belong"},
		{"a member certificate as CA", member.cert, member.key, "n2", nil, soon, "is not a CA"},
		{"garbage CA certificate", []byte("not PEM"), ca.key, "n1", nil, soon, "no PEM certificate"},
		{"garbage CA key", ca.cert, []byte("not PEM"), "n1", nil, soon, "no PEM private key"},
		{"bad IP", ca.cert, ca.key, "n1", []net.IP{{1, 2, 3}}, soon, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := IssueMember(tc.caCert, tc.caKey, tc.id, nil, tc.ips, tc.notAfter)
			if err == nil || !strings.Contains(err.Error(), tc.wantErrContains) {
				t.Fatalf("err %v, want one containing %q", err, tc.wantErrContains)
			}
		})
	}
}

func TestParseCertificatesRejectsOtherBlocksAndTrailingBytes(t *testing.T) {
	ca := newTestCA(t, "ca")
	for _, tc := range []struct {
		name string
		data []byte
		want int // certificates, or -1 for an error
	}{
		{"one", ca.cert, 1},
		{"two with blank lines", append(append(append([]byte{}, ca.cert...), '\n'), ca.cert...), 2},
		{"key block", append(append([]byte{}, ca.cert...), ca.key...), -1},
		{"trailing garbage", append(append([]byte{}, ca.cert...), "junk"...), -1},
		{"empty", nil, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseCertificates(tc.data)
			if tc.want < 0 {
				if err == nil {
					t.Fatalf("parsed %d certificates, want an error", len(certs))
				}
				return
			}
			if err != nil || len(certs) != tc.want {
				t.Fatalf("got %d certificates, err %v; want %d", len(certs), err, tc.want)
			}
		})
	}
}
