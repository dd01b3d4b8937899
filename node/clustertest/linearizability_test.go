package clustertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// counterInput is an operation on the purchase counter.
type counterInput struct {
	buy bool // a purchase; otherwise a linearizable GET /stats
}

// counterModel is the sequential specification: the state is the number of
// purchases; a buy answers the count including itself, a read the count.
var counterModel = porcupine.Model{
	Init: func() any { return uint64(0) },
	Step: func(state, input, output any) (bool, any) {
		count, in, out := state.(uint64), input.(counterInput), output.(uint64)
		if in.buy {
			return out == count+1, count + 1
		}
		return out == count, count
	},
	DescribeOperation: func(input, output any) string {
		if input.(counterInput).buy {
			return fmt.Sprintf("buy -> %d", output)
		}
		return fmt.Sprintf("stats -> %d", output)
	},
}

// historyRecorder collects operations with times from one monotonic clock.
type historyRecorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func (h *historyRecorder) now() int64 { return int64(time.Since(h.start)) }

func (h *historyRecorder) add(client int, in counterInput, call int64, out uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: h.now()})
}

func TestLinearizableUnderLeaderCrash(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	h := &historyRecorder{start: time.Now()}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)

	const writers, readers = 3, 3
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				call := h.now()
				// Retries with one key until acknowledged: the purchase takes
				// effect once, somewhere between call and the final answer.
				a, err := retryingBuy(ctx, c, fmt.Sprintf("lin-%d-%d", w, i), w+1, w+i)
				if err != nil {
					errs <- err
					return
				}
				h.add(w, counterInput{buy: true}, call, a.TotalBuys)
			}
		}()
	}
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				nodes := c.Nodes()
				n := nodes[(r+i)%len(nodes)]
				if !n.Running() {
					continue
				}
				call := h.now()
				s, status, err := c.Stats(n.HTTPURL, "linearizable")
				if err != nil || status != 200 {
					// A failed read has no effect and is left out.
					time.Sleep(10 * time.Millisecond)
					continue
				}
				h.add(writers+r, counterInput{}, call, s.TotalBuys)
			}
		}()
	}
	waitOps := func(n int) {
		c.Eventually(30*time.Second, fmt.Sprintf("%d operations recorded", n), func() error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.ops) < n {
				return fmt.Errorf("%d recorded", len(h.ops))
			}
			return nil
		})
	}
	waitOps(150)
	c.Kill(leader)
	waitOps(400)
	c.Restart(leader)
	c.WaitLeader(30 * time.Second)
	waitOps(700)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var buys, reads int
	for _, op := range h.ops {
		if op.Input.(counterInput).buy {
			buys++
		} else {
			reads++
		}
	}
	t.Logf("history: %d buys, %d linearizable reads across a leader crash and restart", buys, reads)
	if buys < 50 || reads < 50 {
		t.Fatalf("history too thin to mean anything: %d buys, %d reads", buys, reads)
	}
	if res := porcupine.CheckOperationsTimeout(counterModel, h.ops, time.Minute); res != porcupine.Ok {
		t.Fatalf("the recorded history is not linearizable (%v)", res)
	}

	// The check bites: the same history with one stale read added (a read
	// that starts after the last buy returned but sees one purchase fewer)
	// must be rejected.
	last := h.ops[0]
	for _, op := range h.ops {
		if op.Input.(counterInput).buy && op.Return > last.Return {
			last = op
		}
	}
	final := uint64(buys)
	stale := append(append([]porcupine.Operation(nil), h.ops...), porcupine.Operation{
		ClientId: writers + readers, Input: counterInput{}, Call: last.Return + 1, Output: final - 1, Return: last.Return + 2,
	})
	if res := porcupine.CheckOperationsTimeout(counterModel, stale, time.Minute); res != porcupine.Illegal {
		t.Fatalf("a history with a stale read was not rejected (%v)", res)
	}
}

func TestCounterModelRejectsStaleAndLostHistories(t *testing.T) {
	op := func(client int, buy bool, call, ret int64, out uint64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: counterInput{buy: buy}, Call: call, Output: out, Return: ret}
	}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"concurrent buys and reads", []porcupine.Operation{
			op(0, true, 0, 10, 1), op(1, true, 5, 15, 2), op(2, false, 6, 8, 1), op(2, false, 16, 20, 2),
		}, porcupine.Ok},
		{"read misses an acknowledged buy", []porcupine.Operation{
			op(0, true, 0, 10, 1), op(1, false, 11, 12, 0),
		}, porcupine.Illegal},
		{"read goes backwards", []porcupine.Operation{
			op(0, true, 0, 1, 1), op(0, true, 2, 3, 2), op(1, false, 4, 5, 2), op(1, false, 6, 7, 1),
		}, porcupine.Illegal},
		{"two buys get the same total", []porcupine.Operation{
			op(0, true, 0, 10, 1), op(1, true, 0, 10, 1),
		}, porcupine.Illegal},
	}
	for _, tc := range cases {
		if got := porcupine.CheckOperationsTimeout(counterModel, tc.ops, 10*time.Second); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
