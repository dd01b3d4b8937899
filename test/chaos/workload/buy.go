package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/buytracker/buytracker/test/chaos/history"
)

// verdict is what the client knows about a buy after its attempts.
type verdict int

const (
	answered    verdict = iota // 201
	refused                    // definitely not recorded by any attempt
	unknown                    // some attempt may have been recorded; no answer
	workloadBug                // the node rejected the request itself (4xx)
)

// write is one writer client: fresh keys, and now and then a replay of an
// acknowledged one.
func (w *Workload) write(client int, rng *rand.Rand) {
	pace := newPacer(w.cfg.Rate)
	var toReplay []pendingBuy
	for n := 0; pace.wait(w.stopping); n++ {
		if len(toReplay) > 0 && rng.IntN(3) == 0 {
			w.replay(client, rng, toReplay[0])
			toReplay = toReplay[1:]
			continue
		}
		op, body, v := w.buy(client, rng, n)
		if v == workloadBug {
			return
		}
		if v == answered && rng.IntN(w.cfg.ReplayOneIn) == 0 {
			toReplay = append(toReplay, pendingBuy{op: op, body: body})
		}
	}
}

// buy sends one new purchase until its outcome is known or the workload
// stops; unknown outcomes are kept for Settle.
func (w *Workload) buy(client int, rng *rand.Rand, n int) (history.Op, []byte, verdict) {
	op := history.Op{
		Client: client, Kind: history.KindBuy, Key: fmt.Sprintf("chaos-%d-w%d-%d", w.cfg.Seed, client, n),
		PromotionID: 1 + rng.Int64N(3), AmountCents: 1 + rng.Int64N(99999),
	}
	body := fmt.Appendf(nil, `{"user_id":%d,"promotion_id":%d,"product_id":%d,"product_amount":"%s"}`,
		client+1, op.PromotionID, 1+rng.IntN(5), history.FormatCents(op.AmountCents))
	id := w.rec.Begin(op)
	v := w.send(w.ctx, w.stopping, rng, &op, body, w.cfg.MaxRefusals)
	if v == unknown {
		op.Outcome = history.Unknown
		w.mu.Lock()
		w.unanswered = append(w.unanswered, pendingBuy{id: id, op: op, body: body})
		w.mu.Unlock()
	}
	w.rec.End(id, op)
	return op, body, v
}

// replay sends an acknowledged key again, with the same body, as its own
// operation: it must answer the first purchase, marked replayed.
func (w *Workload) replay(client int, rng *rand.Rand, first pendingBuy) {
	op := history.Op{Client: client, Kind: history.KindReplay, Key: first.op.Key, PromotionID: first.op.PromotionID, AmountCents: first.op.AmountCents}
	id := w.rec.Begin(op)
	if w.send(w.ctx, w.stopping, rng, &op, first.body, w.cfg.MaxRefusals) == unknown {
		op.Outcome = history.Unknown
	}
	w.rec.End(id, op)
}

// send tries body with op's key on random nodes until a 201, until
// maxRefusals attempts were all refused (0: never give up that way), or
// until stopping ends. It fills op's outcome, output, node and attempts.
func (w *Workload) send(reqCtx, stopping context.Context, rng *rand.Rand, op *history.Op, body []byte, maxRefusals int) verdict {
	ambiguous, refusals := false, 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !sleep(stopping, backoff(rng, attempt)) {
			if ambiguous || maxRefusals == 0 {
				return unknown
			}
			op.Outcome = history.Fail
			return refused
		}
		op.Node = w.pick(rng)
		op.Attempts++
		res := w.attempt(reqCtx, op.Node, op.Key, body)
		switch res.verdict {
		case answered:
			op.Outcome, op.PurchaseID, op.TotalBuys, op.Replayed = history.OK, res.PurchaseID, res.TotalBuys, res.replayed
			return answered
		case refused:
			op.LastError = res.err
			refusals++
			if maxRefusals > 0 && !ambiguous && refusals >= maxRefusals {
				op.Outcome = history.Fail
				return refused
			}
		case unknown:
			op.LastError = res.err
			ambiguous = true
		case workloadBug:
			op.LastError, op.Outcome = res.err, history.Fail
			w.bug(fmt.Errorf("POST /buy key %q on %s: %s", op.Key, op.Node, res.err))
			return workloadBug
		}
	}
}

// backoff grows from about 50 ms to about 1 s, with jitter so that clients
// do not retry in step.
func backoff(rng *rand.Rand, attempt int) time.Duration {
	base := 50 * time.Millisecond << min(attempt-1, 4)
	return base/2 + time.Duration(rng.Int64N(int64(base/2)+1))
}

type buyResult struct {
	verdict  verdict
	err      string
	replayed bool
	// The 201 body.
	PurchaseID uint64 `json:"purchase_id"`
	TotalBuys  uint64 `json:"total_buys"`
}

// attempt sends one POST /buy and classifies the outcome by the spec: 201
// recorded; 503 and 507 not recorded; 504, other 5xx, timeouts and broken
// connections unknown; other 4xx a workload bug. A connection that was never
// established carried nothing, so it is a refusal.
func (w *Workload) attempt(ctx context.Context, node, key string, body []byte) buyResult {
	if node == "" {
		return buyResult{verdict: refused, err: "no node to send to"}
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, node+"/buy", bytes.NewReader(body))
	if err != nil {
		return buyResult{verdict: workloadBug, err: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		if neverConnected(err) {
			return buyResult{verdict: refused, err: err.Error()}
		}
		return buyResult{verdict: unknown, err: err.Error()}
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	status := fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(raw))
	switch {
	case resp.StatusCode == http.StatusCreated:
		res := buyResult{verdict: answered, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
		if readErr != nil {
			return buyResult{verdict: unknown, err: fmt.Sprintf("201 with a broken body: %v", readErr)}
		}
		if err := json.Unmarshal(raw, &res); err != nil || res.PurchaseID == 0 {
			// Recorded, but the answer is unreadable: settle it again.
			return buyResult{verdict: unknown, err: fmt.Sprintf("201 with an unreadable body %q: %v", raw, err)}
		}
		return res
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusInsufficientStorage:
		return buyResult{verdict: refused, err: status}
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return buyResult{verdict: workloadBug, err: status}
	default:
		return buyResult{verdict: unknown, err: status}
	}
}

// neverConnected reports whether err happened before a connection existed
// (refused, no route, dial timeout): the request was not sent.
func neverConnected(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}
