// Package backupstore holds where backups are kept: a file on a mounted
// volume or an object in an S3-compatible store, named by a Location, and
// the Store that puts, gets and deletes them. Errors say whether a location
// could not be read (absent, refused, unreachable: ErrUnreadable) so that
// the backup agent can tell its caller.
package backupstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ManifestSuffix names the manifest stored beside a backup.
const ManifestSuffix = ".manifest.json"

// maxLocation bounds a location's length: S3 keys stop at 1024 bytes, and
// the agent's result, which names several, must stay small.
const maxLocation = 1024

// ErrInvalidLocation means a location string is neither an absolute path
// nor s3://BUCKET/KEY.
var ErrInvalidLocation = errors.New("invalid backup location")

// Location is where one backup is kept: Path for a file on a volume, or
// Bucket and Key for an S3 object.
type Location struct {
	// Path is the file's absolute, clean path; empty for S3.
	Path string
	// Bucket and Key name the S3 object; empty for a file.
	Bucket, Key string
}

// ParseLocation parses an absolute path or s3://BUCKET/KEY.
func ParseLocation(s string) (Location, error) {
	if len(s) > maxLocation-len(ManifestSuffix) {
		return Location{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidLocation, len(s), maxLocation-len(ManifestSuffix))
	}
	if rest, ok := strings.CutPrefix(s, "s3://"); ok {
		bucket, key, _ := strings.Cut(rest, "/")
		if err := checkBucket(bucket); err != nil {
			return Location{}, fmt.Errorf("%w %q: %v", ErrInvalidLocation, s, err)
		}
		if err := checkKey(key); err != nil {
			return Location{}, fmt.Errorf("%w %q: %v", ErrInvalidLocation, s, err)
		}
		return Location{Bucket: bucket, Key: key}, nil
	}
	if !filepath.IsAbs(s) {
		return Location{}, fmt.Errorf("%w %q: give an absolute path or s3://BUCKET/KEY", ErrInvalidLocation, s)
	}
	if filepath.Clean(s) != s || s == "/" {
		return Location{}, fmt.Errorf("%w %q: a path must name a file, without '..', '//' or a trailing '/'", ErrInvalidLocation, s)
	}
	return Location{Path: s}, nil
}

// checkBucket applies S3's bucket naming rules (lower case letters, digits,
// dots and hyphens, 3 to 63 of them, starting and ending with a letter or
// digit), so that a typo is refused before any request.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket %q must be 3 to 63 characters", b)
	}
	for i, r := range b {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !alnum && (r != '.' && r != '-' || i == 0 || i == len(b)-1) {
			return fmt.Errorf("bucket %q: only lower case letters, digits, '.' and '-' (not first or last)", b)
		}
	}
	return nil
}

// checkKey refuses keys that S3 would store under another name or that
// look like a directory.
func checkKey(k string) error {
	switch {
	case k == "":
		return errors.New("no object key after the bucket")
	case strings.HasSuffix(k, "/"):
		return errors.New("the key must name an object, not end with '/'")
	case strings.HasPrefix(k, "/") || strings.Contains(k, "//"):
		return errors.New("the key has an empty path segment")
	}
	for _, seg := range strings.Split(k, "/") {
		if seg == "." || seg == ".." {
			return errors.New("the key has a '.' or '..' segment")
		}
	}
	for _, r := range k {
		if r < 0x20 || r == 0x7f {
			return errors.New("the key has a control character")
		}
	}
	return nil
}

// IsS3 reports whether the location is an S3 object.
func (l Location) IsS3() bool { return l.Bucket != "" }

// Manifest is the location of the manifest stored beside this backup.
func (l Location) Manifest() Location {
	if l.IsS3() {
		return Location{Bucket: l.Bucket, Key: l.Key + ManifestSuffix}
	}
	return Location{Path: l.Path + ManifestSuffix}
}

// String returns the location as ParseLocation reads it.
func (l Location) String() string {
	if l.IsS3() {
		return "s3://" + l.Bucket + "/" + l.Key
	}
	return l.Path
}
