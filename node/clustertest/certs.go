package clustertest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/pki"
)

// clusterCA issues the certificates of a test cluster's members, as the
// operator and `make run` do: every cluster test runs with mutual TLS
// between members unless it asks for plain TCP.
type clusterCA struct {
	dir             string
	certPEM, keyPEM []byte
	pool            *x509.CertPool
}

func newClusterCA(t testing.TB, dir string) *clusterCA {
	t.Helper()
	certPEM, keyPEM, err := pki.NewCA("buytracker test CA", time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatalf("create the test CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &clusterCA{dir: dir, certPEM: certPEM, keyPEM: keyPEM, pool: pool}
}

// issue writes a member's tls dir, naming id and 127.0.0.1, and returns it.
func (ca *clusterCA) issue(t testing.TB, id string) string {
	t.Helper()
	certPEM, keyPEM, err := pki.IssueMember(ca.certPEM, ca.keyPEM, id, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now().Add(23*time.Hour))
	if err != nil {
		t.Fatalf("issue a certificate for %s: %v", id, err)
	}
	dir := filepath.Join(ca.dir, id)
	if err := pki.WriteDir(dir, ca.certPEM, certPEM, keyPEM); err != nil {
		t.Fatalf("write the certificate of %s: %v", id, err)
	}
	return dir
}

// Member returns a certificate of this CA naming id, for tests that pose as
// a member.
func (ca *clusterCA) Member(t testing.TB, id string) tls.Certificate {
	t.Helper()
	dir := ca.issue(t, id+"-client")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.CertFile), filepath.Join(dir, pki.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// adminHTTPClient trusts the cluster's CA for the nodes' HTTPS admin APIs.
func (ca *clusterCA) adminHTTPClient() *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12},
	}}
}
