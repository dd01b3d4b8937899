package pki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// testCA is a CA's PEM files.
type testCA struct{ cert, key []byte }

func newTestCA(t testing.TB, name string) testCA {
	t.Helper()
	cert, key, err := NewCA(name, time.Now().Add(7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert, key}
}

func (ca testCA) pool(t testing.TB) *x509.CertPool {
	t.Helper()
	pool, err := parseCAPool(ca.cert)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// testMember is a member's certificate and key (PEM).
type testMember struct{ cert, key []byte }

func (ca testCA) issue(t testing.TB, id string, dnsNames ...string) testMember {
	t.Helper()
	return ca.issueUntil(t, id, time.Now().Add(24*time.Hour), dnsNames...)
}

func (ca testCA) issueUntil(t testing.TB, id string, notAfter time.Time, dnsNames ...string) testMember {
	t.Helper()
	cert, key, err := IssueMember(ca.cert, ca.key, id, dnsNames, []net.IP{net.IPv4(127, 0, 0, 1)}, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return testMember{cert, key}
}

func (m testMember) leaf(t testing.TB) *x509.Certificate {
	t.Helper()
	certs, err := ParseCertificates(m.cert)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// bundle concatenates CA certificates into one ca.crt.
func bundle(cas ...testCA) []byte {
	var b []byte
	for _, ca := range cas {
		b = append(b, ca.cert...)
	}
	return b
}

// memberReloader writes a member's files into a new directory and loads them.
func memberReloader(t testing.TB, caBundle []byte, m testMember) (*Reloader, string) {
	t.Helper()
	dir := t.TempDir()
	if err := WriteDir(dir, caBundle, m.cert, m.key); err != nil {
		t.Fatal(err)
	}
	r, err := NewReloader(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// handshakeResult is what each end of one connection saw.
type handshakeResult struct {
	server, client       tls.ConnectionState
	serverErr, clientErr error
}

func (h handshakeResult) ok() bool { return h.serverErr == nil && h.clientErr == nil }

// handshake connects a client to a server over TCP on 127.0.0.1. The server
// writes one byte after its handshake and the client reads it, so a refusal
// by the server (which in TLS 1.3 comes after the client's handshake ends)
// shows as a client error too.
func handshake(t testing.TB, serverConfig, clientConfig *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type serverSide struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan serverSide, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverSide{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(conn, serverConfig)
		if err := tc.Handshake(); err != nil {
			done <- serverSide{err: err}
			return
		}
		_, err = tc.Write([]byte{1})
		done <- serverSide{tc.ConnectionState(), err}
	}()

	var res handshakeResult
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: clientConfig}).DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(conn, make([]byte, 1))
		res.client = conn.(*tls.Conn).ConnectionState()
		conn.Close()
	}
	res.clientErr = err
	ln.Close() // unblocks Accept if the client never connected
	s := <-done
	res.server, res.serverErr = s.state, s.err
	return res
}

// eventually polls cond every 10ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runReloader runs r.Run until the test ends, and waits for it to return.
func runReloader(t testing.TB, r *Reloader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
}

// logBuffer collects log output from the reloader's goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
