package controllers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/pki"
)

// testCA is a CA with its PEM, for tests that issue certificates.
type testCA struct {
	cert            *x509.Certificate
	certPEM, keyPEM []byte
}

func newTestCA(t *testing.T, notAfter time.Time) testCA {
	t.Helper()
	certPEM, keyPEM, err := pki.NewCA("test CA", notAfter)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert: cert, certPEM: certPEM, keyPEM: keyPEM}
}

func (ca testCA) issue(t *testing.T, id string, names []string, notAfter time.Time) map[string][]byte {
	t.Helper()
	if !notAfter.After(time.Now()) {
		return ca.issueExpired(t, id, names, notAfter)
	}
	certPEM, keyPEM, err := pki.IssueMember(ca.certPEM, ca.keyPEM, id, names, nil, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{keyTLSCert: certPEM, keyTLSKey: keyPEM, keyCABundle: ca.certPEM}
}

// issueExpired signs a member certificate that expired at notAfter, which
// node/pki rightly refuses to issue, for tests of the verification.
func (ca testCA) issueExpired(t *testing.T, id string, names []string, notAfter time.Time) map[string][]byte {
	t.Helper()
	caCert, caKey, err := pki.ParseCA(ca.certPEM, ca.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: id},
		DNSNames:     names,
		NotBefore:    notAfter.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		keyTLSCert:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyTLSKey:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		keyCABundle: ca.certPEM,
	}
}

func TestIssuedMemberCertificateChainsToItsCAForBothEnds(t *testing.T) {
	ca := newTestCA(t, time.Now().Add(caValidity))
	names := memberDNSNames(testNames, "promo-1")
	data := ca.issue(t, "promo-1", names, time.Now().Add(memberValidity))
	cert, err := parseCertPEM(data[keyTLSCert])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: testNames.host("promo-1"), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("usage %v: %v", usage, err)
		}
	}
	expect(t, "names", names, []string{"promo-1.promo-peers.shop.svc", "promo-1.promo-peers.shop.svc.cluster.local"})
	expect(t, "common name", cert.Subject.CommonName, "promo-1")
	expect(t, "names the ID", pki.NamesID(cert, "promo-1"), true)
	expect(t, "names another ID", pki.NamesID(cert, "promo-2"), false)
	if !ca.cert.IsCA || time.Until(ca.cert.NotAfter) < caValidity-time.Hour {
		t.Errorf("CA: IsCA %v, valid until %v", ca.cert.IsCA, ca.cert.NotAfter)
	}
}

func TestMemberCertCurrent(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now.Add(caValidity))
	other := newTestCA(t, now.Add(caValidity))
	names := memberDNSNames(testNames, "promo-0")
	good := ca.issue(t, "promo-0", names, now.Add(memberValidity))
	mismatchedKey := ca.issue(t, "promo-0", names, now.Add(memberValidity))
	mismatchedKey[keyTLSKey] = ca.issue(t, "promo-0", names, now.Add(memberValidity))[keyTLSKey]
	tests := []struct {
		name string
		data map[string][]byte
		at   time.Time
		want bool
	}{
		{"fresh", good, now, true},
		{"two thirds of its life left", good, now.Add(memberValidity / 3), true},
		{"less than a third left: renew", good, now.Add(memberValidity*2/3 + time.Hour), false},
		{"expired", good, now.Add(memberValidity + time.Hour), false},
		{"issued by another CA", other.issue(t, "promo-0", names, now.Add(memberValidity)), now, false},
		{"another ID", ca.issue(t, "promo-1", names, now.Add(memberValidity)), now, false},
		{"other names", ca.issue(t, "promo-0", memberDNSNames(clusterNames{name: "promo", namespace: "shop", clusterDomain: "example.org"}, "promo-0"), now.Add(memberValidity)), now, false},
		{"key of another certificate", mismatchedKey, now, false},
		{"empty", map[string][]byte{}, now, false},
		{"garbage", map[string][]byte{keyTLSCert: []byte("x"), keyTLSKey: []byte("y")}, now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, "current", memberCertCurrent(tt.data, ca.cert, "promo-0", names, tt.at), tt.want)
		})
	}
}

func TestIssueMemberRejectsBadInput(t *testing.T) {
	ca := newTestCA(t, time.Now().Add(time.Hour))
	if _, _, err := pki.IssueMember(ca.certPEM, ca.keyPEM, "", nil, nil, time.Now().Add(time.Hour)); err == nil {
		t.Error("empty id accepted")
	}
	if _, _, err := pki.IssueMember([]byte("not a cert"), ca.keyPEM, "promo-0", nil, nil, time.Now().Add(time.Hour)); err == nil {
		t.Error("a CA that is not a certificate accepted")
	}
	if _, _, err := pki.IssueMember(ca.certPEM, []byte("not a key"), "promo-0", nil, nil, time.Now().Add(time.Hour)); err == nil {
		t.Error("a CA key that is not a key accepted")
	}
}
