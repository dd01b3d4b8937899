package pki

import (
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHandshakeBetweenMembersOfOneCA(t *testing.T) {
	ca := newTestCA(t, "ca")
	server, _ := memberReloader(t, ca.cert, ca.issue(t, "n1"))
	// n2 is named by a DNS label only, as a pod behind the peer Service is.
	client, _ := memberReloader(t, ca.cert, ca.issue(t, "pod-2", "n2.peers.ns.svc"))

	res := handshake(t, server.ServerConfig(), client.ClientConfig("n1"))
	if !res.ok() {
		t.Fatalf("handshake failed: server %v, client %v", res.serverErr, res.clientErr)
	}
	if res.server.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want 1.3", res.server.Version)
	}
	clientCert, err := PeerCertificate(res.server)
	if err != nil || !NamesID(clientCert, "n2") {
		t.Errorf("the server sees client %v (err %v), want one naming n2", clientCert.DNSNames, err)
	}
	serverCert, err := PeerCertificate(res.client)
	if err != nil || !NamesID(serverCert, "n1") {
		t.Errorf("the client sees server %q (err %v), want n1", serverCert.Subject.CommonName, err)
	}
}

func TestHandshakeRefused(t *testing.T) {
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other")
	n1, _ := memberReloader(t, ca.cert, ca.issue(t, "n1"))
	// Members of the other CA that trust ours too, so only the far end refuses.
	foreignClient, _ := memberReloader(t, bundle(ca, other), other.issue(t, "n2"))
	foreignServer, _ := memberReloader(t, bundle(ca, other), other.issue(t, "n1"))
	for _, tc := range []struct {
		name          string
		server        *tls.Config
		client        *tls.Config
		wantServerErr string // the end that refuses, and why
		wantClientErr string
	}{
		{
			name:          "client without a certificate",
			server:        n1.ServerConfig(),
			client:        &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
			wantServerErr: "didn't provide a certificate",
		},
		{
			name:          "client certificate of another CA",
			server:        n1.ServerConfig(),
			client:        foreignClient.ClientConfig("n1"),
			wantServerErr: "client certificate: x509: certificate signed by unknown authority",
		},
		{
			name:          "server certificate of another CA",
			server:        foreignServer.ServerConfig(),
			client:        n1.ClientConfig("n1"),
			wantClientErr: "server certificate: x509: certificate signed by unknown authority",
		},
		{
			name:          "server certificate names another ID",
			server:        n1.ServerConfig(),
			client:        n1.ClientConfig("n10"),
			wantClientErr: `server certificate names CN=n1, not the expected member "n10"`,
		},
		{
			name:   "client offering only TLS 1.2",
			server: n1.ServerConfig(),
			client: func() *tls.Config {
				c := n1.ClientConfig("n1")
				c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
				return c
			}(),
			wantServerErr: "unsupported versions",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := handshake(t, tc.server, tc.client)
			if res.serverErr == nil || res.clientErr == nil {
				t.Fatalf("connection established (server err %v, client err %v), want it refused", res.serverErr, res.clientErr)
			}
			if tc.wantServerErr != "" && !strings.Contains(res.serverErr.Error(), tc.wantServerErr) {
				t.Errorf("server err %q, want it to contain %q", res.serverErr, tc.wantServerErr)
			}
			if tc.wantClientErr != "" && !strings.Contains(res.clientErr.Error(), tc.wantClientErr) {
				t.Errorf("client err %q, want it to contain %q", res.clientErr, tc.wantClientErr)
			}
		})
	}
}

func TestNewReloaderFailsClearlyOnMissingOrBadFiles(t *testing.T) {
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other")
	n1, n2 := ca.issue(t, "n1"), ca.issue(t, "n2")
	for _, tc := range []struct {
		name            string
		files           map[string][]byte // nil content: the file is absent
		wantErrContains []string
	}{
		{"missing tls.key", map[string][]byte{CAFile: ca.cert, CertFile: n1.cert}, []string{KeyFile, "no such file"}},
		{"corrupt ca.crt", map[string][]byte{CAFile: []byte("junk"), CertFile: n1.cert, KeyFile: n1.key}, []string{CAFile}},
		{"member certificate in ca.crt", map[string][]byte{CAFile: n2.cert, CertFile: n1.cert, KeyFile: n1.key}, []string{CAFile, "not a CA"}},
		{"key of another member", map[string][]byte{CAFile: ca.cert, CertFile: n1.cert, KeyFile: n2.key}, []string{KeyFile, "does not match"}},
		{"certificate of another CA", map[string][]byte{CAFile: other.cert, CertFile: n1.cert, KeyFile: n1.key}, []string{CertFile, "does not verify against", "unknown authority"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r, err := NewReloader(dir, nil)
			if err == nil {
				t.Fatalf("NewReloader succeeded (certificate until %s), want an error", r.NotAfter())
			}
			for _, want := range tc.wantErrContains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

// A renewal and a CA rotation: the server's files are replaced by a
// certificate of a new CA and a bundle trusting old and new; new handshakes
// use them, without a restart.
func TestReloaderUsesRenewedFilesForNewHandshakes(t *testing.T) {
	oldCA, newCA := newTestCA(t, "old"), newTestCA(t, "new")
	n1Old := oldCA.issueUntil(t, "n1", time.Now().Add(24*time.Hour))
	server, serverDir := memberReloader(t, oldCA.cert, n1Old)
	server.Interval = 10 * time.Millisecond
	runReloader(t, server)
	client, clientDir := memberReloader(t, oldCA.cert, oldCA.issue(t, "n2"))
	newMember, _ := memberReloader(t, bundle(oldCA, newCA), newCA.issue(t, "n3"))

	if res := handshake(t, server.ServerConfig(), newMember.ClientConfig("n1")); res.serverErr == nil {
		t.Fatal("before the rotation the server accepted a client of the new CA")
	}

	n1New := newCA.issueUntil(t, "n1", time.Now().Add(48*time.Hour))
	if err := WriteDir(clientDir, bundle(oldCA, newCA), mustRead(t, clientDir, CertFile), mustRead(t, clientDir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	if err := client.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(serverDir, bundle(oldCA, newCA), n1New.cert, n1New.key); err != nil {
		t.Fatal(err)
	}

	wantSerial := n1New.leaf(t).SerialNumber
	eventually(t, 5*time.Second, "the server still presents its old certificate", func() bool {
		res := handshake(t, server.ServerConfig(), client.ClientConfig("n1"))
		if !res.ok() {
			t.Fatalf("handshake during the rotation failed: server %v, client %v", res.serverErr, res.clientErr)
		}
		return res.client.PeerCertificates[0].SerialNumber.Cmp(wantSerial) == 0
	})
	if got, want := server.NotAfter(), n1New.leaf(t).NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter %s, want the new certificate's %s", got, want)
	}
	if res := handshake(t, server.ServerConfig(), newMember.ClientConfig("n1")); !res.ok() {
		t.Errorf("after the rotation a client of the new CA is refused: server %v, client %v", res.serverErr, res.clientErr)
	}
}

func TestReloaderKeepsOldMaterialWhenNewFilesAreBad(t *testing.T) {
	ca := newTestCA(t, "ca")
	n1 := ca.issue(t, "n1")
	server, serverDir := memberReloader(t, ca.cert, n1)
	logs := &logBuffer{}
	server.logger = slog.New(slog.NewTextHandler(logs, nil))
	server.Interval = 10 * time.Millisecond
	runReloader(t, server)
	client, _ := memberReloader(t, ca.cert, ca.issue(t, "n2"))
	notAfter := server.NotAfter()

	if err := os.WriteFile(filepath.Join(serverDir, CertFile), []byte("-----BEGIN CERTIFICATE-----\ntruncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "no log says the bad files were rejected", func() bool {
		return strings.Contains(logs.String(), "Keeping the previous certificates")
	})
	if err := server.Reload(); err == nil || !strings.Contains(err.Error(), CertFile) {
		t.Errorf("Reload of a corrupt tls.crt: err %v, want one naming %s", err, CertFile)
	}
	res := handshake(t, server.ServerConfig(), client.ClientConfig("n1"))
	if !res.ok() {
		t.Fatalf("handshake with the kept material failed: server %v, client %v", res.serverErr, res.clientErr)
	}
	if got := res.client.PeerCertificates[0].SerialNumber; got.Cmp(n1.leaf(t).SerialNumber) != 0 {
		t.Errorf("the server presents serial %x, want the old certificate's", got)
	}
	if !server.NotAfter().Equal(notAfter) {
		t.Errorf("NotAfter changed to %s after a bad file", server.NotAfter())
	}

	// Good files again: picked up.
	renewed := ca.issueUntil(t, "n1", time.Now().Add(48*time.Hour))
	if err := WriteDir(serverDir, ca.cert, renewed.cert, renewed.key); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the renewed certificate was not loaded after the bad one", func() bool {
		return server.NotAfter().Equal(renewed.leaf(t).NotAfter)
	})
}

// BenchmarkHandshake measures one full mutual-TLS connection between two
// members: TCP connect, TLS 1.3 handshake with certificates both ways and the
// chain and ID checks, and the first byte.
func BenchmarkHandshake(b *testing.B) {
	ca := newTestCA(b, "ca")
	server, _ := memberReloader(b, ca.cert, ca.issue(b, "n1"))
	client, _ := memberReloader(b, ca.cert, ca.issue(b, "n2"))
	serverConfig, clientConfig := server.ServerConfig(), client.ClientConfig("n1")
	b.ReportAllocs()
	for b.Loop() {
		if res := handshake(b, serverConfig, clientConfig); !res.ok() {
			b.Fatalf("handshake failed: server %v, client %v", res.serverErr, res.clientErr)
		}
	}
}

func mustRead(t *testing.T, dir, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
