package main

import (
	"archive/tar"
	"bytes"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// rootfs holds the files every image gets: /etc/passwd and /etc/group naming uid 65532
// "nonroot", as distroless images do, so tools that look the user up find it.
//
//go:embed rootfs
var rootfs embed.FS

// imageSpec is everything the image is made from.
type imageSpec struct {
	Files        []fileSpec
	Entrypoint   string
	User         string
	Platform     string
	Labels       map[string]string
	ExposedPorts []string
	Tags         []string
	Created      time.Time
}

// fileSpec puts the host file Source at Target in the image.
type fileSpec struct {
	Source, Target string
}

// buildImage assembles the image: an empty base, one layer, and the config.
func buildImage(spec imageSpec) (v1.Image, error) {
	layerTar, err := layerContents(spec.Files, spec.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	osName, arch, ok := strings.Cut(spec.Platform, "/")
	if !ok {
		return nil, fmt.Errorf("platform %q: want OS/ARCH", spec.Platform)
	}
	cfg.OS, cfg.Architecture = osName, arch
	cfg.Created = v1.Time{Time: spec.Created}
	cfg.Config.User = spec.User
	cfg.Config.WorkingDir = "/"
	if spec.Entrypoint != "" {
		cfg.Config.Entrypoint = []string{spec.Entrypoint}
	}
	if len(spec.Labels) > 0 {
		cfg.Config.Labels = spec.Labels
	}
	if len(spec.ExposedPorts) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.ExposedPorts {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cfg)
}

// writeArchive writes the image under every tag to one archive, via a temporary file so a
// reader never sees half an archive.
func writeArchive(output string, spec imageSpec) error {
	img, err := buildImage(spec)
	if err != nil {
		return err
	}
	refs := map[name.Reference]v1.Image{}
	for _, t := range spec.Tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return fmt.Errorf("tag %q: %w", t, err)
		}
		refs[tag] = img
	}
	tmp := output + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", output, err)
	}
	return os.Rename(tmp, output)
}

// layerContents is the layer's tar: the embedded rootfs, then the files, all owned by root
// (the container's user may run them, not change them), parent directories included.
func layerContents(files []fileSpec, modTime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	addDirs := func(p string) error {
		var parents []string
		for d := path.Dir(p); d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(parents[i], "/") + "/", Mode: 0o755, ModTime: modTime}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		}
		return nil
	}
	addFile := func(target string, mode int64, content []byte) error {
		if err := addDirs(target); err != nil {
			return err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(target, "/"), Mode: mode, Size: int64(len(content)), ModTime: modTime}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(content)
		return err
	}

	var embedded []string
	err := fs.WalkDir(rootfs, "rootfs", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			embedded = append(embedded, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(embedded)
	for _, p := range embedded {
		content, err := rootfs.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if err := addFile(strings.TrimPrefix(p, "rootfs"), 0o644, content); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		content, err := os.ReadFile(f.Source)
		if err != nil {
			return nil, err
		}
		info, err := os.Stat(f.Source)
		if err != nil {
			return nil, err
		}
		mode := int64(0o644)
		if info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		if err := addFile(path.Clean(f.Target), mode, content); err != nil {
			return nil, fmt.Errorf("add %s: %w", f.Source, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sourceDateEpoch is the reproducible-builds time: $SOURCE_DATE_EPOCH, or the Unix epoch.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", v, err)
	}
	return time.Unix(secs, 0).UTC(), nil
}
