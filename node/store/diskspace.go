package store

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrDiskFull means the node's disk is nearly full: its free space is below
// the watermark (Config.MinFreeDisk), or a write failed for lack of space.
// Nothing was recorded.
var ErrDiskFull = errors.New("the disk is nearly full")

// diskCheckInterval is how often free space is measured; a failed write
// measures it at once.
const diskCheckInterval = time.Second

// diskRecoverMargin is how much free space must come back after a write
// failed for lack of space before purchases are taken again, so that one
// freed page does not flip the node back and forth.
const diskRecoverMargin = 1 << 20

// diskSpace watches the file system that holds a data dir. Under pressure
// the node refuses new purchases (ErrDiskFull) before Raft or the ledger hit
// a full disk, and takes them again by itself once space returns.
type diskSpace struct {
	dir     string
	minFree uint64
	logger  *slog.Logger

	// pressure is read on every purchase; the rest only on checks.
	pressure atomic.Bool

	mu    sync.Mutex
	free  uint64
	total uint64
	// failedAt is the free space measured after a write failed for lack of
	// space; failed says whether that happened since space last returned.
	failedAt uint64
	failed   bool
	statErr  error
}

func newDiskSpace(dir string, minFree uint64, logger *slog.Logger) *diskSpace {
	return &diskSpace{dir: dir, minFree: minFree, logger: logger}
}

// underPressure is the watermark decision for one measurement.
func underPressure(free, minFree uint64, failed bool, failedAt uint64) bool {
	if free < minFree {
		return true
	}
	return failed && free < failedAt+diskRecoverMargin
}

// check measures the free space now and updates the pressure.
func (d *diskSpace) check() {
	var st unix.Statfs_t
	err := unix.Statfs(d.dir, &st)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if d.statErr == nil {
			d.logger.Warn("Measuring the data dir's free space failed; keeping the last measurement", "dir", d.dir, "error", err)
		}
		d.statErr = err
		return
	}
	d.statErr = nil
	d.free, d.total = st.Bavail*uint64(st.Bsize), st.Blocks*uint64(st.Bsize)
	was := d.pressure.Load()
	now := underPressure(d.free, d.minFree, d.failed, d.failedAt)
	if !now {
		d.failed = false
	}
	d.pressure.Store(now)
	switch {
	case now && !was:
		d.logger.Warn("Disk pressure: refusing new purchases until space returns", "dir", d.dir,
			"free_bytes", d.free, "min_free_bytes", d.minFree, "write_failed", d.failed)
	case !now && was:
		d.logger.Info("Disk pressure is over: taking purchases again", "dir", d.dir, "free_bytes", d.free)
	}
}

// writeFailed is told of every failed write to the data dir. A lack of
// space puts the node under pressure whatever the watermark; any failure
// measures the free space at once.
func (d *diskSpace) writeFailed(err error) {
	d.check()
	if !errors.Is(err, syscall.ENOSPC) {
		return
	}
	d.mu.Lock()
	if !d.failed {
		d.logger.Warn("A write failed for lack of space", "dir", d.dir, "free_bytes", d.free, "error", err)
	}
	d.failed, d.failedAt = true, d.free
	d.mu.Unlock()
	d.check()
}

// run measures the free space every diskCheckInterval until stop closes.
func (d *diskSpace) run(stop <-chan struct{}) {
	tick := time.NewTicker(diskCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			d.check()
		}
	}
}

// admit returns ErrDiskFull, with the figures, while the disk is under
// pressure.
func (d *diskSpace) admit() error {
	if !d.pressure.Load() {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrDiskFull, strings.TrimPrefix(d.reason(), "disk pressure: "))
}

// reason says why the disk is under pressure, for /ready and errors.
func (d *diskSpace) reason() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.free < d.minFree {
		return fmt.Sprintf("disk pressure: %d bytes free, below %d", d.free, d.minFree)
	}
	return fmt.Sprintf("disk pressure: %d bytes free, and a write failed for lack of space", d.free)
}

// usage returns the last measurement.
func (d *diskSpace) usage() (free, total uint64, pressure bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.free, d.total, d.pressure.Load()
}
