package pki

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
)

func TestNamesID(t *testing.T) {
	cert := func(cn string, dns ...string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		id   string
		want bool
	}{
		{"common name", cert("n1"), "n1", true},
		{"first DNS label", cert("", "promo-2.promo-peers.ns.svc"), "promo-2", true},
		{"single-label DNS name", cert("", "n1"), "n1", true},
		{"any of several DNS names", cert("x", "localhost", "n2.peers"), "n2", true},
		{"a later DNS label", cert("", "promo-2.promo-peers.ns.svc"), "promo-peers", false},
		{"the whole DNS name is not an ID", cert("", "promo-2.promo-peers.ns.svc"), "promo-2.promo-peers.ns.svc", false},
		{"CN n10 does not name n1", cert("n10"), "n1", false},
		{"CN n1 does not name n10", cert("n1"), "n10", false},
		{"DNS label with a suffix", cert("", "n10.peers"), "n1", false},
		{"DNS label with a prefix", cert("", "xn1.peers"), "n1", false},
		{"case matters", cert("N1", "N1.peers"), "n1", false},
		{"wildcard names no one", cert("", "*.peers"), "*", false},
		{"empty id", cert(""), "", false},
		{"IP SANs are not IDs", &x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, "127.0.0.1", false},
		{"nil certificate", nil, "n1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NamesID(tc.cert, tc.id); got != tc.want {
				t.Errorf("NamesID(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

func TestPeerCertificateNeedsACompletedHandshakeWithACertificate(t *testing.T) {
	leaf := &x509.Certificate{Subject: pkix.Name{CommonName: "n1"}}
	if _, err := PeerCertificate(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); err == nil {
		t.Error("PeerCertificate of an incomplete handshake succeeded")
	}
	if _, err := PeerCertificate(tls.ConnectionState{HandshakeComplete: true}); err == nil {
		t.Error("PeerCertificate without a peer certificate succeeded")
	}
	got, err := PeerCertificate(tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf}})
	if err != nil || got != leaf {
		t.Errorf("PeerCertificate = %v, %v; want the leaf", got, err)
	}
}
