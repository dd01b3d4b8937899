// Package workload runs the chaos suite's clients against a cluster's client
// URLs: writers that buy with Idempotency-Keys and retry until they know the
// outcome, and readers of the totals and of a promotion's window. Every
// operation is recorded in a history.Recorder for the checker.
package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/buytracker/buytracker/test/chaos/history"
)

// Config says what to run.
type Config struct {
	Writers, Readers int
	// Nodes returns the current client base URLs (http://10.213.1.2:8080).
	Nodes func() []string
	// Client sends every request; each attempt also has AttemptTimeout.
	Client *http.Client
	// Rate is operations per second per client (default 10), so that
	// histories stay small enough to check.
	Rate float64
	// Seed seeds every client's choices (nodes, amounts, promotions, ...).
	Seed uint64
	// Token, when set, is sent as "Authorization: Bearer <token>" on reads.
	Token string
	// AttemptTimeout bounds one HTTP request (default 3 s).
	AttemptTimeout time.Duration
	// ReplayOneIn: one acknowledged key in this many is sent again later
	// (default 10).
	ReplayOneIn int
	// MaxRefusals is how many "not recorded" answers (503, 507, connection
	// refused) a buy takes before it is given up as failed, when no attempt
	// had an unknown outcome (default 3).
	MaxRefusals int
	// Logf, when set, receives a line for every workload bug.
	Logf func(format string, args ...any)
}

func (c *Config) setDefaults() {
	if c.Rate <= 0 {
		c.Rate = 10
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 3 * time.Second
	}
	if c.ReplayOneIn <= 0 {
		c.ReplayOneIn = 10
	}
	if c.MaxRefusals <= 0 {
		c.MaxRefusals = 3
	}
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
}

// Workload owns the client goroutines.
type Workload struct {
	cfg Config
	rec *history.Recorder
	// ctx is Run's: requests in flight when Stop is called finish under it.
	ctx context.Context
	// stopping ends when Stop is called or ctx ends: no new operation or
	// retry starts after that.
	stopping   context.Context
	stop       context.CancelFunc
	wg         sync.WaitGroup
	mu         sync.Mutex
	unanswered []pendingBuy
	err        error
}

// pendingBuy is a buy whose outcome is unknown, kept for Settle.
type pendingBuy struct {
	id   int
	op   history.Op
	body []byte
}

// Run starts the clients: writers are clients 0..Writers-1, readers the next
// Readers. They run until Stop or until ctx ends.
func Run(ctx context.Context, cfg Config, rec *history.Recorder) *Workload {
	cfg.setDefaults()
	w := &Workload{cfg: cfg, rec: rec, ctx: ctx}
	w.stopping, w.stop = context.WithCancel(ctx)
	for c := range cfg.Writers {
		w.wg.Go(func() { w.write(c, w.rng(uint64(c))) })
	}
	for r := range cfg.Readers {
		c := cfg.Writers + r
		w.wg.Go(func() { w.read(c, w.rng(uint64(c))) })
	}
	return w
}

func (w *Workload) rng(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(w.cfg.Seed, stream))
}

// Stop stops new operations and retries and waits for every client; buys
// whose outcome is still unknown are left for Settle. Idempotent.
func (w *Workload) Stop() {
	w.stop()
	w.wg.Wait()
}

// Err returns the first workload bug seen (a 4xx answer: the workload sent
// something wrong), nil when none.
func (w *Workload) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// bug records a workload bug and stops every client: a history built on
// wrong requests proves nothing.
func (w *Workload) bug(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	if w.cfg.Logf != nil {
		w.cfg.Logf("workload bug: %v", err)
	}
	w.stop()
}

// Settle stops the clients, then retries every buy whose outcome is unknown
// with its own key until it is answered (it then counts as acknowledged at
// the answer's time, invoked at its first attempt) or ctx ends. It returns
// the workload's bug, if any, and an error naming how many buys are still
// unanswered.
func (w *Workload) Settle(ctx context.Context) error {
	w.Stop()
	w.mu.Lock()
	pending := w.unanswered
	w.unanswered = nil
	w.mu.Unlock()
	rng := w.rng(1 << 32)
	var left []pendingBuy
	for _, p := range pending {
		if ctx.Err() != nil {
			left = append(left, p)
			continue
		}
		op := p.op
		switch w.send(ctx, ctx, rng, &op, p.body, 0) {
		case answered:
			w.rec.End(p.id, op)
		case workloadBug:
			w.rec.End(p.id, op)
		default:
			left = append(left, p)
		}
	}
	w.mu.Lock()
	w.unanswered = append(w.unanswered, left...)
	w.mu.Unlock()
	var err error
	if len(left) > 0 {
		err = fmt.Errorf("%d of %d unanswered buys still unanswered: %w", len(left), len(pending), context.Cause(ctx))
	}
	return errors.Join(w.Err(), err)
}

// pick returns a random node URL, "" when there is none.
func (w *Workload) pick(rng *rand.Rand) string {
	nodes := w.cfg.Nodes()
	if len(nodes) == 0 {
		return ""
	}
	return nodes[rng.IntN(len(nodes))]
}

// pacer spaces one client's operations at its rate.
type pacer struct {
	every time.Duration
	next  time.Time
}

func newPacer(rate float64) *pacer {
	return &pacer{every: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the next slot; false when stopping. A client that fell
// behind does not burst to catch up.
func (p *pacer) wait(stopping context.Context) bool {
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	d := p.next.Sub(now)
	p.next = p.next.Add(p.every)
	return sleep(stopping, d)
}

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
