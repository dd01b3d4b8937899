package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/buytracker/buytracker/node/ledger"
)

// The 201 answer of POST /buy is written by hand: it is the hot path, and
// encoding/json's reflection and allocations cost more than the rest of the
// handler. appendBuyAnswer produces exactly what json.NewEncoder would for
// buyResponse (TestBuyAnswerEqualsEncodingJSON).

var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 160); return &b }}

// jsonContentType is shared by every answer; net/http only reads it.
var jsonContentType = []string{"application/json"}

func writeBuyAnswer(w http.ResponseWriter, res ledger.BuyResult) {
	bp := answerBuffers.Get().(*[]byte)
	b := appendBuyAnswer((*bp)[:0], res)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
	*bp = b
	answerBuffers.Put(bp)
}

func appendBuyAnswer(b []byte, res ledger.BuyResult) []byte {
	b = append(b, `{"success":true,"purchase_id":`...)
	b = strconv.AppendUint(b, res.PurchaseID, 10)
	b = append(b, `,"total_buys":`...)
	b = strconv.AppendUint(b, res.TotalBuys, 10)
	b = append(b, `,"recorded_at":"`...)
	// RFC 3339 text holds no character JSON escapes.
	b = time.Unix(0, res.RecordedAt).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","index":`...)
	b = strconv.AppendUint(b, res.Index, 10)
	return append(b, "}\n"...)
}
