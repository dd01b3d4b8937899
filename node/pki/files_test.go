package pki

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWriteDirCreatesA0700DirWith0600Files(t *testing.T) {
	ca := newTestCA(t, "ca")
	dir := filepath.Join(t.TempDir(), "tls", "n1")
	for round, m := range []testMember{ca.issue(t, "n1"), ca.issue(t, "n1")} {
		if err := WriteDir(dir, ca.cert, m.cert, m.key); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		assertMode(t, dir, fs.ModeDir|0o700)
		want := map[string][]byte{CAFile: ca.cert, CertFile: m.cert, KeyFile: m.key}
		for name, content := range want {
			path := filepath.Join(dir, name)
			assertMode(t, path, 0o600)
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, content) {
				t.Errorf("round %d: %s does not hold what was written (err %v)", round, name, err)
			}
		}
		assertOnlyFiles(t, dir, CAFile, CertFile, KeyFile)
	}
}

func TestWriteDirRejectsBadMaterialAndWritesNothing(t *testing.T) {
	ca := newTestCA(t, "ca")
	n1, n2 := ca.issue(t, "n1"), ca.issue(t, "n2")
	for _, tc := range []struct {
		name             string
		caPEM, cert, key []byte
		wantErrContains  string
	}{
		{"key of another certificate", ca.cert, n1.cert, n2.key, "tls.crt and tls.key"},
		{"member certificate as ca.crt", n2.cert, n1.cert, n1.key, "not a CA"},
		{"garbage ca.crt", []byte("junk"), n1.cert, n1.key, "ca.crt"},
		{"empty tls.crt", ca.cert, nil, n1.key, "tls.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "n1")
			err := WriteDir(dir, tc.caPEM, tc.cert, tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.wantErrContains) {
				t.Fatalf("err %v, want one containing %q", err, tc.wantErrContains)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the directory exists after a rejected write (stat: %v)", err)
			}
		})
	}
}

func TestWriteCADirWritesCertificateAndKey0600(t *testing.T) {
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other")
	dir := filepath.Join(t.TempDir(), "ca")
	if err := WriteCADir(dir, ca.cert, other.key); err == nil {
		t.Fatal("WriteCADir with another CA's key succeeded")
	}
	if err := WriteCADir(dir, ca.cert, ca.key); err != nil {
		t.Fatal(err)
	}
	assertMode(t, dir, fs.ModeDir|0o700)
	assertMode(t, filepath.Join(dir, CAFile), 0o600)
	assertMode(t, filepath.Join(dir, CAKeyFile), 0o600)
	assertOnlyFiles(t, dir, CAFile, CAKeyFile)
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode() != want {
		t.Errorf("%s: mode %v, want %v", path, info.Mode(), want)
	}
}

// assertOnlyFiles checks that no temporary file was left behind.
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(slices.Sorted(slices.Values(names)), ",") {
		t.Errorf("%s holds %v, want exactly %v", dir, got, names)
	}
}
