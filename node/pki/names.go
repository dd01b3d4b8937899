package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
)

// NamesID reports whether cert names the server ID id: as its CommonName, or
// as a DNS SAN whose first label is id (e.g. "promo-2.promo-peers.ns.svc"
// names "promo-2"). The comparison is exact: IDs are case-sensitive, "n1"
// does not name "n10", and a wildcard name names no one.
func NamesID(cert *x509.Certificate, id string) bool {
	if cert == nil || id == "" {
		return false
	}
	if cert.Subject.CommonName == id {
		return true
	}
	for _, name := range cert.DNSNames {
		first, _, _ := strings.Cut(name, ".")
		if first == id && first != "*" {
			return true
		}
	}
	return false
}

// PeerCertificate returns the peer's certificate (leaf) from a completed
// handshake. On connections made with a Reloader's ServerConfig or
// ClientConfig the handshake only completes once that certificate has been
// verified against the CA pool, so callers can go on to check NamesID against
// the ID the peer claims.
func PeerCertificate(cs tls.ConnectionState) (*x509.Certificate, error) {
	if !cs.HandshakeComplete {
		return nil, errors.New("peer certificate: the TLS handshake is not complete")
	}
	if len(cs.PeerCertificates) == 0 {
		return nil, errors.New("peer certificate: the peer presented no certificate")
	}
	return cs.PeerCertificates[0], nil
}
