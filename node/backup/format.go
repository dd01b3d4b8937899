// Package backup holds the format of a ledger backup: a versioned header
// and manifest, the ledger's snapshot stream, and a SHA-256 trailer, so
// that a backup file alone can be verified. The node writes it (GET
// /backup), the admin client and --restore-from check it.
//
// Layout (version 1):
//
//	magic "BTBACKUP", version byte,
//	uvarint manifest length, manifest JSON,
//	the ledger snapshot stream (node/ledger, self-delimiting with its own
//	CRC-32C),
//	trailer magic "BTSHA256", SHA-256 of every byte before the trailer.
package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"
)

const (
	magic        = "BTBACKUP"
	trailerMagic = "BTSHA256"
	// Version is the format version this node writes and reads.
	Version = byte(1)
	// TrailerSize is the trailer's length: its magic and the digest.
	TrailerSize = len(trailerMagic) + sha256.Size
	// maxManifest bounds the manifest a reader accepts.
	maxManifest = 64 << 10
	// headLimit is how much of a stream's start Verifier keeps to read
	// the manifest from.
	headLimit = len(magic) + 1 + binary.MaxVarintLen64 + maxManifest
)

// ErrInvalid means a backup failed a check: not a backup, a version this
// node does not read, truncated, or corrupted.
var ErrInvalid = errors.New("invalid backup")

// Manifest describes a backup. It is stored at the start of the backup and
// sent as the response headers of GET /backup.
type Manifest struct {
	// ClusterID is the cluster the backup was taken from (empty when it
	// had none).
	ClusterID string `json:"cluster_id,omitempty"`
	// NodeID is the member that wrote it.
	NodeID string `json:"node_id"`
	// Index is the Raft log index whose state the backup holds.
	Index uint64 `json:"index"`
	// Purchases is how many purchases it holds (the last purchase id).
	Purchases uint64 `json:"purchases"`
	// CreatedAt is when the snapshot was taken, on the writer's clock.
	CreatedAt time.Time `json:"created_at"`
}

// Writer writes a backup: the header and manifest at once, then the ledger
// snapshot through Write, then the trailer on Close.
type Writer struct {
	w      io.Writer
	sum    hash.Hash
	closed bool
}

// NewWriter writes the header and manifest to w.
func NewWriter(w io.Writer, m Manifest) (*Writer, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode backup manifest: %w", err)
	}
	bw := &Writer{w: w, sum: sha256.New()}
	head := append([]byte(magic), Version)
	head = binary.AppendUvarint(head, uint64(len(raw)))
	head = append(head, raw...)
	if _, err := bw.Write(head); err != nil {
		return nil, fmt.Errorf("write backup header: %w", err)
	}
	return bw, nil
}

// Write writes part of the ledger snapshot.
func (b *Writer) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	b.sum.Write(p[:n])
	return n, err
}

// Close writes the trailer and returns the backup's checksum (hex SHA-256
// of every byte before the trailer). It does not close the underlying
// writer.
func (b *Writer) Close() (string, error) {
	if b.closed {
		return "", errors.New("backup writer already closed")
	}
	b.closed = true
	digest := b.sum.Sum(nil)
	if _, err := b.w.Write(append([]byte(trailerMagic), digest...)); err != nil {
		return "", fmt.Errorf("write backup trailer: %w", err)
	}
	return hex.EncodeToString(digest), nil
}

// Verifier checks a backup as it passes through: it hashes every byte but
// the last TrailerSize, keeps the start to read the manifest from, and
// Finish compares the trailer. It is an io.Writer, so a copy can go
// through it and a file at once.
type Verifier struct {
	sum  hash.Hash
	head []byte
	tail []byte // the last bytes seen, up to TrailerSize of them
	size int64
}

// NewVerifier returns a Verifier.
func NewVerifier() *Verifier { return &Verifier{sum: sha256.New()} }

// Write takes the next bytes of the backup.
func (v *Verifier) Write(p []byte) (int, error) {
	n := len(p)
	v.size += int64(n)
	if room := headLimit - len(v.head); room > 0 {
		v.head = append(v.head, p[:min(room, len(p))]...)
	}
	// Whatever is more than TrailerSize from the end so far is hashed.
	if len(v.tail)+len(p) <= TrailerSize {
		v.tail = append(v.tail, p...)
		return n, nil
	}
	if over := len(v.tail) + len(p) - TrailerSize; over >= len(v.tail) {
		v.sum.Write(v.tail)
		v.sum.Write(p[:over-len(v.tail)])
		v.tail = append(v.tail[:0], p[over-len(v.tail):]...)
	} else {
		v.sum.Write(v.tail[:over])
		v.tail = append(v.tail[:0:0], v.tail[over:]...)
		v.tail = append(v.tail, p...)
	}
	return n, nil
}

// Size is how many bytes have been written.
func (v *Verifier) Size() int64 { return v.size }

// Finish checks the trailer and the header once the whole backup has been
// written, and returns its manifest and checksum.
func (v *Verifier) Finish() (Manifest, string, error) {
	// Another kind of file is named as such, not as a corrupted backup.
	if n := min(len(v.head), len(magic)); n > 0 && string(v.head[:n]) != magic[:n] {
		return Manifest{}, "", fmt.Errorf("%w: not a buytracker backup (no %q magic)", ErrInvalid, magic)
	}
	if len(v.tail) < TrailerSize || string(v.tail[:len(trailerMagic)]) != trailerMagic {
		return Manifest{}, "", fmt.Errorf("%w: no checksum trailer at the end (%d bytes): truncated?", ErrInvalid, v.size)
	}
	digest := v.sum.Sum(nil)
	if !bytes.Equal(digest, v.tail[len(trailerMagic):]) {
		return Manifest{}, "", fmt.Errorf("%w: SHA-256 %x does not match the trailer's %x: the backup is corrupted",
			ErrInvalid, digest, v.tail[len(trailerMagic):])
	}
	m, _, err := ReadHeader(bytes.NewReader(v.head))
	if err != nil {
		return Manifest{}, "", err
	}
	return m, hex.EncodeToString(digest), nil
}

// ReadHeader reads the header and manifest at the start of a backup and
// returns the manifest and the header's length.
func ReadHeader(r io.Reader) (Manifest, int64, error) {
	head := make([]byte, len(magic)+1)
	if _, err := io.ReadFull(r, head); err != nil {
		return Manifest{}, 0, fmt.Errorf("%w: read header: %v", ErrInvalid, err)
	}
	if string(head[:len(magic)]) != magic {
		return Manifest{}, 0, fmt.Errorf("%w: not a buytracker backup (no %q magic)", ErrInvalid, magic)
	}
	if v := head[len(magic)]; v != Version {
		return Manifest{}, 0, fmt.Errorf("%w: format version %d; this node reads version %d", ErrInvalid, v, Version)
	}
	br := byteReader{r: r}
	n, err := binary.ReadUvarint(&br)
	if err != nil {
		return Manifest{}, 0, fmt.Errorf("%w: read manifest length: %v", ErrInvalid, err)
	}
	if n > maxManifest {
		return Manifest{}, 0, fmt.Errorf("%w: manifest of %d bytes, more than %d", ErrInvalid, n, maxManifest)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return Manifest{}, 0, fmt.Errorf("%w: read manifest: %v", ErrInvalid, err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return Manifest{}, 0, fmt.Errorf("%w: decode manifest: %v", ErrInvalid, err)
	}
	return m, int64(len(head)) + int64(br.n) + int64(n), nil
}

// byteReader reads one byte at a time and counts them, so that ReadHeader
// consumes exactly the header.
type byteReader struct {
	r io.Reader
	n int
}

func (b *byteReader) ReadByte() (byte, error) {
	var one [1]byte
	if _, err := io.ReadFull(b.r, one[:]); err != nil {
		return 0, err
	}
	b.n++
	return one[0], nil
}

// File is a backup file whose checksum and header have been verified.
type File struct {
	Manifest Manifest
	// Checksum is the hex SHA-256 the trailer holds.
	Checksum string
	// Size is the file's length in bytes.
	Size int64
	f    *os.File
	body int64 // offset of the ledger snapshot
}

// OpenFile opens a backup file and verifies its checksum and header; the
// ledger snapshot inside is checked by its reader (ledger.CheckSnapshot).
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open backup: %w", err)
	}
	bf, err := verifyFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("backup %s: %w", path, err)
	}
	return bf, nil
}

func verifyFile(f *os.File) (*File, error) {
	v := NewVerifier()
	if _, err := io.Copy(v, bufio.NewReaderSize(f, 256<<10)); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	m, sum, err := v.Finish()
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	_, headLen, err := ReadHeader(bufio.NewReader(io.LimitReader(f, int64(headLimit))))
	if err != nil {
		return nil, err
	}
	if headLen+int64(TrailerSize) > v.size {
		return nil, fmt.Errorf("%w: no room for a ledger snapshot between header and trailer", ErrInvalid)
	}
	return &File{Manifest: m, Checksum: sum, Size: v.size, f: f, body: headLen}, nil
}

// Body returns a reader of the ledger snapshot inside the backup, from its
// start each time.
func (b *File) Body() io.Reader {
	return io.NewSectionReader(b.f, b.body, b.Size-b.body-int64(TrailerSize))
}

// Close closes the file.
func (b *File) Close() error { return b.f.Close() }
