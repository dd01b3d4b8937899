package podconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/pki"
)

// AdminPort is the members' admin API port (SPEC "Node command line").
const AdminPort = 8081

// CallTimeout bounds one admin call, the port-forward's setup included.
const CallTimeout = 15 * time.Second

// Member names one member of a BuyTracker and what its admin API must
// prove: a certificate chaining to the CA bundle, valid for the member's
// stable name in the peer Service, and naming the member's server ID.
type Member struct {
	// Pod is the member's pod name, which is its Raft server ID.
	Pod string
	// Host is the member's stable name, <pod>.<buytracker>-peers.<ns>.svc:
	// every member certificate the operator or cert-manager issues names it.
	Host string
}

// MemberOf returns the member pod of the BuyTracker name in namespace.
func MemberOf(name, namespace, pod string) Member {
	return Member{Pod: pod, Host: fmt.Sprintf("%s.%s-peers.%s.svc", pod, name, namespace)}
}

// Credentials are what every admin call of one BuyTracker carries. They
// are read from the BuyTracker's Secrets and only kept in memory.
type Credentials struct {
	Token    string
	CABundle []byte
}

// AdminClients makes admin API clients of one BuyTracker's members that
// connect through a Dialer.
type AdminClients struct {
	dialer Dialer
	creds  Credentials
	pool   *x509.CertPool
}

// NewAdminClients checks the CA bundle and returns the factory.
func NewAdminClients(dialer Dialer, creds Credentials) (*AdminClients, error) {
	if creds.Token == "" {
		return nil, errors.New("admin API: the admin token is empty")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(creds.CABundle) {
		return nil, errors.New("admin API: the CA bundle holds no certificate")
	}
	return &AdminClients{dialer: dialer, creds: creds, pool: pool}, nil
}

// Client returns a client of m's admin API. Every connection it opens is
// a fresh stream from the dialer; TLS runs end to end between this process
// and the member, so nothing in between (API server, kubelet) sees the
// token or the answers in clear.
func (a *AdminClients) Client(m Member) (*adminapi.Client, error) {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return a.dialer.DialPod(ctx, m.Pod)
		},
		TLSClientConfig:     a.tlsConfig(m),
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 1,
		// No proxy: the dialer is the only way to the member.
		Proxy: nil,
	}
	return adminapi.NewClient(fmt.Sprintf("https://%s:%d", m.Host, AdminPort), a.creds.Token,
		&http.Client{Transport: transport, Timeout: CallTimeout})
}

// tlsConfig verifies the chain to the bundle and the host name (ServerName
// comes from the URL), then that the certificate names the pod as its
// server ID, as the operator and the members themselves check.
func (a *AdminClients) tlsConfig(m Member) *tls.Config {
	return &tls.Config{
		RootCAs:    a.pool,
		MinVersion: tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("member %s sent no certificate", m.Pod)
			}
			if leaf := cs.PeerCertificates[0]; !pki.NamesID(leaf, m.Pod) {
				return fmt.Errorf("the certificate of %s (CN %q, DNS %v) does not name server ID %q", m.Host, leaf.Subject.CommonName, leaf.DNSNames, m.Pod)
			}
			return nil
		},
	}
}
