package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/buytracker/buytracker/node/forward"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/store"
)

// bodyBuffers hold POST /buy bodies, which the decoded purchase never
// refers to.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

type buyResponse struct {
	Success    bool   `json:"success"`
	PurchaseID uint64 `json:"purchase_id"`
	TotalBuys  uint64 `json:"total_buys"`
	RecordedAt string `json:"recorded_at"`
	Index      uint64 `json:"index"`
}

func (s *Server) handleBuy(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if _, present := r.Header["Idempotency-Key"]; present {
		if err := ledger.ValidateIdempotencyKey(key); err != nil {
			writeError(w, invalidPurchase(err))
			return
		}
	}
	bp := bodyBuffers.Get().(*[]byte)
	defer func() {
		if bp != nil {
			bodyBuffers.Put(bp)
		}
	}()
	body, aerr := readBuyBody(w, r, (*bp)[:0])
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	p, aerr := decodeBuy(body, clientIP(r, s.opts.TrustedProxies), key)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	res, err := s.store.Buy(ctx, p)
	if err != nil {
		// A forwarded body may still be read by the transport after the
		// answer came: its buffer is not reused.
		bp = nil
		s.answerStoreError(w, r, err, body)
		return
	}
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeBuyAnswer(w, res)
}

// answerStoreError forwards to the leader when that is the remedy and this
// request was not itself forwarded; otherwise it answers the error.
func (s *Server) answerStoreError(w http.ResponseWriter, r *http.Request, err error, body []byte) {
	aerr, forwardable := storeError(err)
	if forwardable && !forward.WasForwarded(r) {
		if leader, ok := s.leaderToForwardTo(r.Context()); ok {
			ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout+2*time.Second)
			defer cancel()
			ferr := s.forwarder.Forward(w, r.WithContext(ctx), leader.HTTPURL, body)
			if ferr == nil {
				return
			}
			s.opts.Logger.Warn("Forwarding to the leader failed", "leader", leader.ID, "error", ferr)
			if r.Method == http.MethodPost {
				// The leader may have received it: the outcome is unknown.
				aerr = &apiError{status: http.StatusGatewayTimeout, code: "leader_unreachable",
					message: "the leader could not be reached in time; the outcome is unknown: retry with the same Idempotency-Key"}
			}
		}
	}
	if aerr.status == http.StatusInternalServerError {
		s.opts.Logger.Error("Request failed", "route", r.URL.Path, "error", err)
	}
	writeError(w, aerr)
}

// leaderToForwardTo returns the leader when another node leads and its URL
// is known. Just after an election the URL may be a moment behind the
// leader's name, so it waits briefly for it.
func (s *Server) leaderToForwardTo(ctx context.Context) (ledger.NodeInfo, bool) {
	const wait = 2 * time.Second
	deadline := time.Now().Add(wait)
	for {
		leader, ok := s.store.Leader()
		if ok && leader.ID != s.store.ID() && leader.HTTPURL != "" {
			return leader, true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return ledger.NodeInfo{}, false
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type statsResponse struct {
	TotalBuys      int64   `json:"total_buys"`
	RecentBuys     int64   `json:"n_recent_buys"`
	TimeframeHours float64 `json:"timeframe_hours"`
	TotalAmount    string  `json:"total_amount"`
	RecentAmount   string  `json:"recent_amount"`
	Index          uint64  `json:"index"`
	Consistency    string  `json:"consistency"`
	ServedBy       string  `json:"served_by"`
	Leader         string  `json:"leader"`
	PromotionID    int64   `json:"promotion_id,omitempty"`
	ProductID      int64   `json:"product_id,omitempty"`
}

const maxTimeframeHours = 87600

var decimalPattern = regexp.MustCompile(`^[0-9]{1,6}(\.[0-9]{1,9})?$`)

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	hours := 1.0
	if v := q.Get("timeframe_hours"); q.Has("timeframe_hours") {
		h, err := strconv.ParseFloat(v, 64)
		if !decimalPattern.MatchString(v) || err != nil || h <= 0 || h > maxTimeframeHours {
			writeError(w, badRequest("invalid_timeframe", "timeframe_hours", "timeframe_hours must be a decimal number above 0 and at most 87600"))
			return
		}
		hours = h
	}
	var query ledger.StatsQuery
	var aerr *apiError
	if query.PromotionID, aerr = optionalIDParam(q.Get("promotion_id"), q.Has("promotion_id"), "promotion_id"); aerr != nil {
		writeError(w, aerr)
		return
	}
	if query.ProductID, aerr = optionalIDParam(q.Get("product_id"), q.Has("product_id"), "product_id"); aerr != nil {
		writeError(w, aerr)
		return
	}
	consistency, aerr := consistencyParam(q.Get("consistency"), q.Has("consistency"))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	query.Window = time.Duration(math.Round(hours * float64(time.Hour)))
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	st, err := s.store.Stats(ctx, query, consistency)
	if err != nil {
		s.answerStoreError(w, r, err, nil)
		return
	}
	leader, _ := s.store.Leader()
	writeJSON(w, http.StatusOK, statsResponse{
		TotalBuys:      st.TotalBuys,
		RecentBuys:     st.RecentBuys,
		TimeframeHours: hours,
		TotalAmount:    formatCents(st.TotalCents),
		RecentAmount:   formatCents(st.RecentCents),
		Index:          st.AppliedIndex,
		Consistency:    string(consistency),
		ServedBy:       s.store.ID(),
		Leader:         leader.ID,
		PromotionID:    query.PromotionID,
		ProductID:      query.ProductID,
	})
}

type purchaseJSON struct {
	PurchaseID      uint64 `json:"purchase_id"`
	UserID          int64  `json:"user_id"`
	PromotionID     int64  `json:"promotion_id"`
	ProductID       int64  `json:"product_id"`
	ProductAmount   string `json:"product_amount"`
	IPAddress       string `json:"ip_address"`
	ClientTimestamp string `json:"client_timestamp,omitempty"`
	RecordedAt      string `json:"recorded_at"`
	Index           uint64 `json:"index"`
	IdempotencyKey  string `json:"idempotency_key,omitempty"`
}

// buysChunk is how many records GET /buys reads and writes at a time: a
// client that reads the answer slowly holds one chunk in memory, not the
// page, until the write timeout cuts it off.
const buysChunk = 64

// handleBuys answers {"purchases": [...], "next_after": <id>}, streamed.
func (s *Server) handleBuys(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after uint64
	if q.Has("after") {
		v, err := strconv.ParseUint(q.Get("after"), 10, 64)
		if err != nil {
			writeError(w, badRequest("invalid_after", "after", "after must be a purchase id (an integer of 0 or more)"))
			return
		}
		after = v
	}
	limit := 100
	if q.Has("limit") {
		v, err := strconv.Atoi(q.Get("limit"))
		if err != nil || v < 1 || v > 1000 {
			writeError(w, badRequest("invalid_limit", "limit", "limit must be an integer from 1 to 1000"))
			return
		}
		limit = v
	}
	consistency, aerr := consistencyParam(q.Get("consistency"), q.Has("consistency"))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	// The first chunk passes the read barrier, so errors still get a
	// proper answer; the rest are read locally and are at least as new.
	want := min(limit, buysChunk)
	recs, err := s.store.Records(ctx, after, want, consistency)
	if err != nil {
		s.answerStoreError(w, r, err, nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	buf.WriteString(`{"purchases":[`)
	next, written := after, 0
	for {
		for _, rec := range recs {
			if written > 0 {
				buf.WriteByte(',')
			}
			_ = enc.Encode(toPurchaseJSON(rec))
			next, written = rec.ID, written+1
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return // the client left or read too slowly: the connection is closed
		}
		buf.Reset()
		if len(recs) < want || written == limit {
			break
		}
		want = min(limit-written, buysChunk)
		if recs, err = s.store.Records(ctx, next, want, store.Stale); err != nil {
			// The answer has begun: cut it off rather than end it as if
			// the page were whole.
			s.opts.Logger.Error("Reading records for GET /buys failed mid-answer", "after", next, "error", err)
			panic(http.ErrAbortHandler)
		}
	}
	fmt.Fprintf(&buf, `],"next_after":%d}`+"\n", next)
	_, _ = w.Write(buf.Bytes())
}

func toPurchaseJSON(rec ledger.Record) purchaseJSON {
	return purchaseJSON{
		PurchaseID:      rec.ID,
		UserID:          rec.UserID,
		PromotionID:     rec.PromotionID,
		ProductID:       rec.ProductID,
		ProductAmount:   formatCents(rec.AmountCents),
		IPAddress:       rec.IP,
		ClientTimestamp: rec.ClientTimestamp,
		RecordedAt:      formatTime(rec.RecordedAt),
		Index:           rec.Index,
		IdempotencyKey:  rec.IdempotencyKey,
	}
}

func optionalIDParam(v string, present bool, field string) (int64, *apiError) {
	if !present {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, badRequest("invalid_id", field, field+" must be an integer from 1 to 9223372036854775807")
	}
	return id, nil
}

func consistencyParam(v string, present bool) (store.Consistency, *apiError) {
	if !present {
		return store.Linearizable, nil
	}
	switch c := store.Consistency(v); c {
	case store.Linearizable, store.Lease, store.Stale:
		return c, nil
	}
	return "", badRequest("invalid_consistency", "consistency", "consistency must be linearizable, lease or stale")
}

// formatCents renders integer cents as a decimal string with two decimals.
func formatCents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	frac := c % 100
	pad := ""
	if frac < 10 {
		pad = "0"
	}
	return sign + strconv.FormatInt(c/100, 10) + "." + pad + strconv.FormatInt(frac, 10)
}

func formatTime(unixNano int64) string {
	return time.Unix(0, unixNano).UTC().Format(time.RFC3339Nano)
}
