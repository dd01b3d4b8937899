package peer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestTLSRefusesWhomTheCertificatesDoNotName(t *testing.T) {
	n := newTestNet(t, true)
	var ran atomic.Int64
	server := n.server("n1", map[Method]Handler{
		methodEcho: func(ctx context.Context, c Caller, p []byte) ([]byte, error) {
			ran.Add(1)
			return echo(ctx, c, p)
		},
	}, nil)
	addr := server.Addr().String()
	other := newTestCA(t, "other-ca")

	for _, tc := range []struct {
		name string
		cfg  func(*Config)
		// notSent: the client itself refuses before sending anything.
		notSent bool
	}{
		{name: "plain TCP client", cfg: func(c *Config) { c.TLS, c.NamesID, c.ResolveID = nil, nil, nil }},
		{
			// The client trusts the server, but its own certificate is of
			// another CA: only the server's check stops it.
			name: "client certificate of another CA",
			cfg:  func(c *Config) { c.TLS = other.identity(t, "n2", []testCA{n.ca, other}) },
		},
		{
			name:    "server certificate of a CA the client does not trust",
			cfg:     func(c *Config) { c.TLS = other.identity(t, "n2", []testCA{other}) },
			notSent: true,
		},
		{
			name:    "server certificate names another ID than the address resolves to",
			cfg:     func(c *Config) { c.ResolveID = func(string) (string, bool) { return "n3", true } },
			notSent: true,
		},
		{
			name:    "address of no known member",
			cfg:     func(c *Config) { c.ResolveID = func(string) (string, bool) { return "", false } },
			notSent: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := n.endpoint("n2", tc.cfg)
			got, err := client.Call(context.Background(), addr, methodEcho, []byte("hello, n1"), 0)
			if err == nil {
				t.Fatalf("call answered %q", got)
			}
			if CodeOf(err) != 0 {
				t.Fatalf("err %v: the handler answered", err)
			}
			if tc.notSent && !errors.Is(err, ErrNotSent) {
				t.Fatalf("err %v, want ErrNotSent: the client refused the server", err)
			}
		})
	}

	t.Run("client without a certificate", func(t *testing.T) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true})
		if err != nil {
			return // refused during the handshake: fine
		}
		defer conn.Close()
		w := bufio.NewWriter(conn)
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := w.WriteByte(channelRPC); err == nil {
			_ = writeFrame(w, byte(methodEcho), []byte("x"))
		}
		// TLS 1.3 reports the server's refusal on the first read.
		_, _, err = readFrame(bufio.NewReader(conn), MaxAnswer)
		if err == nil || isTimeout(err) {
			t.Fatalf("read %v, want the server's refusal", err)
		}
	})

	if got := ran.Load(); got != 0 {
		t.Fatalf("the handler ran %d times for refused clients", got)
	}
	// A member of the cluster still gets through.
	good := n.endpoint("n2", nil)
	if got, err := good.Call(context.Background(), addr, methodEcho, []byte("ok"), 0); err != nil || string(got) != "echo:ok" {
		t.Fatalf("call from a member: %q, %v", got, err)
	}
	if got := ran.Load(); got != 1 {
		t.Fatalf("the handler ran %d times, want once (the member's call)", got)
	}
}
