package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// Keys of the etcd layout: a counter, and one key per purchase named by its
// time, so a window is one key range.
const (
	etcdCounterKey     = "buytracker/total_buys"
	etcdPurchasePrefix = "buytracker/purchases/"
)

// etcdMaxTxnOps is etcd's default --max-txn-ops: the most puts a bulk
// preload puts in one transaction.
const etcdMaxTxnOps = 128

// etcdPreloadWorkers is how many bulk transactions are in flight at once.
const etcdPreloadWorkers = 8

// counterState is the counter as last read: its value and the revision
// that wrote it (0: the key does not exist yet).
type counterState struct {
	modRevision int64
	value       int64
}

// etcdBackend records each purchase with a compare-and-swap on the
// counter's ModRevision that also puts the purchase's key, retried until it
// wins. etcd acknowledges a transaction once a majority of its members have
// it in their fsynced logs.
type etcdBackend struct {
	client *clientv3.Client
	// last is the newest counter state seen, the first guess of every buy.
	mu   sync.Mutex
	last counterState

	attemptCount, successCount atomic.Int64
}

func newEtcdBackend(ctx context.Context, endpoints []string) (*etcdBackend, error) {
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		Context:     context.WithoutCancel(ctx),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %v: %w", endpoints, err)
	}
	b := &etcdBackend{client: client}
	resp, err := client.Get(ctx, etcdCounterKey)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("reading the counter: %w", err)
	}
	if b.last, err = counterFrom(resp.Kvs); err != nil {
		_ = client.Close()
		return nil, err
	}
	return b, nil
}

// etcdPurchaseKey names a purchase by its time, then its id: keys sort by
// time (fixed-width hex of Unix nanoseconds), and never collide.
func etcdPurchaseKey(t time.Time, id int64) string {
	return fmt.Sprintf("%s%016x/%016x", etcdPurchasePrefix, t.UnixNano(), id)
}

// etcdWindowRange is the key range [from, end) of purchases recorded at or
// after now-window.
func etcdWindowRange(window time.Duration, now time.Time) (from, end string) {
	return fmt.Sprintf("%s%016x", etcdPurchasePrefix, now.Add(-window).UnixNano()), clientv3.GetPrefixRangeEnd(etcdPurchasePrefix)
}

// counterFrom reads the counter out of a range answer; no key is zero.
func counterFrom(kvs []*mvccpb.KeyValue) (counterState, error) {
	if len(kvs) == 0 {
		return counterState{}, nil
	}
	v, err := strconv.ParseInt(string(kvs[0].Value), 10, 64)
	if err != nil {
		return counterState{}, fmt.Errorf("counter %q holds %q: %w", etcdCounterKey, kvs[0].Value, err)
	}
	return counterState{modRevision: kvs[0].ModRevision, value: v}, nil
}

// remember keeps s as the first guess of later buys unless a newer state is
// already known.
func (b *etcdBackend) remember(s counterState) {
	b.mu.Lock()
	if s.modRevision > b.last.modRevision {
		b.last = s
	}
	b.mu.Unlock()
}

func (b *etcdBackend) guess() counterState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// buy is the compare-and-swap loop: if the counter is still at the revision
// last seen, write count+1 and the purchase's key in one transaction; if
// not, the transaction's else branch returns the counter as it is, and the
// loop tries again with it, until it wins or ctx ends.
func (b *etcdBackend) buy(ctx context.Context, p purchase, now time.Time) (receipt, error) {
	state := b.guess()
	record := p.record()
	for {
		b.attemptCount.Add(1)
		next := state.value + 1
		resp, err := b.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(etcdCounterKey), "=", state.modRevision)).
			Then(clientv3.OpPut(etcdCounterKey, strconv.FormatInt(next, 10)),
				clientv3.OpPut(etcdPurchaseKey(now, next), record)).
			Else(clientv3.OpGet(etcdCounterKey)).
			Commit()
		if err != nil {
			return receipt{}, fmt.Errorf("compare-and-swap of the counter: %w", err)
		}
		if resp.Succeeded {
			b.successCount.Add(1)
			// Both puts carry the transaction's revision.
			b.remember(counterState{modRevision: resp.Header.Revision, value: next})
			return receipt{PurchaseID: next, TotalBuys: next}, nil
		}
		if state, err = counterFrom(resp.Responses[0].GetResponseRange().Kvs); err != nil {
			return receipt{}, err
		}
		b.remember(state)
	}
}

func (b *etcdBackend) attempts() (attempts, successes int64) {
	return b.attemptCount.Load(), b.successCount.Load()
}

// stats reads the counter and counts the window's keys (count only: no
// values travel) in one read-only transaction, a linearizable read.
func (b *etcdBackend) stats(ctx context.Context, window time.Duration, now time.Time) (counts, error) {
	from, end := etcdWindowRange(window, now)
	resp, err := b.client.Txn(ctx).
		Then(clientv3.OpGet(etcdCounterKey), clientv3.OpGet(from, clientv3.WithRange(end), clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return counts{}, fmt.Errorf("counting: %w", err)
	}
	total, err := counterFrom(resp.Responses[0].GetResponseRange().Kvs)
	if err != nil {
		return counts{}, err
	}
	return counts{TotalBuys: total.value, RecentBuys: resp.Responses[1].GetResponseRange().Count}, nil
}

// preload puts n purchases' keys in transactions of etcdMaxTxnOps puts,
// several in flight, then moves the counter forward by n with one
// compare-and-swap (so a buy racing the preload makes it fail, not lie).
// Keys written in chunks that finish out of order leave gaps in the ids when
// the preload runs out of time; the counter still counts what was written.
func (b *etcdBackend) preload(ctx context.Context, n int64, now time.Time) (int64, error) {
	resp, err := b.client.Get(ctx, etcdCounterKey)
	if err != nil {
		return 0, fmt.Errorf("reading the counter: %w", err)
	}
	start, err := counterFrom(resp.Kvs)
	if err != nil {
		return 0, err
	}
	var written atomic.Int64
	work := make(chan [2]int64) // first id, count
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(work)
		first := start.value + 1
		for _, size := range chunkSizes(n, etcdMaxTxnOps) {
			select {
			case work <- [2]int64{first, size}:
			case <-gctx.Done():
				return nil
			}
			first += size
		}
		return nil
	})
	for range etcdPreloadWorkers {
		g.Go(func() error {
			for chunk := range work {
				ops := make([]clientv3.Op, 0, chunk[1])
				for id := chunk[0]; id < chunk[0]+chunk[1]; id++ {
					ops = append(ops, clientv3.OpPut(etcdPurchaseKey(now, id), syntheticPurchase(id).record()))
				}
				if _, err := b.client.Txn(gctx).Then(ops...).Commit(); err != nil {
					return fmt.Errorf("preloading purchases %d..%d: %w", chunk[0], chunk[0]+chunk[1]-1, err)
				}
				written.Add(chunk[1])
			}
			return nil
		})
	}
	waitErr := g.Wait()
	done := written.Load()
	if done == 0 {
		return 0, waitErr
	}
	// Count what was written even when the preload ran out of time: ctx may
	// be over, so the counter's update gets a deadline of its own.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	total := start.value + done
	txn, err := b.client.Txn(cctx).
		If(clientv3.Compare(clientv3.ModRevision(etcdCounterKey), "=", start.modRevision)).
		Then(clientv3.OpPut(etcdCounterKey, strconv.FormatInt(total, 10))).
		Commit()
	switch {
	case err != nil:
		return 0, fmt.Errorf("moving the counter to %d: %w", total, err)
	case !txn.Succeeded:
		return 0, errors.New("the counter moved during the preload: preload with no other traffic")
	}
	b.remember(counterState{modRevision: txn.Header.Revision, value: total})
	return done, waitErr
}

func (b *etcdBackend) close() { _ = b.client.Close() }
