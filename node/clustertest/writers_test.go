package clustertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ackingWriters are clients that buy with an Idempotency-Key each, retrying
// on any node until acknowledged (retryingBuy), and remember every
// acknowledgement, until stopped.
type ackingWriters struct {
	c     *Cluster
	mu    sync.Mutex
	acked map[string]BuyAnswer
	stop  atomic.Bool
	wg    sync.WaitGroup
	errs  chan error
}

func startAckingWriters(ctx context.Context, c *Cluster, prefix string, n int) *ackingWriters {
	w := &ackingWriters{c: c, acked: map[string]BuyAnswer{}, errs: make(chan error, n)}
	for i := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := 0; !w.stop.Load(); j++ {
				key := fmt.Sprintf("%s-w%d-%d", prefix, i, j)
				a, err := retryingBuy(ctx, c, key, i+1, i+j)
				if err != nil {
					w.errs <- err
					return
				}
				w.mu.Lock()
				w.acked[key] = a
				w.mu.Unlock()
			}
		}()
	}
	return w
}

func (w *ackingWriters) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// awaitMore waits until n more purchases than now are acknowledged.
func (w *ackingWriters) awaitMore(n int, timeout time.Duration, what string) {
	w.c.t.Helper()
	before := w.count()
	w.c.Eventually(timeout, what, func() error {
		if got := w.count() - before; got < n {
			return fmt.Errorf("%d acknowledged since, want %d", got, n)
		}
		return nil
	})
}

// finish stops the writers, fails the test on a purchase never
// acknowledged, and returns every acknowledgement.
func (w *ackingWriters) finish(t *testing.T) map[string]BuyAnswer {
	t.Helper()
	w.stop.Store(true)
	w.wg.Wait()
	close(w.errs)
	for err := range w.errs {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}
