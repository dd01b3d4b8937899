package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// recordingBackend answers from fixed values and remembers what it was asked.
type recordingBackend struct {
	bought  []purchase
	window  time.Duration
	buyErr  error
	blockOn bool // buy waits for its deadline
}

func (b *recordingBackend) buy(ctx context.Context, p purchase, _ time.Time) (receipt, error) {
	if b.blockOn {
		<-ctx.Done()
		return receipt{}, ctx.Err()
	}
	if b.buyErr != nil {
		return receipt{}, b.buyErr
	}
	b.bought = append(b.bought, p)
	n := int64(len(b.bought))
	return receipt{PurchaseID: n, TotalBuys: n}, nil
}

func (b *recordingBackend) stats(_ context.Context, window time.Duration, _ time.Time) (counts, error) {
	b.window = window
	return counts{TotalBuys: int64(len(b.bought)), RecentBuys: 1}, nil
}

func (b *recordingBackend) preload(context.Context, int64, time.Time) (int64, error) { return 0, nil }
func (b *recordingBackend) close()                                                   {}

func newTestServer(b backend, timeout time.Duration) http.Handler {
	s := &server{backend: b, timeout: timeout, now: time.Now, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return s.routes()
}

func do(t *testing.T, h http.Handler, method, target, contentType, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: answer %q is not JSON: %v", method, target, rec.Body.String(), err)
	}
	return rec.Code, out
}

func TestBuyAnswers201WithTheNodesFields(t *testing.T) {
	b := &recordingBackend{}
	h := newTestServer(b, time.Second)
	code, out := do(t, h, "POST", "/buy", "application/json", `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":"4.50"}`)
	if code != http.StatusCreated {
		t.Fatalf("status %d, want 201: %v", code, out)
	}
	if out["success"] != true || out["purchase_id"] != 1.0 || out["total_buys"] != 1.0 {
		t.Errorf("answer %v, want success, purchase_id 1, total_buys 1", out)
	}
	if len(b.bought) != 1 || b.bought[0].AmountCents != 450 {
		t.Errorf("backend got %+v, want one purchase of 450 cents", b.bought)
	}
}

func TestBuyRefusalsChangeNothing(t *testing.T) {
	b := &recordingBackend{}
	h := newTestServer(b, time.Second)
	for _, tc := range []struct {
		name, contentType, body string
		want                    int
	}{
		{"not json", "text/plain", `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1}`, http.StatusUnsupportedMediaType},
		{"invalid", "application/json", `{"user_id":1}`, http.StatusBadRequest},
		{"too large", "application/json", `{"user_id":1,"x":"` + strings.Repeat("a", maxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		if code, out := do(t, h, "POST", "/buy", tc.contentType, tc.body); code != tc.want {
			t.Errorf("%s: status %d, want %d: %v", tc.name, code, tc.want, out)
		}
	}
	if len(b.bought) != 0 {
		t.Errorf("backend recorded %d purchases from refused requests", len(b.bought))
	}
}

func TestBuyFailuresSayWhetherTheOutcomeIsKnown(t *testing.T) {
	body := `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1}`
	code, _ := do(t, newTestServer(&recordingBackend{buyErr: errors.New("connection refused")}, time.Second), "POST", "/buy", "application/json", body)
	if code != http.StatusServiceUnavailable {
		t.Errorf("refused by the backend: status %d, want 503", code)
	}
	code, _ = do(t, newTestServer(&recordingBackend{blockOn: true}, 20*time.Millisecond), "POST", "/buy", "application/json", body)
	if code != http.StatusGatewayTimeout {
		t.Errorf("backend past the deadline: status %d, want 504", code)
	}
}

func TestStatsPassesTheWindowAndChecksIt(t *testing.T) {
	b := &recordingBackend{}
	h := newTestServer(b, time.Second)
	code, out := do(t, h, "GET", "/stats?timeframe_hours=0.5", "", "")
	if code != http.StatusOK || out["n_recent_buys"] != 1.0 || out["total_buys"] != 0.0 {
		t.Fatalf("status %d, answer %v", code, out)
	}
	if b.window != 30*time.Minute {
		t.Errorf("window %v, want 30m", b.window)
	}
	if _, _ = do(t, h, "GET", "/stats", "", ""); b.window != time.Hour {
		t.Errorf("default window %v, want 1h", b.window)
	}
	for _, bad := range []string{"0", "-1", "87601", "abc", "NaN"} {
		if code, _ := do(t, h, "GET", "/stats?timeframe_hours="+bad, "", ""); code != http.StatusBadRequest {
			t.Errorf("timeframe_hours=%s: status %d, want 400", bad, code)
		}
	}
}
