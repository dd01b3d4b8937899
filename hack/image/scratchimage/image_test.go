package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestArchiveHoldsTheBinaryRunAsNonRoot(t *testing.T) {
	dir := t.TempDir()
	binary := filepath.Join(dir, "app")
	if err := os.WriteFile(binary, []byte("#!ELF pretend"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	err := run([]string{
		"-file", binary + ":/buytracker-node", "-entrypoint", "/buytracker-node",
		"-tag", "buytracker/node:dev", "-tag", "buytracker/node:test",
		"-label", "org.opencontainers.image.title=node", "-expose", "8080/tcp",
		"-platform", "linux/arm64", "-o", out,
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, ref := range []string{"buytracker/node:dev", "buytracker/node:test"} {
		tag, _ := name.NewTag(ref)
		img, err := tarball.ImageFromPath(out, &tag)
		if err != nil {
			t.Fatalf("%s not in the archive: %v", ref, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Config.User != "65532:65532" {
			t.Errorf("user = %q, want 65532:65532", cfg.Config.User)
		}
		if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/buytracker-node" {
			t.Errorf("entrypoint = %q", cfg.Config.Entrypoint)
		}
		if cfg.Architecture != "arm64" || cfg.OS != "linux" {
			t.Errorf("platform = %s/%s, want linux/arm64", cfg.OS, cfg.Architecture)
		}
		if cfg.Config.Labels["org.opencontainers.image.title"] != "node" {
			t.Errorf("labels = %v", cfg.Config.Labels)
		}
		if _, ok := cfg.Config.ExposedPorts["8080/tcp"]; !ok {
			t.Errorf("exposed ports = %v", cfg.Config.ExposedPorts)
		}

		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("layers = %d, %v; want exactly one", len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		entries := map[string]*tar.Header{}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			entries[hdr.Name] = hdr
		}
		rc.Close()
		if h := entries["buytracker-node"]; h == nil || h.Mode != 0o755 || h.Uid != 0 {
			t.Errorf("binary entry = %+v, want root-owned mode 0755", h)
		}
		if entries["etc/passwd"] == nil || entries["etc/group"] == nil {
			t.Errorf("missing /etc/passwd or /etc/group: %v", entries)
		}
	}
}

func TestSameInputsGiveTheSameDigest(t *testing.T) {
	dir := t.TempDir()
	binary := filepath.Join(dir, "manager")
	if err := os.WriteFile(binary, []byte("operator"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := imageSpec{
		Files:      []fileSpec{{Source: binary, Target: "/manager"}},
		Entrypoint: "/manager", User: "65532:65532", Platform: "linux/amd64",
	}
	first, err := buildImage(spec)
	if err != nil {
		t.Fatal(err)
	}
	second, err := buildImage(spec)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := first.Digest()
	d2, _ := second.Digest()
	if d1 != d2 {
		t.Errorf("digests differ: %s vs %s", d1, d2)
	}
}

func TestRejectsIncompleteInvocations(t *testing.T) {
	for name, args := range map[string][]string{
		"no output":       {"-file", "a:/a", "-tag", "x:y"},
		"no tag":          {"-file", "a:/a", "-o", "out.tar"},
		"relative target": {"-file", "a:a", "-tag", "x:y", "-o", "out.tar"},
		"bad label":       {"-file", "a:/a", "-tag", "x:y", "-o", "out.tar", "-label", "novalue"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := run(args); err == nil {
				t.Error("accepted")
			}
		})
	}
}
