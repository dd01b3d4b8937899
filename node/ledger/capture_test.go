package ledger

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCaptureIsThePointInTimeRestoreReads(t *testing.T) {
	feed := newLogFeed(5)
	src := openTestLedger(t)
	applyInChunks(src, feed.entries(300), 16)
	capture, err := src.Capture()
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	if capture.Index() != src.AppliedIndex() || capture.Purchases() != src.Count() {
		t.Fatalf("capture at index %d with %d purchases, ledger at %d with %d",
			capture.Index(), capture.Purchases(), src.AppliedIndex(), src.Count())
	}
	now := time.Unix(0, feed.now)
	want := viewOf(t, src, now, feed.keys)
	// Entries applied after Capture must not leak into the stream.
	applyInChunks(src, feed.entries(40), 8)
	var buf bytes.Buffer
	if err := capture.Stream(&buf); err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := CheckSnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if info.Index != capture.Index() || info.Purchases != capture.Purchases() {
		t.Fatalf("CheckSnapshot = %+v, want index %d and %d purchases", info, capture.Index(), capture.Purchases())
	}
	dst := openTestLedger(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(buf.Bytes()))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := viewOf(t, dst, now, feed.keys); !reflect.DeepEqual(want, got) {
		t.Fatalf("restored capture differs: records equal %v, stats equal %v, nodes equal %v, keys equal %v (%d vs %d), applied %d vs %d",
			reflect.DeepEqual(want.Records, got.Records), reflect.DeepEqual(want.Stats, got.Stats), reflect.DeepEqual(want.Nodes, got.Nodes),
			reflect.DeepEqual(want.Keys, got.Keys), len(want.Keys), len(got.Keys), want.Applied, got.Applied)
	}
}

func TestCheckSnapshotRefusesWhatRestoreRefuses(t *testing.T) {
	src := openTestLedger(t)
	applyInChunks(src, newLogFeed(6).entries(50), 10)
	good := snapshotBytes(t, src)
	if _, err := CheckSnapshot(bytes.NewReader(good)); err != nil {
		t.Fatalf("a good snapshot was refused: %v", err)
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"flipped byte":   {func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 0x01; return b }(), ""},
		"truncated":      {good[:len(good)-10], ""},
		"extra bytes":    {append(bytes.Clone(good), 0), "follow the snapshot's checksum"},
		"not a snapshot": {[]byte("PGDMP garbage"), "not a ledger snapshot"},
	} {
		_, err := CheckSnapshot(bytes.NewReader(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckSnapshot = %v, want an error saying %q", name, err, tc.want)
		}
	}
}

func TestCaptureStreamsWhileApplyGoesOn(t *testing.T) {
	feed := newLogFeed(7)
	src := openTestLedger(t)
	applyInChunks(src, feed.entries(200), 16)
	capture, err := src.Capture()
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	later := feed.entries(200)
	done := make(chan struct{})
	go func() {
		defer close(done)
		applyInChunks(src, later, 2)
	}()
	var buf bytes.Buffer
	err = capture.Stream(&buf)
	<-done
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := CheckSnapshot(&buf)
	if err != nil || info.Purchases != capture.Purchases() || info.Index != capture.Index() {
		t.Fatalf("CheckSnapshot = %+v, %v; want the capture's %d purchases at index %d", info, err, capture.Purchases(), capture.Index())
	}
	if src.Count() <= capture.Purchases() {
		t.Fatalf("the ledger holds %d purchases, want more than the capture's %d", src.Count(), capture.Purchases())
	}
}
