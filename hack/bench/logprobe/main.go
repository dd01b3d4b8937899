// Command logprobe times the Raft log store the node uses
// (github.com/hashicorp/raft-boltdb/v2 on bbolt, fsync'ed) on this machine's
// disk, with nothing else in the way: one entry of a purchase's size per
// StoreLogs, back to back and then paced like a light load. The paced rows
// show what an idle machine adds to each durable write, the floor under a
// purchase's latency at low load (docs/benchmarks.md).
//
//	go run ./hack/bench/logprobe -dir /tmp/probe [-n 1000] [-pace 50ms]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/buytracker/buytracker/hack/bench/latency"
	"github.com/buytracker/buytracker/hack/bench/result"
)

func main() {
	dir := flag.String("dir", "", "directory for the probe's log store (a new one under $TMPDIR when empty)")
	n := flag.Int("n", 1000, "writes per row")
	pace := flag.Duration("pace", 50*time.Millisecond, "gap between paced writes (50ms: a purchase every 50 ms, about the lightest prototype load)")
	size := flag.Int("size", 200, "bytes per entry (one encoded purchase is about 60-200)")
	noFreelistSync := flag.Bool("no-freelist-sync", false, "open bbolt with NoFreelistSync and the map freelist (fewer pages per commit, same two fsyncs)")
	flag.Parse()
	if err := run(*dir, *n, *pace, *size, *noFreelistSync); err != nil {
		fmt.Fprintln(os.Stderr, "logprobe:", err)
		os.Exit(1)
	}
}

func run(dir string, n int, pace time.Duration, size int, noFreelistSync bool) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "logprobe-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	opts := raftboltdb.Options{Path: filepath.Join(dir, "raft.db")}
	if noFreelistSync {
		opts.BoltOptions = &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}
	}
	store, err := raftboltdb.New(opts)
	if err != nil {
		return fmt.Errorf("open log store: %w", err)
	}
	defer store.Close()
	last, err := store.LastIndex()
	if err != nil {
		return err
	}
	data := make([]byte, size)
	write := func() (time.Duration, error) {
		last++
		start := time.Now()
		err := store.StoreLogs([]*raft.Log{{Index: last, Term: 1, Type: raft.LogCommand, Data: data}})
		return time.Since(start), err
	}
	fmt.Printf("raft-boltdb StoreLogs, one %d-byte entry each, %d writes per row, no freelist sync %v, in %s\n", size, n, noFreelistSync, dir)
	for _, row := range []struct {
		name string
		gap  time.Duration
	}{{"back to back", 0}, {fmt.Sprintf("one every %v", pace), pace}, {"back to back", 0}, {fmt.Sprintf("one every %v", pace), pace}} {
		h := latency.New()
		for range n {
			if row.gap > 0 {
				time.Sleep(row.gap)
			}
			d, err := write()
			if err != nil {
				return fmt.Errorf("store log %d: %w", last, err)
			}
			h.Record(d)
		}
		s := result.Summarize(h)
		fmt.Printf("  %-20s ms: p50 %s  p90 %s  p99 %s  max %s  mean %s\n", row.name,
			result.Millis(s.P50Ms), result.Millis(s.P90Ms), result.Millis(s.P99Ms), result.Millis(s.MaxMs), result.Millis(s.MeanMs))
	}
	return nil
}
