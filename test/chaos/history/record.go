package history

// Record is one purchase as GET /buys returns it.
type Record struct {
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
