package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/backup"
	"github.com/buytracker/buytracker/node/ledger"
)

// CheckBackup reads a whole backup from r and checks all of it as
// OpenBackup checks a file (header, version, checksum, every record of the
// ledger snapshot against the manifest), in one pass and without keeping
// it: the backup agent verifies a backup as it streams it from a store.
// A backup that fails a check returns an error wrapping backup.ErrInvalid;
// an error reading r is returned as it is, so that a failed read is never
// mistaken for a corrupted backup.
func CheckBackup(r io.Reader) (adminapi.BackupInfo, error) {
	src := &readErrors{r: r}
	v := backup.NewVerifier()
	stream := io.TeeReader(src, v)
	m, _, err := backup.ReadHeader(stream)
	if err == nil {
		// The ledger snapshot ends where the trailer begins.
		var info ledger.SnapshotInfo
		body := &holdBack{r: stream, keep: backup.TrailerSize}
		if info, err = ledger.CheckSnapshot(body); err == nil {
			err = matchManifest(m, info)
		} else {
			err = fmt.Errorf("%w: %w", backup.ErrInvalid, err)
		}
	}
	// Whatever failed, the trailer's verdict comes first: a truncated or
	// corrupted backup says so rather than how its snapshot broke.
	if _, cerr := io.Copy(io.Discard, stream); cerr != nil && src.err == nil {
		return adminapi.BackupInfo{}, cerr
	}
	if src.err != nil {
		return adminapi.BackupInfo{}, fmt.Errorf("read backup: %w", src.err)
	}
	vm, sum, verr := v.Finish()
	if verr != nil {
		return adminapi.BackupInfo{}, verr
	}
	if err != nil {
		return adminapi.BackupInfo{}, err
	}
	return adminapi.BackupInfo{Manifest: vm, Checksum: sum, Size: v.Size()}, nil
}

// readErrors records the first error of r other than io.EOF.
type readErrors struct {
	r   io.Reader
	err error
}

func (e *readErrors) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// holdBack reads r but the last keep bytes, which it never returns.
type holdBack struct {
	r    io.Reader
	keep int
	buf  []byte
	err  error
}

func (h *holdBack) Read(p []byte) (int, error) {
	if want := h.keep + len(p); cap(h.buf) < want {
		grown := make([]byte, len(h.buf), want)
		copy(grown, h.buf)
		h.buf = grown
	}
	// Read at least once when there is room, and until more than keep
	// bytes are held or r ends.
	for first := true; h.err == nil && (first || len(h.buf) <= h.keep) && len(h.buf) < cap(h.buf); first = false {
		n, err := h.r.Read(h.buf[len(h.buf):cap(h.buf)])
		h.buf = h.buf[:len(h.buf)+n]
		h.err = err
	}
	avail := len(h.buf) - h.keep
	if avail <= 0 {
		if h.err == nil {
			return 0, nil
		}
		return 0, h.err
	}
	n := copy(p, h.buf[:avail])
	h.buf = h.buf[:copy(h.buf, h.buf[n:])]
	return n, nil
}

// HasIdentity reports whether dataDir holds a node's identity, that is,
// whether a node has started on it; the backup agent's fetch
// --skip-if-data-dir skips a restore then.
func HasIdentity(dataDir string) (bool, error) {
	st, err := os.Stat(filepath.Join(dataDir, identityFile))
	switch {
	case err == nil:
		return st.Mode().IsRegular(), nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("inspect data dir %s: %w", dataDir, err)
}
