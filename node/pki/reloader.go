package pki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often Run polls the files unless Interval says otherwise.
const DefaultInterval = time.Second

// Reloader holds a member's CA pool and key pair loaded from a directory
// (ca.crt may hold several CA certificates: during a CA rotation old and new
// are both trusted) and reloads them when the files change, so renewed
// certificates are used without a restart.
//
// The configs it returns read the current material at every handshake: a
// reload applies to new connections, established ones keep going.
type Reloader struct {
	// Interval is how often Run polls the files; set it before calling Run.
	Interval time.Duration

	dir     string
	logger  *slog.Logger
	current atomic.Pointer[material]
}

// material is one consistent set of loaded files.
type material struct {
	files fileSet
	pool  *x509.CertPool
	cert  *tls.Certificate
	leaf  *x509.Certificate
}

// fileSet is the raw content of the three files, kept to notice changes.
type fileSet struct{ ca, cert, key []byte }

func (f fileSet) equal(o fileSet) bool {
	return bytes.Equal(f.ca, o.ca) && bytes.Equal(f.cert, o.cert) && bytes.Equal(f.key, o.key)
}

// NewReloader loads ca.crt, tls.crt and tls.key from dir. It fails when a file
// is missing or bad, when the key does not belong to the certificate, or when
// the certificate does not chain to ca.crt for both server and client use.
// A nil logger discards the reload messages.
func NewReloader(dir string, logger *slog.Logger) (*Reloader, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{Interval: DefaultInterval, dir: dir, logger: logger}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload loads the files now; on error the current material stays in use.
func (r *Reloader) Reload() error {
	files, err := r.readFiles()
	if err != nil {
		return err
	}
	m, err := r.load(files)
	if err != nil {
		return err
	}
	r.current.Store(m)
	return nil
}

// Run polls the files every Interval and reloads them when their content
// changes. A bad new set is logged once and the old material kept; Run tries
// again when the files change once more. It returns when ctx ends.
func (r *Reloader) Run(ctx context.Context) {
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var lastBad fileSet // the rejected set, so it is logged once, not every poll
	var lastReadErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		files, err := r.readFiles()
		if err != nil {
			if err.Error() != lastReadErr {
				r.logger.Warn("Keeping the previous certificates: cannot read the new files", "dir", r.dir, "error", err)
				lastReadErr = err.Error()
			}
			continue
		}
		lastReadErr = ""
		if files.equal(r.current.Load().files) || (lastBad.cert != nil && files.equal(lastBad)) {
			continue
		}
		m, err := r.load(files)
		if err != nil {
			r.logger.Warn("Keeping the previous certificates: the new files are bad", "dir", r.dir, "error", err)
			lastBad = files
			continue
		}
		lastBad = fileSet{}
		r.current.Store(m)
		r.logger.Info("Reloaded certificates", "dir", r.dir, "serial", m.leaf.SerialNumber.Text(16),
			"not_after", m.leaf.NotAfter, "issuer", m.leaf.Issuer.CommonName)
	}
}

// NotAfter is when the current certificate expires.
func (r *Reloader) NotAfter() time.Time {
	return r.current.Load().leaf.NotAfter
}

// ServerConfig returns a config for a member's listener: TLS 1.3, presenting
// the current certificate, and requiring a client certificate that chains to
// the current CA pool for client use. The pool is read at each handshake, so
// a reloaded CA applies to new connections.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Demand a certificate here and verify it in VerifyConnection against
		// the pool of the moment (ClientCAs would freeze one pool into the config).
		ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.current.Load().cert, nil
		},
		// Also runs on resumed sessions, so a removed CA is not trusted through a ticket.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := r.current.Load().verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth); err != nil {
				return fmt.Errorf("client certificate: %w", err)
			}
			return nil
		},
	}
}

// ClientConfig returns a config for dialling the member expectedID: TLS 1.3,
// presenting the current certificate, and accepting the server only when its
// certificate chains to the current CA pool for server use and NamesID
// expectedID. There is no other host name check: peers are dialled by DNS
// names or IP addresses, and the ID is what matters.
func (r *Reloader) ClientConfig(expectedID string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The standard check compares the dialled host with the certificate;
		// VerifyConnection below does the chain check and the ID check instead.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.current.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := r.current.Load().verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth); err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			if leaf := cs.PeerCertificates[0]; !NamesID(leaf, expectedID) {
				return fmt.Errorf("server certificate names %s, not the expected member %q", describeNames(leaf), expectedID)
			}
			return nil
		},
	}
}

// verify checks that certs (leaf first, then any intermediates, as sent by a
// peer) chain to the pool and allow usage, at the current time.
func (m *material) verify(certs []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("none presented")
	}
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         m.pool,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	return err
}

func (r *Reloader) readFiles() (fileSet, error) {
	var files fileSet
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{CAFile, &files.ca}, {CertFile, &files.cert}, {KeyFile, &files.key}} {
		data, err := os.ReadFile(filepath.Join(r.dir, f.name))
		if err != nil {
			return fileSet{}, fmt.Errorf("load certificates: %w", err)
		}
		*f.dst = data
	}
	return files, nil
}

// load parses a file set and checks that it can serve both ends of mutual
// TLS: a certificate that the same CA pool accepts from a server and from a
// client. A member that would be refused by its peers fails here, clearly.
func (r *Reloader) load(files fileSet) (*material, error) {
	pool, err := parseCAPool(files.ca)
	if err != nil {
		return nil, fmt.Errorf("load certificates: %s: %w", filepath.Join(r.dir, CAFile), err)
	}
	pair, err := tls.X509KeyPair(files.cert, files.key)
	if err != nil {
		return nil, fmt.Errorf("load certificates: %s and %s: %w",
			filepath.Join(r.dir, CertFile), filepath.Join(r.dir, KeyFile), err)
	}
	chain := make([]*x509.Certificate, 0, len(pair.Certificate))
	for i, der := range pair.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("load certificates: %s: certificate %d: %w", filepath.Join(r.dir, CertFile), i+1, err)
		}
		chain = append(chain, c)
	}
	m := &material{files: files, pool: pool, cert: &pair, leaf: chain[0]}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := m.verify(chain, usage); err != nil {
			return nil, fmt.Errorf("load certificates: %s does not verify against %s: %w",
				filepath.Join(r.dir, CertFile), filepath.Join(r.dir, CAFile), err)
		}
	}
	return m, nil
}

// parseCAPool parses a bundle of one or more CA certificates.
func parseCAPool(caPEM []byte) (*x509.CertPool, error) {
	certs, err := ParseCertificates(caPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for i, c := range certs {
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("certificate %d (%q) is not a CA", i+1, c.Subject.CommonName)
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// describeNames lists the identities a certificate carries, for errors.
func describeNames(cert *x509.Certificate) string {
	names := []string{"CN=" + cert.Subject.CommonName}
	for _, n := range cert.DNSNames {
		names = append(names, "DNS:"+n)
	}
	return strings.Join(names, ", ")
}

// HTTPSConfig returns a config for a member's HTTPS listener whose clients
// authenticate otherwise (the admin API's bearer token): it presents the
// current certificate and asks for none.
func (r *Reloader) HTTPSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.current.Load().cert, nil
		},
	}
}

// AnyMemberClientConfig returns a config for calling a member's HTTPS
// listener when which member answers is not known in advance (a request
// forwarded to whoever leads): the server's certificate must chain to the
// current CA pool for server use.
func (r *Reloader) AnyMemberClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // VerifyConnection checks the chain instead of the host name
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.current.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := r.current.Load().verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth); err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			return nil
		},
	}
}
