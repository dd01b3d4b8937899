package store_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"testing/iotest"
	"time"

	"github.com/buytracker/buytracker/node/backup"
	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/store"
)

// sampleBackupFile writes a real backup of a one-node store holding n
// purchases, as GET /backup streams it.
func sampleBackupFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	st := testnode.OpenSingle(t)
	for i := range n {
		if _, err := st.Buy(t.Context(), purchase(i)); err != nil {
			t.Fatal(err)
		}
	}
	capture, err := st.Backup(t.Context(), store.Linearizable)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	bw, err := backup.NewWriter(&buf, backup.Manifest{
		NodeID: "n1", Index: capture.Index(), Purchases: capture.Purchases(), CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := capture.Stream(bw); err != nil {
		t.Fatal(err)
	}
	if _, err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ledger.backup")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, buf.Bytes()
}

func TestCheckBackupAgreesWithOpenBackup(t *testing.T) {
	path, raw := sampleBackupFile(t, 300)
	f, err := store.OpenBackup(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Read whole, a byte at a time and in halves: the snapshot's end is
	// found however the stream is cut.
	for name, r := range map[string]io.Reader{
		"whole":       bytes.NewReader(raw),
		"one byte":    iotest.OneByteReader(bytes.NewReader(raw)),
		"half reads":  iotest.HalfReader(bytes.NewReader(raw)),
		"data at EOF": iotest.DataErrReader(bytes.NewReader(raw)),
	} {
		info, err := store.CheckBackup(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if info.Manifest != f.Manifest || info.Checksum != f.Checksum || info.Size != f.Size {
			t.Fatalf("%s: CheckBackup says %+v, OpenBackup %+v %s %d", name, info, f.Manifest, f.Checksum, f.Size)
		}
	}
	if f.Manifest.Purchases != 300 {
		t.Fatalf("the backup holds %d purchases, want 300", f.Manifest.Purchases)
	}
}

func TestCheckBackupRefusesEveryDamage(t *testing.T) {
	_, raw := sampleBackupFile(t, 50)
	check := func(name string, data []byte, says string) {
		t.Helper()
		_, err := store.CheckBackup(bytes.NewReader(data))
		if !errors.Is(err, backup.ErrInvalid) || !bytes.Contains([]byte(err.Error()), []byte(says)) {
			t.Fatalf("%s: %v, want an invalid backup saying %q", name, err, says)
		}
	}
	for off := 0; off < len(raw); off += max(1, len(raw)/97) {
		flipped := bytes.Clone(raw)
		flipped[off] ^= 0x10
		check("byte "+itoa(off)+" flipped", flipped, "")
	}
	check("flipped mid-snapshot", flip(raw, len(raw)/2), "does not match the trailer")
	for _, n := range []int{0, 5, 20, len(raw) / 2, len(raw) - 1} {
		check("cut at "+itoa(n), raw[:n], "")
	}
	check("cut before the trailer", raw[:len(raw)-backup.TrailerSize], "no checksum trailer")
	check("bytes appended", append(bytes.Clone(raw), 0), "")
	check("not a backup", []byte("PK\x03\x04 a zip file, not a backup at all, long enough"), "not a buytracker backup")
}

func TestCheckBackupReportsAFailedReadAsSuch(t *testing.T) {
	_, raw := sampleBackupFile(t, 50)
	cut := errors.New("connection reset by the store")
	r := io.MultiReader(bytes.NewReader(raw[:len(raw)/2]), iotest.ErrReader(cut))
	_, err := store.CheckBackup(r)
	if !errors.Is(err, cut) || errors.Is(err, backup.ErrInvalid) {
		t.Fatalf("a read that failed: %v, want the read's error and not an invalid backup", err)
	}
}

func flip(raw []byte, off int) []byte {
	out := bytes.Clone(raw)
	out[off] ^= 0x01
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
