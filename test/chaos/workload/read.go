package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"

	"github.com/buytracker/buytracker/test/chaos/history"
)

// statsAnswer is the part of GET /stats a reader records.
type statsAnswer struct {
	TotalBuys    uint64 `json:"total_buys"`
	TotalAmount  string `json:"total_amount"`
	RecentBuys   uint64 `json:"n_recent_buys"`
	RecentAmount string `json:"recent_amount"`
}

// read is one reader client: totals or one promotion's window (ten years,
// so every purchase is in it) at linearizable or lease consistency.
func (w *Workload) read(client int, rng *rand.Rand) {
	pace := newPacer(w.cfg.Rate)
	for pace.wait(w.stopping) {
		op := history.Op{Client: client, Kind: history.KindRead, Consistency: []string{"linearizable", "lease"}[rng.IntN(2)], Node: w.pick(rng), Attempts: 1}
		query := "consistency=" + op.Consistency
		if rng.IntN(2) == 0 {
			op.ReadPromotion = 1 + rng.Int64N(3)
			query += fmt.Sprintf("&promotion_id=%d&timeframe_hours=87600", op.ReadPromotion)
		}
		id := w.rec.Begin(op)
		if err := w.stats(&op, query); err != nil {
			op.Outcome, op.LastError = history.Fail, err.Error()
		}
		w.rec.End(id, op)
	}
}

// stats sends one GET /stats; any answer but 200 fails the read. A 4xx
// other than 429 also means the workload asked wrongly, which stops it.
func (w *Workload) stats(op *history.Op, query string) error {
	if op.Node == "" {
		return fmt.Errorf("no node to read from")
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, op.Node+"/stats?"+query, nil)
	if err != nil {
		return err
	}
	if w.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.cfg.Token)
	}
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("%d %s", resp.StatusCode, raw)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			w.bug(fmt.Errorf("GET /stats?%s on %s: %w", query, op.Node, err))
		}
		return err
	}
	var a statsAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("decode %q: %w", raw, err)
	}
	buys, amount := a.TotalBuys, a.TotalAmount
	if op.ReadPromotion != 0 {
		buys, amount = a.RecentBuys, a.RecentAmount
	}
	cents, err := history.ParseCents(amount)
	if err != nil {
		return fmt.Errorf("stats answer: %w", err)
	}
	op.Outcome, op.ReadBuys, op.ReadAmountCents = history.OK, buys, cents
	return nil
}
