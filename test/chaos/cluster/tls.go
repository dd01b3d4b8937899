package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/buytracker/buytracker/node/pki"
)

// memberCA issues the members' certificates, as the operator does: members
// talk mutual TLS, and their admin APIs serve HTTPS.
type memberCA struct {
	root            string // one tls dir per node below it
	certPEM, keyPEM []byte
	pool            *x509.CertPool
}

func newMemberCA(root string) (*memberCA, error) {
	certPEM, keyPEM, err := pki.NewCA("buytracker chaos CA", time.Now().Add(48*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("cluster: create the CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &memberCA{root: root, certPEM: certPEM, keyPEM: keyPEM, pool: pool}, nil
}

func (ca *memberCA) dir(id string) string { return filepath.Join(ca.root, id) }

// issue writes id's tls dir: a certificate naming id and its host's address.
func (ca *memberCA) issue(id string, addr netip.Addr) error {
	certPEM, keyPEM, err := pki.IssueMember(ca.certPEM, ca.keyPEM, id, []string{"localhost"}, []net.IP{addr.AsSlice()}, time.Now().Add(47*time.Hour))
	if err != nil {
		return fmt.Errorf("cluster: issue a certificate for %s: %w", id, err)
	}
	if err := pki.WriteDir(ca.dir(id), ca.certPEM, certPEM, keyPEM); err != nil {
		return fmt.Errorf("cluster: write the certificate of %s: %w", id, err)
	}
	return nil
}

// adminClient trusts the CA for the nodes' HTTPS admin APIs. Calls are
// short: a node that cannot answer in time is as good as unreachable.
func (ca *memberCA) adminClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12},
	}}
}
