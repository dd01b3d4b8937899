package backupstore

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrUnreadable means a location could not be used: the backup is absent,
// the store refused the credentials or the request, or it could not be
// reached. The agent reports it as reason "unreadable"; the errors below
// wrap it and say which.
var ErrUnreadable = errors.New("backup location unreadable")

var (
	// ErrNotFound means nothing is stored at the location (or its bucket
	// does not exist).
	ErrNotFound = fmt.Errorf("%w: not found", ErrUnreadable)
	// ErrAccessDenied means the store refused: wrong credentials or no
	// permission.
	ErrAccessDenied = fmt.Errorf("%w: access denied", ErrUnreadable)
	// ErrUnreachable means the store did not answer: connection refused,
	// unknown host, or a TLS handshake that failed.
	ErrUnreachable = fmt.Errorf("%w: store unreachable", ErrUnreadable)
)

// Store keeps backups at Locations of one kind.
type Store interface {
	// Put streams r to loc until r ends and returns how many bytes it
	// stored. The object appears whole or not at all: when r or the store
	// fails, nothing is left at loc (a backup already there stays).
	Put(ctx context.Context, loc Location, r io.Reader) (int64, error)
	// Get opens the object at loc for reading; the caller closes it.
	Get(ctx context.Context, loc Location) (io.ReadCloser, error)
	// Delete removes the object at loc; an absent one is not an error.
	Delete(ctx context.Context, loc Location) error
}

// Open returns the store for loc: the file system for a path, an S3 client
// configured by cfg for an s3:// location.
func Open(loc Location, cfg S3Config) (Store, error) {
	if loc.IsS3() {
		return NewS3(cfg)
	}
	return Volume{}, nil
}
