// Package forward sends a request that only the leader can answer on to the
// leader, over pooled keep-alive connections, and copies the answer back.
package forward

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Header marks a request a node forwarded, so that the receiver never
// forwards it again (no loops while leadership moves).
const Header = "X-Buytracker-Forwarded-By"

// copiedRequestHeaders and copiedResponseHeaders are what crosses a hop.
var (
	copiedRequestHeaders  = []string{"Content-Type", "Idempotency-Key", "Accept", "Authorization"}
	copiedResponseHeaders = []string{"Content-Type", "Retry-After", "Idempotent-Replayed"}
)

// Forwarder forwards requests; it is safe for concurrent use.
type Forwarder struct {
	self   string
	client *http.Client
}

// New returns a Forwarder that names self in the Header. tlsConfig is used
// for https targets (nil: the system's defaults).
func New(self string, tlsConfig *tls.Config) *Forwarder {
	transport := &http.Transport{
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 5 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Forwarder{self: self, client: &http.Client{Transport: transport}}
}

// WasForwarded reports whether r came from another node.
func WasForwarded(r *http.Request) bool { return r.Header.Get(Header) != "" }

// Forward sends r, whose body was already read into body, to baseURL and
// copies the answer to w. When it returns an error, nothing was written to
// w; the request may still have reached the target.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, baseURL string, body []byte) error {
	target := strings.TrimRight(baseURL, "/") + r.URL.RequestURI()
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build forwarded request: %w", err)
	}
	for _, h := range copiedRequestHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set("X-Forwarded-For", ClientIP(r))
	req.Header.Set(Header, f.self)
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("forward to %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	for _, h := range copiedResponseHeaders {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	// From here on the answer is the target's; a copy error only means the
	// client went away.
	_, _ = io.Copy(w, resp.Body)
	return nil
}

// Close releases pooled connections.
func (f *Forwarder) Close() { f.client.CloseIdleConnections() }

// ClientIP is the client's address: the first X-Forwarded-For entry when a
// peer or proxy forwarded the request, else the connection's address.
func ClientIP(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		if addr, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
			return addr.Unmap().String()
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().String()
	}
	return ""
}
