package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/buytracker/buytracker/node/ledger"
)

func TestWatermarkDecision(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name          string
		free, minFree uint64
		failed        bool
		failedAt      uint64
		wantPressure  bool
	}{
		{"plenty of room", 100 * mib, 64 * mib, false, 0, false},
		{"exactly at the watermark", 64 * mib, 64 * mib, false, 0, false},
		{"one byte below the watermark", 64*mib - 1, 64 * mib, false, 0, true},
		{"no watermark, nothing failed, disk empty", 0, 0, false, 0, false},
		{"no watermark, a write failed, no room came back", 4096, 0, true, 4096, true},
		{"a write failed, less than the margin came back", 4096 + diskRecoverMargin - 1, 0, true, 4096, true},
		{"a write failed, the margin came back", 4096 + diskRecoverMargin, 0, true, 4096, false},
		{"a write failed and the watermark still holds", 10 * mib, 64 * mib, true, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := underPressure(tc.free, tc.minFree, tc.failed, tc.failedAt); got != tc.wantPressure {
				t.Fatalf("underPressure(free %d, watermark %d, failed %v at %d) = %v, want %v",
					tc.free, tc.minFree, tc.failed, tc.failedAt, got, tc.wantPressure)
			}
		})
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestDiskSpaceMeasuresTheDataDirAndExplainsPressure(t *testing.T) {
	d := newDiskSpace(t.TempDir(), 0, quietLogger())
	d.check()
	free, total, pressure := d.usage()
	if total == 0 || free > total || pressure {
		t.Fatalf("usage = free %d, total %d, pressure %v; want a measured file system and no pressure", free, total, pressure)
	}
	if err := d.admit(); err != nil {
		t.Fatalf("admit without pressure: %v", err)
	}

	d.minFree = total + 1 // more than the disk can ever have free
	d.check()
	err := d.admit()
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("admit below the watermark = %v, want ErrDiskFull", err)
	}
	want := fmt.Sprintf("below %d", total+1)
	if !strings.Contains(err.Error(), want) || !strings.HasPrefix(d.reason(), "disk pressure: ") || !strings.Contains(d.reason(), want) {
		t.Fatalf("error %q and reason %q should give the free bytes and the watermark", err, d.reason())
	}

	d.minFree = 0
	d.check()
	if err := d.admit(); err != nil {
		t.Fatalf("space came back, admit still says %v", err)
	}
}

func TestWriteFailedForLackOfSpaceCausesPressure(t *testing.T) {
	d := newDiskSpace(t.TempDir(), 0, quietLogger())
	d.check()
	d.writeFailed(errors.New("some other write error"))
	if err := d.admit(); err != nil {
		t.Fatalf("a write error other than ENOSPC put the disk under pressure: %v", err)
	}
	enospc := &fs.PathError{Op: "write", Path: "raft.db", Err: syscall.ENOSPC}
	d.writeFailed(fmt.Errorf("store logs: %w", enospc))
	if err := d.admit(); !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "a write failed for lack of space") {
		t.Fatalf("after ENOSPC admit = %v, want ErrDiskFull saying a write failed", err)
	}
	// Space comes back: the test fakes it by lowering the remembered free
	// space at the failure, as if the disk had since grown.
	d.mu.Lock()
	d.failedAt = 0
	free := d.free
	d.mu.Unlock()
	if free < diskRecoverMargin {
		t.Skipf("the test's file system has only %d bytes free", free)
	}
	d.check()
	if err := d.admit(); err != nil {
		t.Fatalf("space came back, admit still says %v", err)
	}
}

func TestDiskFullOutcomeTravelsFromLeaderToFollower(t *testing.T) {
	raw := appendOutcome(nil, buyOutcome{err: fmt.Errorf("%w: 10 bytes free, below 20", ErrDiskFull)})
	if raw[0] != outcomeDiskFull {
		t.Fatalf("outcome code %d, want %d", raw[0], outcomeDiskFull)
	}
	out, err := decodeOutcomes(raw, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(out[0].err, ErrDiskFull) {
		t.Fatalf("decoded outcome error %v, want ErrDiskFull", out[0].err)
	}
}

// openUnderTest starts a real one-node store (Raft over TCP, bbolt on disk)
// and waits until it leads.
func openUnderTest(t *testing.T, reg prometheus.Registerer) *Store {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := Open(Config{
		ID: "solo", DataDir: t.TempDir(), RaftBind: addr, RaftAdvertise: addr,
		HTTPURL: "http://127.0.0.1:1", AdminURL: "http://127.0.0.1:1",
		InitialCluster:   []raft.Server{{ID: "solo", Address: raft.ServerAddress(addr), Suffrage: raft.Voter}},
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		Logger: quietLogger(), Registerer: reg,
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !s.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the single node did not lead within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

func setWatermark(s *Store, minFree uint64) {
	s.disk.mu.Lock()
	s.disk.minFree = minFree
	s.disk.mu.Unlock()
	s.disk.check()
}

func TestBuyUnderDiskPressureRecordsNothingAndRecoversByItself(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openUnderTest(t, reg)
	keyed := ledger.Purchase{UserID: 1, PromotionID: 1, ProductID: 1, AmountCents: 100, IP: "192.0.2.1", IdempotencyKey: "first", Fingerprint: 7}
	first, err := s.Buy(t.Context(), keyed)
	if err != nil {
		t.Fatal(err)
	}
	index := s.Raft().LastIndex()

	setWatermark(s, ^uint64(0))
	fresh := ledger.Purchase{UserID: 2, PromotionID: 1, ProductID: 1, AmountCents: 100, IP: "192.0.2.1"}
	if _, err := s.Buy(t.Context(), fresh); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("buy under disk pressure: %v, want ErrDiskFull", err)
	}
	// A follower's forwarded purchase is refused by the leader too.
	raw, err := s.BuyForwarded(t.Context(), ledger.EncodeBuyBatch(ledger.BuyBatch{Purchases: []ledger.Purchase{fresh}}))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := decodeOutcomes(raw, 1); err != nil || !errors.Is(out[0].err, ErrDiskFull) {
		t.Fatalf("forwarded buy under disk pressure: %+v %v, want ErrDiskFull", out, err)
	}
	// A retry of a recorded purchase writes nothing: it is answered.
	again, err := s.Buy(t.Context(), keyed)
	if err != nil || !again.Replayed || again.PurchaseID != first.PurchaseID {
		t.Fatalf("retry under disk pressure: %+v %v, want the first answer %+v", again, err, first)
	}
	if got := s.Ledger().Count(); got != 1 || s.Raft().LastIndex() != index {
		t.Fatalf("under disk pressure: %d purchases, log at %d (was %d); want nothing written", got, s.Raft().LastIndex(), index)
	}
	if ok, reason := s.Ready(); ok || !strings.HasPrefix(reason, "disk pressure: ") {
		t.Fatalf("Ready under disk pressure = %v %q", ok, reason)
	}
	st := s.Status()
	if !st.DiskPressure || st.DiskTotalBytes == 0 {
		t.Fatalf("status under disk pressure: %+v", st)
	}
	metrics := gather(t, reg)
	if metrics["buytracker_disk_pressure"] != 1 || metrics["buytracker_disk_total_bytes"] != float64(st.DiskTotalBytes) {
		t.Fatalf("disk metrics under pressure: %v; status %+v", metrics, st)
	}
	// Reads go on.
	if _, err := s.Stats(t.Context(), ledger.StatsQuery{Window: time.Hour}, Linearizable); err != nil {
		t.Fatalf("linearizable read under disk pressure: %v", err)
	}

	setWatermark(s, 0)
	if _, err := s.Buy(t.Context(), fresh); err != nil {
		t.Fatalf("buy once space returned: %v", err)
	}
	if s.Status().DiskPressure || gather(t, reg)["buytracker_disk_pressure"] != 0 {
		t.Fatal("status or metrics still report disk pressure")
	}
}

// gather returns the value of every unlabelled gauge and counter in reg.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) > 0 {
				continue
			}
			switch {
			case m.Gauge != nil:
				out[f.GetName()] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[f.GetName()] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}
