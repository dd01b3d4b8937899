package listen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"
)

// serve runs srv on a capped listener on 127.0.0.1 until the test ends and
// returns the listener.
func serve(t *testing.T, h http.Handler, limits Limits, opts Options) *Listener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(inner, opts)
	srv := NewServer(h, limits, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })

// testLimits are short enough for tests and long enough not to cut off a
// well-behaved client on a busy machine.
var testLimits = Limits{ReadHeaderTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 8 << 10}

// waitFor polls cond until it holds or the wait runs out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func checkRefusal(t *testing.T, resp *http.Response) {
	t.Helper()
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("refusal body is not JSON: %v", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || body.Error.Code != "too_many_connections" || body.Error.Message == "" {
		t.Fatalf("past the cap: %d %+v, want 503 too_many_connections", resp.StatusCode, body)
	}
	if !resp.Close || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("refusal headers %v: want Connection: close and Retry-After", resp.Header)
	}
}

func TestConnectionsPastTheCapAreAnswered503AndSlotsComeBack(t *testing.T) {
	ln := serve(t, ok, testLimits, Options{MaxConns: 3})
	url := "http://" + ln.Addr().String() + "/"
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitFor(t, "3 open connections", func() bool { return ln.Open() == 3 })

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 5 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("past the cap the client got no answer: %v", err)
		}
		checkRefusal(t, resp)
	}
	if got := ln.Refused(); got != 5 {
		t.Fatalf("refused %d, want 5", got)
	}

	held[0].Close()
	waitFor(t, "a slot to come back", func() bool { return ln.Open() == 2 })
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("below the cap: %d, want 200", resp.StatusCode)
	}
}

func TestRefusalIsSentOverTLSOnATLSListener(t *testing.T) {
	cert := selfSigned(t)
	ln := serve(t, ok, testLimits, Options{MaxConns: 1, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + ln.Addr().String() + "/"

	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("HTTPS below the cap: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("HTTPS below the cap: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	resp.Body.Close()
	waitFor(t, "the first connection to close", func() bool { return ln.Open() == 0 })

	held, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	waitFor(t, "the held connection", func() bool { return ln.Open() == 1 })
	resp, err = client.Get(url)
	if err != nil {
		t.Fatalf("HTTPS past the cap got no answer: %v", err)
	}
	checkRefusal(t, resp)
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
