package httpapi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"testing"

	"github.com/buytracker/buytracker/node/ledger"
)

func TestBuyAnswerEqualsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []ledger.BuyResult{{}, {PurchaseID: 1, TotalBuys: 1, RecordedAt: 1, Index: 3}}
	for range 10000 {
		r := ledger.BuyResult{PurchaseID: rng.Uint64(), TotalBuys: rng.Uint64(), Index: rng.Uint64()}
		switch rng.IntN(4) {
		case 0:
			r.RecordedAt = rng.Int64()
		case 1:
			r.RecordedAt = -rng.Int64N(1 << 62)
		case 2:
			r.RecordedAt = rng.Int64N(1<<62) / 1e9 * 1e9 // whole seconds
		default:
			r.RecordedAt = 1_795_000_000_000_000_000 + rng.Int64N(1e12)
		}
		cases = append(cases, r)
	}
	for _, r := range cases {
		var want bytes.Buffer
		_ = json.NewEncoder(&want).Encode(buyResponse{
			Success: true, PurchaseID: r.PurchaseID, TotalBuys: r.TotalBuys, RecordedAt: formatTime(r.RecordedAt), Index: r.Index,
		})
		if got := appendBuyAnswer(nil, r); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%+v:\n got %s\nwant %s", r, got, want.Bytes())
		}
	}
	rec := httptest.NewRecorder()
	writeBuyAnswer(rec, cases[1])
	if rec.Code != 201 || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(appendBuyAnswer(nil, cases[1])) {
		t.Fatalf("writeBuyAnswer: %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
}

func BenchmarkBuyAnswer(b *testing.B) {
	r := ledger.BuyResult{PurchaseID: 123456, TotalBuys: 123456, RecordedAt: 1_795_000_000_123_456_789, Index: 4567}
	b.Run("hand-written", func(b *testing.B) {
		b.ReportAllocs()
		w := httptest.NewRecorder()
		for b.Loop() {
			w.Body.Reset()
			writeBuyAnswer(w, r)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		w := httptest.NewRecorder()
		for b.Loop() {
			w.Body.Reset()
			writeJSON(w, 201, buyResponse{Success: true, PurchaseID: r.PurchaseID, TotalBuys: r.TotalBuys, RecordedAt: formatTime(r.RecordedAt), Index: r.Index})
		}
	})
}
