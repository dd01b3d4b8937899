// Command certs issues the certificates a local cluster's members use for
// mutual TLS: one CA in DIR/ca/{ca.crt,ca.key} and, for each member ID,
// DIR/<id>/{ca.crt,tls.crt,tls.key} (the layout a node's --tls-dir reads).
//
// It is idempotent: a valid CA is kept, and a member's files are kept unless
// the certificate is missing or unreadable, expires within 30 days, was
// issued by another CA, or names other IDs or addresses than asked for.
//
// Usage: bin/buytracker-certs -dir DIR -ids n1,n2,n3 [-ips 127.0.0.1] [-dns localhost] [-days 365] [-ca-days 3650]
// (`make build` builds it from the tooling's module, hack/go.mod).
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/buytracker/buytracker/node/pki"
)

const (
	usageLine = "usage: buytracker-certs -dir DIR -ids n1,n2,n3 [-ips 127.0.0.1] [-dns localhost] [-days 365] [-ca-days 3650]"
	// renewBefore is how long before expiry a certificate (or the CA) is replaced.
	renewBefore = 30 * 24 * time.Hour
	caName      = "buytracker local CA"
	caDirName   = "ca"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr, time.Now())
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "certs:", err)
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	dir         string
	ids         []string
	dnsNames    []string
	ips         []net.IP
	memberValid time.Duration
	caValid     time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usageLine)
		fmt.Fprintln(stderr, "Creates (or keeps) a CA in DIR/ca and writes each member's DIR/<id>/{ca.crt,tls.crt,tls.key}.")
		fs.PrintDefaults()
	}
	dir := fs.String("dir", "", "directory for the CA and the members' certificates (required)")
	ids := fs.String("ids", "", "comma-separated member IDs, each the Common Name of its certificate (required)")
	ips := fs.String("ips", "", "comma-separated IP addresses every member certificate carries")
	dns := fs.String("dns", "", "comma-separated DNS names every member certificate carries")
	days := fs.Int("days", 365, "validity of a member certificate, in days")
	caDays := fs.Int("ca-days", 3650, "validity of a new CA, in days")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	bad := func(format string, a ...any) (options, error) {
		return options{}, fmt.Errorf(format+"\n%s", append(a, usageLine)...)
	}
	if fs.NArg() > 0 {
		return bad("unexpected arguments %q", fs.Args())
	}
	if *dir == "" {
		return bad("-dir is required")
	}
	o := options{
		dir:         *dir,
		ids:         splitList(*ids),
		dnsNames:    splitList(*dns),
		memberValid: time.Duration(*days) * 24 * time.Hour,
		caValid:     time.Duration(*caDays) * 24 * time.Hour,
	}
	if len(o.ids) == 0 {
		return bad("-ids is required")
	}
	for i, id := range o.ids {
		// An ID is a directory name under DIR, beside the CA's.
		if id == "." || id == ".." || id == caDirName || strings.ContainsAny(id, `/\`) {
			return bad("-ids: %q cannot be a member ID here", id)
		}
		if slices.Contains(o.ids[:i], id) {
			return bad("-ids: %q is listed twice", id)
		}
	}
	for _, s := range splitList(*ips) {
		ip := net.ParseIP(s)
		if ip == nil {
			return bad("-ips: %q is not an IP address", s)
		}
		o.ips = append(o.ips, ip)
	}
	if *days <= 0 || *caDays <= 0 {
		return bad("-days and -ca-days must be positive")
	}
	if o.memberValid > o.caValid {
		return bad("-days (%d) must not exceed -ca-days (%d)", *days, *caDays)
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer, now time.Time) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	caCert, caKey, err := ensureCA(filepath.Join(o.dir, caDirName), o.caValid, now, stdout)
	if err != nil {
		return err
	}
	ca, _, err := pki.ParseCA(caCert, caKey)
	if err != nil {
		return err
	}
	notAfter := now.Add(o.memberValid)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter // a member never outlives its CA
	}
	for _, id := range o.ids {
		dir := filepath.Join(o.dir, id)
		reason := reissueReason(dir, caCert, ca, o, id, now)
		if reason == "" {
			fmt.Fprintf(stdout, "%s: kept %s\n", id, dir)
			continue
		}
		certPEM, keyPEM, err := pki.IssueMember(caCert, caKey, id, o.dnsNames, o.ips, notAfter)
		if err != nil {
			return err
		}
		if err := pki.WriteDir(dir, caCert, certPEM, keyPEM); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: issued %s (%s), valid until %s\n", id, dir, reason, notAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// ensureCA returns the CA in dir, creating a new one when none is there or
// the present one expires within renewBefore. A CA that is present but
// unreadable is an error: replacing it silently would lose its key.
func ensureCA(dir string, valid time.Duration, now time.Time, stdout io.Writer) (certPEM, keyPEM []byte, err error) {
	certPEM, certErr := os.ReadFile(filepath.Join(dir, pki.CAFile))
	keyPEM, keyErr := os.ReadFile(filepath.Join(dir, pki.CAKeyFile))
	reason := "none found"
	switch {
	case certErr == nil && keyErr == nil:
		ca, _, err := pki.ParseCA(certPEM, keyPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("the CA in %s: %w (remove the directory to start a new CA)", dir, err)
		}
		if now.Add(renewBefore).Before(ca.NotAfter) {
			fmt.Fprintf(stdout, "ca: kept %s\n", dir)
			return certPEM, keyPEM, nil
		}
		reason = "the old one expires " + ca.NotAfter.UTC().Format(time.RFC3339)
	case certErr != nil && !errors.Is(certErr, os.ErrNotExist):
		return nil, nil, fmt.Errorf("read the CA: %w", certErr)
	case keyErr != nil && !errors.Is(keyErr, os.ErrNotExist):
		return nil, nil, fmt.Errorf("read the CA: %w", keyErr)
	}
	certPEM, keyPEM, err = pki.NewCA(caName, now.Add(valid))
	if err != nil {
		return nil, nil, err
	}
	if err := pki.WriteCADir(dir, certPEM, keyPEM); err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(stdout, "ca: created %s (%s)\n", dir, reason)
	return certPEM, keyPEM, nil
}

// reissueReason says why the member's files in dir must be replaced, or ""
// when they are current.
func reissueReason(dir string, caPEM []byte, ca *x509.Certificate, o options, id string, now time.Time) string {
	read := func(name string) []byte {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		return data
	}
	caFile, certFile, keyFile := read(pki.CAFile), read(pki.CertFile), read(pki.KeyFile)
	if certFile == nil || keyFile == nil {
		return "missing"
	}
	pair, err := tls.X509KeyPair(certFile, keyFile)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	leaf := pair.Leaf
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if !leaf.NotAfter.After(now.Add(renewBefore)) {
		return "expires " + leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return "issued by another CA"
	}
	if leaf.Subject.CommonName != id || !sameStrings(leaf.DNSNames, o.dnsNames) || !sameIPs(leaf.IPAddresses, o.ips) {
		return "other names than asked for"
	}
	if !bytes.Equal(caFile, caPEM) {
		return "ca.crt differs from the CA"
	}
	return ""
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func sameStrings(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func sameIPs(a, b []net.IP) bool {
	str := func(ips []net.IP) []string {
		out := make([]string, len(ips))
		for i, ip := range ips {
			out[i] = ip.String()
		}
		return out
	}
	return sameStrings(str(a), str(b))
}
