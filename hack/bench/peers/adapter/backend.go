package main

import (
	"context"
	"time"
)

// backend is one peer's way of recording purchases and counting them. The
// HTTP layer in front of every backend is the same (server.go), so what
// differs between peers is only what happens here.
type backend interface {
	// buy records p durably (acknowledged by the peer only once on disk)
	// and returns its id and the count of purchases including it. now is
	// the time the request arrived.
	buy(ctx context.Context, p purchase, now time.Time) (receipt, error)
	// stats counts every purchase and those recorded in the window before now.
	stats(ctx context.Context, window time.Duration, now time.Time) (counts, error)
	// preload records n synthetic purchases through the peer's own bulk path
	// and returns how many it recorded before ctx ended.
	preload(ctx context.Context, n int64, now time.Time) (int64, error)
	close()
}

type receipt struct {
	PurchaseID int64 `json:"purchase_id"`
	TotalBuys  int64 `json:"total_buys"`
}

type counts struct {
	TotalBuys  int64 `json:"total_buys"`
	RecentBuys int64 `json:"n_recent_buys"`
}

// attemptCounter is a backend that retries writes (etcd's compare-and-swap)
// and counts its attempts, so the report can say what contention cost.
type attemptCounter interface {
	attempts() (attempts, successes int64)
}

// chunkSizes splits n into chunks of at most size, the last one smaller:
// a bulk preload writes one chunk per transaction or command.
func chunkSizes(n, size int64) []int64 {
	if n <= 0 || size <= 0 {
		return nil
	}
	chunks := make([]int64, 0, (n+size-1)/size)
	for n > 0 {
		c := min(n, size)
		chunks = append(chunks, c)
		n -= c
	}
	return chunks
}
