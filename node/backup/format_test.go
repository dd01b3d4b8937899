package backup

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleBackup(t *testing.T, body []byte) ([]byte, Manifest, string) {
	t.Helper()
	m := Manifest{ClusterID: "c-1", NodeID: "n1", Index: 42, Purchases: 7, CreatedAt: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m, sum
}

// verify feeds data to a Verifier in chunks of size step.
func verify(data []byte, step int) (Manifest, string, error) {
	v := NewVerifier()
	for len(data) > 0 {
		n := min(step, len(data))
		v.Write(data[:n])
		data = data[n:]
	}
	return v.Finish()
}

func TestBackupRoundTrip(t *testing.T) {
	body := bytes.Repeat([]byte("ledger snapshot bytes "), 100)
	data, want, sum := sampleBackup(t, body)
	// Chunk sizes around the trailer's length move its boundary through
	// every case of the Verifier's bookkeeping.
	for _, step := range []int{1, 7, TrailerSize - 1, TrailerSize, TrailerSize + 1, 1000, len(data)} {
		m, got, err := verify(data, step)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if m != want || got != sum {
			t.Fatalf("step %d: manifest %+v checksum %s, want %+v %s", step, m, got, want, sum)
		}
	}
	path := filepath.Join(t.TempDir(), "b")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	defer f.Close()
	if f.Manifest != want || f.Checksum != sum || f.Size != int64(len(data)) {
		t.Fatalf("OpenFile = %+v %s %d", f.Manifest, f.Checksum, f.Size)
	}
	var got bytes.Buffer
	if _, err := got.ReadFrom(f.Body()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("Body returned %d bytes, want the %d written", got.Len(), len(body))
	}
}

func TestEveryCorruptionIsDetected(t *testing.T) {
	data, _, _ := sampleBackup(t, []byte("a small ledger snapshot"))
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x01
		if _, _, err := verify(bad, 5); !errors.Is(err, ErrInvalid) {
			t.Fatalf("byte %d flipped: Finish = %v, want ErrInvalid", i, err)
		}
	}
	for n := range len(data) {
		if _, _, err := verify(data[:n], 5); !errors.Is(err, ErrInvalid) {
			t.Fatalf("truncated to %d bytes: Finish = %v, want ErrInvalid", n, err)
		}
	}
}

func TestFileChecksRefuseWithAClearReason(t *testing.T) {
	data, _, _ := sampleBackup(t, []byte("a small ledger snapshot"))
	reseal := func(b []byte) []byte {
		// A correct checksum over a changed header: the header checks
		// must catch it themselves.
		body := bytes.Clone(b[:len(b)-TrailerSize])
		sum := sha256.Sum256(body)
		return append(append(body, trailerMagic...), sum[:]...)
	}
	future := bytes.Clone(data)
	future[len(magic)] = Version + 1
	wrongMagic := bytes.Clone(data)
	copy(wrongMagic, "PGDMP\x00\x00\x00")
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"flipped byte": {func() []byte { b := bytes.Clone(data); b[len(b)/2] ^= 0x80; return b }(), "does not match the trailer"},
		"truncated":    {data[:len(data)-3], "no checksum trailer"},
		"empty":        {nil, "no checksum trailer"},
		"newer format": {reseal(future), "format version 2"},
		"not a backup": {reseal(wrongMagic), "not a buytracker backup"},
	} {
		path := filepath.Join(t.TempDir(), "b")
		if err := os.WriteFile(path, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := OpenFile(path)
		if err == nil {
			f.Close()
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: OpenFile = %v, want ErrInvalid saying %q", name, err, tc.want)
		}
	}
}
