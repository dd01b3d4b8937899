package main

import (
	"bytes"
	"crypto/x509"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/pki"
)

// runCerts runs the command with args and returns its output.
func runCerts(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, &out, io.Discard, time.Now()); err != nil {
		t.Fatalf("certs %v: %v", args, err)
	}
	return out.String()
}

// snapshot reads every file under dir, by relative path.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestCertsWritesLoadableMemberDirsAndIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-dir", dir, "-ids", "n1,n2,n3", "-ips", "127.0.0.1", "-dns", "localhost"}
	runCerts(t, args...)
	first := snapshot(t, dir)
	if len(first) != 2+3*3 {
		t.Fatalf("wrote %d files, want ca.crt, ca.key and three per member: %v", len(first), slices.Collect(maps.Keys(first)))
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		r, err := pki.NewReloader(filepath.Join(dir, id), nil)
		if err != nil {
			t.Fatalf("member %s: %v", id, err)
		}
		if days := time.Until(r.NotAfter()).Hours() / 24; days < 364 || days > 365 {
			t.Errorf("member %s: valid for %.1f days, want 365", id, days)
		}
		leaf := parseLeaf(t, first[filepath.Join(id, pki.CertFile)])
		if !pki.NamesID(leaf, id) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) ||
			len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "localhost" {
			t.Errorf("member %s: CN %q, DNS %v, IPs %v", id, leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
		}
	}

	out := runCerts(t, args...)
	if strings.Count(out, "kept") != 4 {
		t.Errorf("second run output %q, want the CA and three members kept", out)
	}
	second := snapshot(t, dir)
	for name, content := range first {
		if !bytes.Equal(second[name], content) {
			t.Errorf("the second run changed %s", name)
		}
	}
}

func TestCertsReissuesExpiringForeignAndRenamedCertificates(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-dir", dir, "-ids", "n1,n2,n3,n4", "-ips", "127.0.0.1"}
	runCerts(t, args...)
	caCert, caKey := read(t, dir, "ca", pki.CAFile), read(t, dir, "ca", pki.CAKeyFile)

	// n1 expires in ten days; n2 is of another CA; n3 lacks the IP asked for.
	expiring, expiringKey, err := pki.IssueMember(caCert, caKey, "n1", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now().Add(10*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	mustWriteDir(t, filepath.Join(dir, "n1"), caCert, expiring, expiringKey)
	otherCA, otherKey, err := pki.NewCA("other", time.Now().Add(400*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	foreign, foreignKey, err := pki.IssueMember(otherCA, otherKey, "n2", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now().Add(300*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	mustWriteDir(t, filepath.Join(dir, "n2"), otherCA, foreign, foreignKey)
	renamed, renamedKey, err := pki.IssueMember(caCert, caKey, "n3", nil, nil, time.Now().Add(300*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	mustWriteDir(t, filepath.Join(dir, "n3"), caCert, renamed, renamedKey)
	before := snapshot(t, dir)

	out := runCerts(t, args...)
	for _, want := range []string{"ca: kept", "n1: issued", "expires", "n2: issued", "issued by another CA", "n3: issued", "other names", "n4: kept"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q does not contain %q", out, want)
		}
	}
	after := snapshot(t, dir)
	for _, unchanged := range []string{"ca/ca.crt", "ca/ca.key", "n4/tls.crt", "n4/tls.key"} {
		if !bytes.Equal(before[unchanged], after[unchanged]) {
			t.Errorf("%s changed", unchanged)
		}
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if bytes.Equal(before[id+"/tls.crt"], after[id+"/tls.crt"]) {
			t.Errorf("%s's certificate was kept, want it re-issued", id)
		}
		if !bytes.Equal(after[id+"/ca.crt"], caCert) {
			t.Errorf("%s's ca.crt is not the CA's", id)
		}
		r, err := pki.NewReloader(filepath.Join(dir, id), nil)
		if err != nil {
			t.Fatalf("re-issued %s: %v", id, err)
		}
		if time.Until(r.NotAfter()) < 364*24*time.Hour {
			t.Errorf("re-issued %s expires %s, want a year from now", id, r.NotAfter())
		}
	}
}

func TestCertsRejectsBadFlagsAndWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no dir", []string{"-ids", "n1"}, "-dir is required"},
		{"no ids", []string{"-dir", "D"}, "-ids is required"},
		{"id naming the CA's directory", []string{"-dir", "D", "-ids", "n1,ca"}, `"ca" cannot be a member ID`},
		{"id with a slash", []string{"-dir", "D", "-ids", "../n1"}, "cannot be a member ID"},
		{"duplicate id", []string{"-dir", "D", "-ids", "n1,n2,n1"}, "listed twice"},
		{"bad IP", []string{"-dir", "D", "-ids", "n1", "-ips", "127.0.0.300"}, "not an IP address"},
		{"zero days", []string{"-dir", "D", "-ids", "n1", "-days", "0"}, "must be positive"},
		{"members outliving the CA", []string{"-dir", "D", "-ids", "n1", "-days", "400", "-ca-days", "300"}, "must not exceed"},
		{"stray argument", []string{"-dir", "D", "-ids", "n1", "extra"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			for i, a := range tc.args {
				if a == "D" {
					tc.args[i] = filepath.Join(parent, "tls")
				}
			}
			err := run(tc.args, io.Discard, io.Discard, time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(parent, "tls")); !os.IsNotExist(err) {
				t.Errorf("the directory was created after a rejected command (stat: %v)", err)
			}
		})
	}
}

func TestCertsRefusesToReplaceAnUnreadableCA(t *testing.T) {
	dir := t.TempDir()
	runCerts(t, "-dir", dir, "-ids", "n1")
	if err := os.WriteFile(filepath.Join(dir, "ca", pki.CAKeyFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	err := run([]string{"-dir", dir, "-ids", "n1"}, io.Discard, io.Discard, time.Now())
	if err == nil || !strings.Contains(err.Error(), "remove the directory") {
		t.Fatalf("err %v, want a refusal that says how to start a new CA", err)
	}
	after := snapshot(t, dir)
	for name, content := range before {
		if !bytes.Equal(after[name], content) {
			t.Errorf("%s changed", name)
		}
	}
}

func parseLeaf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	certs, err := pki.ParseCertificates(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func read(t *testing.T, elem ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(elem...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustWriteDir(t *testing.T, dir string, caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	if err := pki.WriteDir(dir, caPEM, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
}
