// Package history holds what a chaos run did: every client operation with
// its invocation and completion times and its answer, recorded concurrently
// and written to one JSON file so that a failing run keeps it.
package history

import (
	"sync"
	"time"
)

// Outcome says what the client learned about an operation.
type Outcome string

const (
	// OK: answered; for a buy, acknowledged (201).
	OK Outcome = "ok"
	// Fail: definitely had no effect (a buy: every attempt answered 503 or
	// 507, or never reached a node; a read: any answer but 200).
	Fail Outcome = "fail"
	// Unknown: a buy whose effect is unknown (504, timeout, connection lost
	// after sending) and that was never answered.
	Unknown Outcome = "unknown"
)

// Op kinds.
const (
	KindBuy    = "buy"
	KindReplay = "replay" // an acknowledged key sent again
	KindRead   = "read"
)

// Op is one client operation. Times are durations since the recorder's
// start, from a monotonic clock.
type Op struct {
	Client int    `json:"client"`
	Node   string `json:"node"` // base URL of the last node tried
	Kind   string `json:"kind"`

	// Buy and replay input.
	Key         string `json:"key,omitempty"`
	PromotionID int64  `json:"promotion_id,omitempty"`
	AmountCents int64  `json:"amount_cents,omitempty"`

	// Read input: consistency, and the promotion filtered on (0: none).
	Consistency   string `json:"consistency,omitempty"`
	ReadPromotion int64  `json:"read_promotion,omitempty"`

	// Call is the first invocation; Return the answer's arrival, < 0 when
	// the operation was never answered.
	Call   time.Duration `json:"call"`
	Return time.Duration `json:"return"`

	Outcome   Outcome `json:"outcome"`
	Attempts  int     `json:"attempts"`
	LastError string  `json:"last_error,omitempty"`

	// Buy and replay output.
	PurchaseID uint64 `json:"purchase_id,omitempty"`
	TotalBuys  uint64 `json:"total_buys,omitempty"`
	Replayed   bool   `json:"replayed,omitempty"`

	// Read output: total_buys and total_amount, or for a filtered read the
	// promotion's n_recent_buys and recent_amount.
	ReadBuys        uint64 `json:"read_buys,omitempty"`
	ReadAmountCents int64  `json:"read_amount_cents,omitempty"`
}

// Returned reports whether the operation was answered.
func (o Op) Returned() bool { return o.Return >= 0 }

// Recorder collects operations; safe for concurrent use.
type Recorder struct {
	start time.Time // carries the monotonic reading
	mu    sync.Mutex
	ops   []Op
}

// NewRecorder starts the recorder's clock.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the time since the recorder started.
func (r *Recorder) Now() time.Duration { return time.Since(r.start) }

// Begin records an invocation now and returns its id for End. The stored
// operation has Return -1 and Outcome unknown until End.
func (r *Recorder) Begin(op Op) int {
	op.Call = r.Now()
	op.Return = -1
	if op.Outcome == "" {
		op.Outcome = Unknown
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
	return len(r.ops) - 1
}

// End completes operation id with op's outcome and output. Return is now,
// or -1 when the outcome is Unknown (never answered). The invocation time of
// Begin is kept, so End may be called again when a later retry answers.
func (r *Recorder) End(id int, op Op) {
	now := r.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Call = r.ops[id].Call
	op.Return = now
	if op.Outcome == Unknown {
		op.Return = -1
	}
	r.ops[id] = op
}

// Ops returns a copy of every operation recorded so far, in invocation order.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}
