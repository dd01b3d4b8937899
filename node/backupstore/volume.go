package backupstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Volume keeps backups as files on a mounted file system. A Put writes a
// temporary file in the same directory, syncs it, renames it over the
// destination and syncs the directory, so that a crash leaves the old file
// or the new one, never a part.
type Volume struct{}

func (Volume) check(loc Location) error {
	if loc.IsS3() || loc.Path == "" {
		return fmt.Errorf("%w: %s is not a file path", ErrInvalidLocation, loc)
	}
	return nil
}

// Put writes r to loc.Path, creating its directory when needed.
func (v Volume) Put(ctx context.Context, loc Location, r io.Reader) (int64, error) {
	if err := v.check(loc); err != nil {
		return 0, err
	}
	dir := filepath.Dir(loc.Path)
	if err := mkdirAllSynced(dir); err != nil {
		return 0, classifyFile("create "+dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(loc.Path)+".tmp-*")
	if err != nil {
		return 0, classifyFile("put "+loc.String(), err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, contextReader{ctx: ctx, r: r})
	if err != nil {
		return n, fmt.Errorf("put %s: %w", loc, err)
	}
	if err := tmp.Sync(); err != nil {
		return n, fmt.Errorf("put %s: sync: %w", loc, err)
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("put %s: close: %w", loc, err)
	}
	if err := os.Rename(tmp.Name(), loc.Path); err != nil {
		return n, classifyFile("put "+loc.String(), err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return n, fmt.Errorf("put %s: %w", loc, err)
	}
	return n, nil
}

// Get opens loc.Path.
func (v Volume) Get(_ context.Context, loc Location) (io.ReadCloser, error) {
	if err := v.check(loc); err != nil {
		return nil, err
	}
	f, err := os.Open(loc.Path)
	if err != nil {
		return nil, classifyFile("get "+loc.String(), err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = errors.New("not a regular file")
		}
		return nil, fmt.Errorf("get %s: %w", loc, err)
	}
	return f, nil
}

// Delete removes loc.Path and syncs its directory.
func (v Volume) Delete(_ context.Context, loc Location) error {
	if err := v.check(loc); err != nil {
		return err
	}
	if err := os.Remove(loc.Path); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return classifyFile("delete "+loc.String(), err)
	}
	if err := syncDir(filepath.Dir(loc.Path)); err != nil {
		return fmt.Errorf("delete %s: %w", loc, err)
	}
	return nil
}

// classifyFile describes a failed file operation, marking absent files and
// refused permissions as unreadable.
func classifyFile(op string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: %w: %w", op, ErrAccessDenied, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// mkdirAllSynced creates dir and its missing parents, syncing each parent
// after a child appears in it, so that a synced file inside survives a
// crash with its path.
func mkdirAllSynced(dir string) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSynced(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// contextReader stops a copy when ctx ends.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
