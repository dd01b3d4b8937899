package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// certCheckInterval is how often a handshake looks at the certificate files.
const certCheckInterval = time.Second

// clientCert is the client port's certificate, from tls.crt and tls.key in
// a directory (cert-manager's layout). A handshake re-reads the files when
// their modification time or size changed, so a renewed certificate needs
// no restart. A pair that does not load (say, the certificate written
// before its key) keeps the previous one and is tried again.
type clientCert struct {
	crtPath, keyPath string
	logger           *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // the files' times and sizes when cert was loaded
	checked time.Time
}

// clientTLSConfig returns the client port's TLS configuration.
func clientTLSConfig(dir string, logger *slog.Logger) (*tls.Config, error) {
	c := &clientCert{crtPath: filepath.Join(dir, "tls.crt"), keyPath: filepath.Join(dir, "tls.key"), logger: logger}
	if err := c.load(); err != nil {
		return nil, fmt.Errorf("--client-tls-dir: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}, nil
}

func (c *clientCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) >= certCheckInterval {
		c.checked = time.Now()
		if c.fileStamp() != c.stamp {
			if err := c.load(); err != nil {
				c.logger.Warn("Client certificate files changed but do not load; serving the previous certificate", "error", err)
			} else {
				c.logger.Info("Client certificate reloaded", "file", c.crtPath)
			}
		}
	}
	return c.cert, nil
}

// load reads the pair; the caller holds mu (or is the constructor).
func (c *clientCert) load() error {
	stamp := c.fileStamp()
	cert, err := tls.LoadX509KeyPair(c.crtPath, c.keyPath)
	if err != nil {
		return fmt.Errorf("load client certificate: %w", err)
	}
	c.cert, c.stamp = &cert, stamp
	return nil
}

func (c *clientCert) fileStamp() string {
	var s string
	for _, p := range []string{c.crtPath, c.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return "missing"
		}
		s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return s
}
