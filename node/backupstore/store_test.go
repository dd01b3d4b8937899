package backupstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/buytracker/buytracker/node/backupstore"
	"github.com/buytracker/buytracker/node/backupstore/s3test"
)

// exerciseStore runs the behaviour every Store must have against st, with
// locations made by at.
func exerciseStore(t *testing.T, st backupstore.Store, at func(name string) backupstore.Location) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// Larger than one S3 part is not needed to prove streaming; a few MiB
	// from a reader of unknown length is.
	payload := make([]byte, 3<<20+17)
	rand.Read(payload)
	loc := at("ns/bt/first.btbackup")

	t.Run("put then get returns the same bytes", func(t *testing.T) {
		n, err := st.Put(ctx, loc, iotest.HalfReader(bytes.NewReader(payload)))
		if err != nil || n != int64(len(payload)) {
			t.Fatalf("put: %d bytes, %v; want %d", n, err, len(payload))
		}
		if got := get(t, st, loc); !bytes.Equal(got, payload) {
			t.Fatalf("get returned %d bytes, not the %d put", len(got), len(payload))
		}
	})

	t.Run("a put whose reader fails leaves the old object", func(t *testing.T) {
		broken := errors.New("the node's stream broke")
		r := io.MultiReader(bytes.NewReader(payload[:1<<20]), iotest.ErrReader(broken))
		if _, err := st.Put(ctx, loc, r); !errors.Is(err, broken) {
			t.Fatalf("put from a failing reader: %v, want its error", err)
		}
		if got := get(t, st, loc); !bytes.Equal(got, payload) {
			t.Fatalf("after a failed put the object holds %d bytes, not the old %d", len(got), len(payload))
		}
		fresh := at("ns/bt/never.btbackup")
		if _, err := st.Put(ctx, fresh, io.MultiReader(strings.NewReader("part"), iotest.ErrReader(broken))); err == nil {
			t.Fatal("a failed put succeeded")
		}
		if _, err := st.Get(ctx, fresh); !errors.Is(err, backupstore.ErrNotFound) {
			t.Fatalf("a failed put left something behind: get says %v", err)
		}
	})

	t.Run("a missing object is not found, hence unreadable", func(t *testing.T) {
		_, err := st.Get(ctx, at("ns/bt/absent.btbackup"))
		if !errors.Is(err, backupstore.ErrNotFound) || !errors.Is(err, backupstore.ErrUnreadable) {
			t.Fatalf("get of an absent object: %v, want ErrNotFound (unreadable)", err)
		}
	})

	t.Run("delete removes, and an absent object is fine", func(t *testing.T) {
		if err := st.Delete(ctx, loc); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, loc); !errors.Is(err, backupstore.ErrNotFound) {
			t.Fatalf("get after delete: %v, want not found", err)
		}
		if err := st.Delete(ctx, loc); err != nil {
			t.Fatalf("delete of an absent object: %v, want nil", err)
		}
	})
}

func get(t *testing.T, st backupstore.Store, loc backupstore.Location) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), loc)
	if err != nil {
		t.Fatalf("get %s: %v", loc, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", loc, err)
	}
	return got
}

func TestVolumeStore(t *testing.T) {
	dir := t.TempDir()
	exerciseStore(t, backupstore.Volume{}, func(name string) backupstore.Location {
		return backupstore.Location{Path: filepath.Join(dir, name)}
	})
	// Failed puts leave no temporary files behind.
	entries, err := os.ReadDir(filepath.Join(dir, "ns", "bt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the backup directory: %s", e.Name())
	}
}

func TestVolumeStoreRefusedPermissionIsUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	path := filepath.Join(t.TempDir(), "locked.btbackup")
	if err := os.WriteFile(path, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := backupstore.Volume{}.Get(t.Context(), backupstore.Location{Path: path})
	if !errors.Is(err, backupstore.ErrAccessDenied) {
		t.Fatalf("get of an unreadable file: %v, want ErrAccessDenied", err)
	}
}

func TestS3Store(t *testing.T) {
	srv := s3test.Start(t)
	st, err := backupstore.NewS3(srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	exerciseStore(t, st, func(name string) backupstore.Location {
		return backupstore.Location{Bucket: srv.Bucket, Key: name}
	})

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	loc := backupstore.Location{Bucket: srv.Bucket, Key: "ns/bt/kept.btbackup"}
	if _, err := st.Put(ctx, loc, strings.NewReader("a backup")); err != nil {
		t.Fatal(err)
	}
	t.Run("a missing bucket is not found", func(t *testing.T) {
		_, err := st.Get(ctx, backupstore.Location{Bucket: "no-such-bucket", Key: "k"})
		if !errors.Is(err, backupstore.ErrNotFound) {
			t.Fatalf("get from a missing bucket: %v, want ErrNotFound", err)
		}
	})
	t.Run("wrong credentials are refused, hence unreadable", func(t *testing.T) {
		cfg := srv.Config()
		cfg.SecretAccessKey = "not-the-secret"
		bad, err := backupstore.NewS3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.Get(ctx, loc)
		if !errors.Is(err, backupstore.ErrAccessDenied) || !errors.Is(err, backupstore.ErrUnreadable) {
			t.Fatalf("get with a wrong secret: %v, want ErrAccessDenied (unreadable)", err)
		}
		if strings.Contains(err.Error(), cfg.SecretAccessKey) || strings.Contains(err.Error(), srv.SecretAccessKey) {
			t.Fatalf("the error shows a secret: %v", err)
		}
		if _, err := bad.Put(ctx, loc, strings.NewReader("overwrite")); !errors.Is(err, backupstore.ErrAccessDenied) {
			t.Fatalf("put with a wrong secret: %v, want ErrAccessDenied", err)
		}
		if got := get(t, st, loc); string(got) != "a backup" {
			t.Fatalf("a refused put changed the object to %q", got)
		}
	})
	t.Run("a store nobody listens on is unreachable", func(t *testing.T) {
		cfg := srv.Config()
		cfg.Endpoint = "http://127.0.0.1:1"
		down, err := backupstore.NewS3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := down.Get(ctx, loc); !errors.Is(err, backupstore.ErrUnreachable) {
			t.Fatalf("get from a closed port: %v, want ErrUnreachable", err)
		}
	})
}

func TestS3ConfigIsCheckedAndHidesTheSecret(t *testing.T) {
	env := map[string]string{
		backupstore.EnvS3Endpoint: "https://s3.example:9000", backupstore.EnvAccessKeyID: "AKID",
		backupstore.EnvSecretAccessKey: "very-secret",
	}
	cfg := backupstore.S3ConfigFromEnv(func(k string) string { return env[k] })
	if strings.Contains(cfg.String(), "very-secret") || strings.Contains(cfg.String(), "AKID") {
		t.Fatalf("String shows credentials: %s", cfg)
	}
	if _, err := backupstore.NewS3(cfg); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*backupstore.S3Config){
		"no endpoint":         func(c *backupstore.S3Config) { c.Endpoint = "" },
		"no scheme":           func(c *backupstore.S3Config) { c.Endpoint = "s3.example:9000" },
		"a path":              func(c *backupstore.S3Config) { c.Endpoint = "https://s3.example:9000/bucket" },
		"half the creds":      func(c *backupstore.S3Config) { c.SecretAccessKey = "" },
		"a CA for plain http": func(c *backupstore.S3Config) { c.Endpoint = "http://s3.example"; c.CAFile = "/etc/ssl/ca.pem" },
		"a missing CA file":   func(c *backupstore.S3Config) { c.CAFile = filepath.Join(t.TempDir(), "none.pem") },
	} {
		c := cfg
		mutate(&c)
		if _, err := backupstore.NewS3(c); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "very-secret") {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
}
