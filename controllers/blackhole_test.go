package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
)

// blackholeCluster stands in for a BuyTracker whose members' admin APIs
// never answer: every call blocks until its context ends, as a call to a
// host that accepts the connection and never responds does with the real
// client. It records the calls in flight and the deadline each one had.
type blackholeCluster struct {
	mu     sync.Mutex
	nextID int
	open   map[int]bool
	// calls names every call, in order; budgets holds, per call, how long
	// its context had left when it began (0: it had no deadline).
	calls   []string
	budgets []time.Duration
}

func newBlackholeCluster() *blackholeCluster {
	return &blackholeCluster{open: map[int]bool{}}
}

// inFlight returns the ids of the calls that have not returned yet.
func (b *blackholeCluster) inFlight() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.open))
}

func (b *blackholeCluster) anyOpen(ids []int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.ContainsFunc(ids, func(id int) bool { return b.open[id] })
}

func (b *blackholeCluster) callBudgets() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.budgets)
}

func (b *blackholeCluster) callLog() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

func (b *blackholeCluster) hold(ctx context.Context, call string) error {
	b.mu.Lock()
	id := b.nextID
	b.nextID++
	b.open[id] = true
	budget := time.Duration(0)
	if deadline, ok := ctx.Deadline(); ok {
		budget = max(time.Until(deadline), time.Nanosecond)
	}
	b.budgets = append(b.budgets, budget)
	b.calls = append(b.calls, call)
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	delete(b.open, id)
	b.mu.Unlock()
	return fmt.Errorf("%s: no answer: %w", call, ctx.Err())
}

type blackholeNode struct{ cluster *blackholeCluster }

func (n blackholeNode) Cluster(ctx context.Context) (*adminapi.Cluster, error) {
	return nil, n.cluster.hold(ctx, "GET /cluster")
}

func (n blackholeNode) Status(ctx context.Context) (*adminapi.Status, error) {
	return nil, n.cluster.hold(ctx, "GET /status")
}

func (n blackholeNode) AddMember(ctx context.Context, _, _ string) (*adminapi.Result, error) {
	return nil, n.cluster.hold(ctx, "add member")
}

func (n blackholeNode) RemoveMember(ctx context.Context, _ string) (*adminapi.Result, error) {
	return nil, n.cluster.hold(ctx, "remove member")
}

func (n blackholeNode) TransferLeadership(ctx context.Context, _ string) (*adminapi.Result, error) {
	return nil, n.cluster.hold(ctx, "transfer leadership")
}

func (n blackholeNode) RecoverQuorum(ctx context.Context, _ uint64) (*adminapi.RecoverResult, error) {
	return nil, n.cluster.hold(ctx, "recover quorum")
}
