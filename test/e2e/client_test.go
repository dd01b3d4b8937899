//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// buyResponse and statsResponse hold the fields of the client API the
// suite checks (SPEC "Node HTTP API").
type buyResponse struct {
	Success    bool   `json:"success"`
	PurchaseID uint64 `json:"purchase_id"`
	TotalBuys  uint64 `json:"total_buys"`
}

type statsResponse struct {
	TotalBuys   uint64 `json:"total_buys"`
	Index       uint64 `json:"index"`
	Consistency string `json:"consistency"`
	ServedBy    string `json:"served_by"`
	Leader      string `json:"leader"`
}

// httpError is an answer other than the one expected; retryable says
// whether a client should try again (no leader, a node going away).
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func (e *httpError) retryable() bool {
	return e.status == http.StatusServiceUnavailable || e.status == http.StatusBadGateway ||
		e.status == http.StatusGatewayTimeout || e.status == http.StatusInternalServerError
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// buy sends one purchase; key, when set, is its Idempotency-Key.
func buy(ctx context.Context, c *http.Client, baseURL, key string, userID int) (*buyResponse, error) {
	body := fmt.Sprintf(`{"user_id":%d,"promotion_id":7,"product_id":42,"product_amount":"19.99"}`, userID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/buy", bytes.NewBufferString(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	var out buyResponse
	data, err := do(c, req, &out, http.StatusCreated, http.StatusOK)
	if err != nil {
		return nil, err
	}
	if !out.Success || out.PurchaseID == 0 {
		return nil, fmt.Errorf("purchase not acknowledged: %s", data)
	}
	return &out, nil
}

// stats reads GET /stats with the given consistency ("" = the default,
// linearizable).
func stats(ctx context.Context, c *http.Client, baseURL, consistency string) (*statsResponse, error) {
	url := baseURL + "/stats"
	if consistency != "" {
		url += "?consistency=" + consistency
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	var out statsResponse
	if _, err := do(c, req, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// do sends req and decodes a JSON answer with one of the wanted statuses
// into out; any other status is an *httpError. It returns the body.
func do(c *http.Client, req *http.Request, out any, wanted ...int) ([]byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(wanted, resp.StatusCode) {
		return nil, &httpError{status: resp.StatusCode, body: string(data)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("decode %q: %w", data, err)
	}
	return data, nil
}

// writer is a client that keeps buying through the Service while the
// cluster is disturbed, as a careful production client would: every
// purchase has its own Idempotency-Key and is retried with that key until
// it is acknowledged, so a purchase whose answer was lost is never counted
// twice. acked is therefore exactly the number of purchases the cluster
// must hold.
type writer struct {
	client  *http.Client
	baseURL string
	prefix  string

	next     atomic.Int64 // purchases started
	acked    atomic.Int64 // purchases acknowledged
	retries  atomic.Int64 // attempts that failed and were retried
	mu       sync.Mutex
	ids      map[uint64]string // purchase id -> key, to catch two purchases given one id
	users    map[string]int    // key -> the user_id its purchase was sent with, for replays
	failures []error           // answers no retry can fix (4xx, duplicate ids)
	lastErr  error

	stop context.CancelFunc // stops starting new purchases
	wg   sync.WaitGroup
}

// purchaseDeadline bounds how long one purchase is retried: longer than
// any disturbance the suite causes, so reaching it is a failure.
const purchaseDeadline = 5 * time.Minute

// startWriter starts workers goroutines buying through baseURL.
func startWriter(baseURL, prefix string, workers int) *writer {
	w := &writer{client: newHTTPClient(workers), baseURL: baseURL, prefix: prefix, ids: map[uint64]string{}, users: map[string]int{}}
	ctx, stop := context.WithCancel(context.Background())
	w.stop = stop
	for i := range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				n := w.next.Add(1)
				w.purchase(fmt.Sprintf("%s-%d", w.prefix, n), i+1)
			}
		}()
	}
	return w
}

// purchase retries one purchase until it is acknowledged, a non-retryable
// answer comes, or purchaseDeadline passes.
func (w *writer) purchase(key string, userID int) {
	deadline := time.Now().Add(purchaseDeadline)
	backoff := 20 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := buy(ctx, w.client, w.baseURL, key, userID)
		cancel()
		if err == nil {
			w.mu.Lock()
			if other, dup := w.ids[res.PurchaseID]; dup && other != key {
				w.failures = append(w.failures, fmt.Errorf("purchase id %d given to %s and %s", res.PurchaseID, other, key))
			}
			w.ids[res.PurchaseID] = key
			w.users[key] = userID
			w.mu.Unlock()
			w.acked.Add(1)
			return
		}
		if he, ok := err.(*httpError); ok && !he.retryable() {
			w.mu.Lock()
			w.failures = append(w.failures, fmt.Errorf("%s: %w", key, err))
			w.mu.Unlock()
			return
		}
		w.retries.Add(1)
		w.mu.Lock()
		w.lastErr = err
		w.mu.Unlock()
		if time.Now().After(deadline) {
			w.mu.Lock()
			w.failures = append(w.failures, fmt.Errorf("%s: not acknowledged after %s: %w", key, purchaseDeadline, err))
			w.mu.Unlock()
			return
		}
		// Back off a little (a node restarting, an election) before trying
		// the same key again.
		time.Sleep(backoff)
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// Stop stops starting purchases, waits for the ones under way to be
// acknowledged, and returns how many were.
func (w *writer) Stop() (acked int64, failures []error) {
	w.stop()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked.Load(), w.failures
}

// awaitAcks waits until the writer has n acknowledgements.
func (w *writer) awaitAcks(ctx context.Context, t *testing.T, n int64, what string) {
	t.Helper()
	eventually(ctx, t, time.Minute, what, func(context.Context) (bool, string, error) {
		return w.acked.Load() >= n, w.progress(), nil
	})
}

// progress describes the writer for failure messages.
func (w *writer) progress() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("started %d, acknowledged %d, retried attempts %d, last error %v",
		w.next.Load(), w.acked.Load(), w.retries.Load(), w.lastErr)
}

// replayAcknowledged sends again, through baseURL, every purchase the
// writer had acknowledged with an id of at most maxID, with its key and
// body: each must answer its first purchase's id (the cluster holds that
// purchase and its key), and none may be counted again (the caller checks
// the total). It answers how many it replayed.
func (w *writer) replayAcknowledged(ctx context.Context, baseURL string, maxID uint64) (int, error) {
	w.mu.Lock()
	type sent struct {
		id   uint64
		key  string
		user int
	}
	var todo []sent
	for id, key := range w.ids {
		if id <= maxID {
			todo = append(todo, sent{id, key, w.users[key]})
		}
	}
	w.mu.Unlock()
	c := newHTTPClient(8)
	work := make(chan sent)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				res, err := buy(rctx, c, baseURL, p.key, p.user)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("replay of %s (purchase %d): %w", p.key, p.id, err)
					return
				}
				if res.PurchaseID != p.id {
					errs <- fmt.Errorf("replay of %s answered purchase %d, first answered %d", p.key, res.PurchaseID, p.id)
					return
				}
			}
		}()
	}
	var err error
feed:
	for _, p := range todo {
		select {
		case work <- p:
		case err = <-errs:
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return len(todo), err
}
