package workload

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buytracker/buytracker/test/chaos/history"
)

// fakeNode answers POST /buy with decide(key, attempt number for that key)
// and GET /stats with a fixed answer; it keeps what it was sent.
type fakeNode struct {
	mu       sync.Mutex
	attempts map[string]int
	ids      map[string]uint64
	auth     []string
	queries  []string
	decide   func(key string, attempt int) int
}

func newFakeNode(t *testing.T, decide func(key string, attempt int) int) (*fakeNode, *httptest.Server) {
	f := &fakeNode{attempts: map[string]int{}, ids: map[string]uint64{}, decide: decide}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeNode) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/stats" {
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.queries = append(f.queries, r.URL.RawQuery)
		fmt.Fprint(w, `{"total_buys": 4, "total_amount": "12.50", "n_recent_buys": 1, "recent_amount": "0.07"}`)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	f.attempts[key]++
	status := f.decide(key, f.attempts[key])
	if status != http.StatusCreated {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error": {"code": "x", "message": "%d"}}`, status)
		return
	}
	id, seen := f.ids[key]
	if seen {
		w.Header().Set("Idempotent-Replayed", "true")
	} else {
		id = uint64(len(f.ids) + 1)
		f.ids[key] = id
	}
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"success": true, "purchase_id": %d, "total_buys": %d}`, id, id)
}

func (f *fakeNode) sent(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[key]
}

func config(urls ...string) Config {
	return Config{Writers: 2, Nodes: func() []string { return urls }, Rate: 200, Seed: 7, AttemptTimeout: time.Second}
}

// runUntil runs the workload until the history holds n operations that
// satisfy done, or fails after 10 s.
func runUntil(t *testing.T, cfg Config, n int, done func(history.Op) bool) (*Workload, *history.Recorder) {
	t.Helper()
	rec := history.NewRecorder()
	w := Run(t.Context(), cfg, rec)
	t.Cleanup(w.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		count := 0
		for _, op := range rec.Ops() {
			if done(op) {
				count++
			}
		}
		if count >= n {
			return w, rec
		}
		if time.Now().After(deadline) {
			w.Stop()
			t.Fatalf("only %d of %d operations done after 10 s: %+v", count, n, rec.Ops())
		}
		time.Sleep(10 * time.Millisecond) // polling the recorder, which has no notification
	}
}

func TestABuyRefusedOnEveryAttemptFails(t *testing.T) {
	_, srv := newFakeNode(t, func(string, int) int { return http.StatusServiceUnavailable })
	w, rec := runUntil(t, config(srv.URL), 4, func(op history.Op) bool { return op.Outcome == history.Fail })
	w.Stop()
	full := 0
	for _, op := range rec.Ops() {
		// A buy stopped between refusals fails with fewer attempts.
		if op.Outcome != history.Fail || op.Attempts < 1 || op.Attempts > 3 || !strings.Contains(op.LastError, "503") || !op.Returned() {
			t.Fatalf("buy %+v: want a failure after at most 3 attempts, with the 503 and a return time", op)
		}
		if op.Attempts == 3 {
			full++
		}
	}
	if full == 0 {
		t.Fatal("no buy was given up after 3 refusals")
	}
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestAnUnknownOutcomeIsRetriedWithTheSameKeyUntilAnswered(t *testing.T) {
	f, srv := newFakeNode(t, func(_ string, attempt int) int {
		if attempt == 1 {
			return http.StatusGatewayTimeout
		}
		if attempt == 2 {
			return http.StatusServiceUnavailable // after a 504 a refusal settles nothing
		}
		return http.StatusCreated
	})
	cfg := config(srv.URL)
	cfg.MaxRefusals = 1
	w, rec := runUntil(t, cfg, 6, func(op history.Op) bool { return op.Kind == history.KindBuy && op.Outcome == history.OK })
	w.Stop()
	for _, op := range rec.Ops() {
		if op.Kind != history.KindBuy || op.Outcome != history.OK {
			continue
		}
		if op.Attempts != 3 || f.sent(op.Key) < 3 || op.PurchaseID == 0 || op.TotalBuys != op.PurchaseID || op.Return < op.Call {
			t.Fatalf("buy %+v (node saw the key %d times): want 3 attempts with one key, then the answer", op, f.sent(op.Key))
		}
	}
}

func TestSettleAnswersTheBuysLeftUnknown(t *testing.T) {
	var mu sync.Mutex
	healed := false
	f, srv := newFakeNode(t, func(string, int) int {
		mu.Lock()
		defer mu.Unlock()
		if healed {
			return http.StatusCreated
		}
		return http.StatusGatewayTimeout
	})
	rec := history.NewRecorder()
	w := Run(t.Context(), config(srv.URL), rec)
	t.Cleanup(w.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for f.sent("chaos-7-w0-0") < 2 || f.sent("chaos-7-w1-0") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the writers did not retry their first buys within 10 s")
		}
		time.Sleep(10 * time.Millisecond) // polling the fake node
	}
	w.Stop()
	var unknown []history.Op
	for _, op := range rec.Ops() {
		if op.Outcome != history.Unknown || op.Returned() {
			t.Fatalf("with every answer a 504, op %+v is not unknown and unreturned", op)
		}
		unknown = append(unknown, op)
	}
	mu.Lock()
	healed = true
	mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	for i, op := range rec.Ops() {
		if op.Outcome != history.OK || op.Call != unknown[i].Call || op.Return < op.Call || op.PurchaseID == 0 || f.sent(op.Key) <= unknown[i].Attempts {
			t.Fatalf("settled op %+v (was %+v)", op, unknown[i])
		}
	}
}

func TestAConnectionRefusedIsNotRecorded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	w, rec := runUntil(t, config(closed), 2, func(op history.Op) bool { return op.Outcome == history.Fail })
	w.Stop()
	for _, op := range rec.Ops() {
		if op.Outcome == history.Unknown {
			t.Fatalf("a buy that never connected is unknown: %+v", op)
		}
	}
}

func TestABadRequestStopsTheWorkloadLoudly(t *testing.T) {
	_, srv := newFakeNode(t, func(string, int) int { return http.StatusBadRequest })
	w, _ := runUntil(t, config(srv.URL), 1, func(op history.Op) bool { return op.Outcome == history.Fail })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := w.Settle(ctx); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("Settle after a 400: %v", err)
	}
	if w.Err() == nil {
		t.Fatal("no workload error after a 400")
	}
}

func TestReplaysAndReadsAreRecorded(t *testing.T) {
	f, srv := newFakeNode(t, func(string, int) int { return http.StatusCreated })
	cfg := config(srv.URL)
	cfg.Readers, cfg.Token, cfg.ReplayOneIn = 2, "reader-token-0123456789", 2
	w, rec := runUntil(t, cfg, 3, func(op history.Op) bool { return op.Kind == history.KindReplay && op.Outcome == history.OK })
	w.Stop()
	first := map[string]uint64{}
	var filtered, plain int
	for _, op := range rec.Ops() {
		switch op.Kind {
		case history.KindBuy:
			first[op.Key] = op.PurchaseID
		case history.KindReplay:
			if op.Outcome == history.OK && (!op.Replayed || op.PurchaseID != first[op.Key]) {
				t.Fatalf("replay %+v of purchase %d", op, first[op.Key])
			}
		case history.KindRead:
			switch {
			case op.Outcome != history.OK:
				t.Fatalf("read %+v", op)
			case op.ReadPromotion == 0 && op.ReadBuys == 4 && op.ReadAmountCents == 1250:
				plain++
			case op.ReadPromotion != 0 && op.ReadBuys == 1 && op.ReadAmountCents == 7:
				filtered++
			default:
				t.Fatalf("read %+v: wrong figures", op)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, a := range f.auth {
		if a != "Bearer reader-token-0123456789" {
			t.Fatalf("read sent Authorization %q", a)
		}
		q := f.queries[i]
		if !strings.Contains(q, "consistency=linearizable") && !strings.Contains(q, "consistency=lease") {
			t.Fatalf("read query %q has no consistency", q)
		}
		if strings.Contains(q, "promotion_id=") != strings.Contains(q, "timeframe_hours=87600") {
			t.Fatalf("read query %q: a filtered read must ask for the whole window", q)
		}
	}
	if plain == 0 || filtered == 0 {
		t.Fatalf("%d plain and %d filtered reads", plain, filtered)
	}
}
