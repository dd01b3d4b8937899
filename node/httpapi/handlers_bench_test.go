package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/store"
)

// fixedStore answers every purchase at once, so that a benchmark measures
// the handler alone.
type fixedStore struct{}

func (fixedStore) ID() string { return "n1" }
func (fixedStore) Buy(context.Context, ledger.Purchase) (ledger.BuyResult, error) {
	return ledger.BuyResult{PurchaseID: 123456, TotalBuys: 123456, RecordedAt: 1_795_000_000_123_456_789, Index: 4567}, nil
}
func (fixedStore) Stats(context.Context, ledger.StatsQuery, store.Consistency) (ledger.Stats, error) {
	return ledger.Stats{}, nil
}
func (fixedStore) Records(context.Context, uint64, int, store.Consistency) ([]ledger.Record, error) {
	return nil, nil
}
func (fixedStore) Leader() (ledger.NodeInfo, bool) { return ledger.NodeInfo{ID: "n1"}, true }
func (fixedStore) Ready() (bool, string)           { return true, "" }

// BenchmarkHandleBuy is POST /buy through the whole handler (routing,
// metrics, content type, body, decoding, answer) with a store that answers
// at once.
func BenchmarkHandleBuy(b *testing.B) {
	srv := New(fixedStore{}, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	body := []byte(`{"user_id":123,"promotion_id":7,"product_id":42,"product_amount":"19.99"}`)
	req := httptest.NewRequest(http.MethodPost, "/buy", nil)
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = int64(len(body))
	rd := bytes.NewReader(body)
	w := &discardWriter{header: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		w.status = 0
		clear(w.header)
		srv.ServeHTTP(w, req)
		if w.status != http.StatusCreated {
			b.Fatalf("status %d", w.status)
		}
	}
}

type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
