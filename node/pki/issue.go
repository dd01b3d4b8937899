// Package pki issues and loads the certificates members use for mutual TLS.
//
// A cluster has one CA; each member has a certificate signed by it that names
// the member's server ID (as its Common Name, or as the first label of a DNS
// name) and the addresses it is reached at. Files use cert-manager's Secret
// layout: ca.crt, tls.crt, tls.key.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// backdate is how far before "now" a new certificate becomes valid, so that a
// peer whose clock is a little behind still accepts it.
const backdate = time.Hour

// NewCA returns a self-signed CA certificate and its key (PEM), ECDSA P-256,
// valid until notAfter.
func NewCA(commonName string, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	if commonName == "" {
		return nil, nil, errors.New("new CA: the common name is empty")
	}
	now := time.Now()
	if !notAfter.After(now) {
		return nil, nil, fmt.Errorf("new CA %q: notAfter %s is not in the future", commonName, notAfter.Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("new CA %q: generate key: %w", commonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		// Members are signed directly by the CA: no intermediates below it.
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("new CA %q: sign: %w", commonName, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	return encodeCert(der), keyPEM, nil
}

// IssueMember issues a member certificate signed by the CA: CommonName = id,
// DNS SANs dnsNames, IP SANs ips, ExtKeyUsage ServerAuth and ClientAuth, valid
// until notAfter (which must not be later than the CA's own NotAfter).
func IssueMember(caCertPEM, caKeyPEM []byte, id string, dnsNames []string, ips []net.IP, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	if id == "" {
		return nil, nil, errors.New("issue member certificate: the id is empty")
	}
	ca, caKey, err := ParseCA(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("issue member certificate for %q: %w", id, err)
	}
	now := time.Now()
	// Certificates hold whole seconds: compare what will be written.
	notAfter = notAfter.Truncate(time.Second)
	switch {
	case !notAfter.After(now):
		return nil, nil, fmt.Errorf("issue member certificate for %q: notAfter %s is not in the future", id, notAfter.Format(time.RFC3339))
	case notAfter.After(ca.NotAfter):
		return nil, nil, fmt.Errorf("issue member certificate for %q: notAfter %s is after the CA's (%s)",
			id, notAfter.Format(time.RFC3339), ca.NotAfter.Format(time.RFC3339))
	}
	for _, ip := range ips {
		if ip.To4() == nil && len(ip) != net.IPv6len {
			return nil, nil, fmt.Errorf("issue member certificate for %q: invalid IP address %v", id, ip)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue member certificate for %q: generate key: %w", id, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("issue member certificate for %q: %w", id, err)
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    maxTime(now.Add(-backdate), ca.NotBefore),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Every member is both a server (its peers dial it) and a client.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issue member certificate for %q: sign: %w", id, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue member certificate for %q: %w", id, err)
	}
	return encodeCert(der), keyPEM, nil
}

// ParseCA parses a CA certificate and its private key (PKCS #8 or SEC 1 PEM)
// and checks that the certificate is a CA and that the key is its own.
func ParseCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	if len(certs) != 1 {
		return nil, nil, fmt.Errorf("CA certificate: want one certificate, found %d", len(certs))
	}
	ca := certs[0]
	if !ca.BasicConstraintsValid || !ca.IsCA {
		return nil, nil, fmt.Errorf("CA certificate %q is not a CA", ca.Subject.CommonName)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	if !publicKeysEqual(key.Public(), ca.PublicKey) {
		return nil, nil, fmt.Errorf("CA key does not belong to the CA certificate %q", ca.Subject.CommonName)
	}
	return ca, key, nil
}

// ParseCertificates parses every PEM "CERTIFICATE" block in data; it fails on
// any other block, on trailing bytes that are not PEM, and on no certificate.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q (want CERTIFICATE)", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%d bytes that are not PEM after certificate %d", len(rest), len(certs))
	}
	return certs, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM private key found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q (want a private key)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// newSerial returns a random positive 128-bit serial number (RFC 5280 allows
// up to 20 octets; randomness keeps serials unique without a counter).
func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
