package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// purchase is one POST /buy, checked, as every backend stores it.
type purchase struct {
	UserID, PromotionID, ProductID int64
	AmountCents                    int64
	IP                             string
	// ClientTimestamp is the body's timestamp as given ("" when absent);
	// ClientTime is the same instant, parsed.
	ClientTimestamp string
	ClientTime      time.Time
}

// fieldError is a body that breaks a rule of the API; the adapter answers 400.
type fieldError struct {
	field, message string
}

func (e *fieldError) Error() string { return e.message }

// buyBody is the POST /buy body. Only the amount stays raw: it may be a
// number or a decimal string and must keep its digits.
type buyBody struct {
	UserID        *int64          `json:"user_id"`
	PromotionID   *int64          `json:"promotion_id"`
	ProductID     *int64          `json:"product_id"`
	ProductAmount json.RawMessage `json:"product_amount"`
	IPAddress     *string         `json:"ip_address"`
	Timestamp     *string         `json:"timestamp"`
}

// decodePurchase checks a POST /buy body the way the node does, minus
// idempotency: the fields, their ranges, nothing unknown. remoteIP is kept
// when the body names no ip_address.
func decodePurchase(body []byte, remoteIP string) (purchase, error) {
	var b buyBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return purchase{}, &fieldError{message: "the body is not a valid purchase: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return purchase{}, &fieldError{message: "the body must hold exactly one JSON object"}
	}
	var p purchase
	for _, id := range []struct {
		field string
		value *int64
		dst   *int64
	}{
		{"user_id", b.UserID, &p.UserID},
		{"promotion_id", b.PromotionID, &p.PromotionID},
		{"product_id", b.ProductID, &p.ProductID},
	} {
		if id.value == nil {
			return purchase{}, &fieldError{id.field, id.field + " is required"}
		}
		if *id.value < 1 {
			return purchase{}, &fieldError{id.field, id.field + " must be at least 1"}
		}
		*id.dst = *id.value
	}
	cents, err := amountCents(b.ProductAmount)
	if err != nil {
		return purchase{}, err
	}
	p.AmountCents = cents
	p.IP = remoteIP
	if b.IPAddress != nil {
		addr, err := netip.ParseAddr(*b.IPAddress)
		if err != nil || addr.Zone() != "" {
			return purchase{}, &fieldError{"ip_address", "ip_address must be an IPv4 or IPv6 address"}
		}
		p.IP = addr.String()
	}
	if b.Timestamp != nil {
		t, err := time.Parse(time.RFC3339Nano, *b.Timestamp)
		if err != nil {
			return purchase{}, &fieldError{"timestamp", "timestamp must be an RFC 3339 time"}
		}
		p.ClientTimestamp, p.ClientTime = *b.Timestamp, t
	}
	return p, nil
}

// amountCents reads product_amount, a JSON number or decimal string with at
// most two decimals in 0 .. 99999999.99, as integer cents.
func amountCents(raw json.RawMessage) (int64, error) {
	const field = "product_amount"
	if len(raw) == 0 || string(raw) == "null" {
		return 0, &fieldError{field, field + " is required"}
	}
	text := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, &fieldError{field, field + " must be a number"}
		}
	}
	whole, frac, hasDot := strings.Cut(text, ".")
	if whole == "" || len(whole) > 8 || (hasDot && (frac == "" || len(frac) > 2)) || !digits(whole) || !digits(frac) {
		return 0, &fieldError{field, field + " must be a decimal in 0 .. 99999999.99 with at most 2 decimals"}
	}
	cents, _ := strconv.ParseInt(whole, 10, 64)
	cents *= 100
	switch len(frac) {
	case 1:
		cents += int64(frac[0]-'0') * 10
	case 2:
		cents += int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	return cents, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// formatCents writes cents as a decimal with two places: 1999 is "19.99".
func formatCents(cents int64) string {
	return fmt.Sprintf("%d.%02d", cents/100, cents%100)
}

// record is the purchase as one line, the form the key-value backends
// (Redis, etcd) store: user|promotion|product|amount|ip|client timestamp.
func (p purchase) record() string {
	return fmt.Sprintf("%d|%d|%d|%s|%s|%s", p.UserID, p.PromotionID, p.ProductID, formatCents(p.AmountCents), p.IP, p.ClientTimestamp)
}

// syntheticPurchase is the i-th purchase of a bulk preload: spread over the
// loadgen's ranges (10,000 users, 50 promotions, 500 products, 1.00 to
// 999.99) so that records have the loadgen's size.
func syntheticPurchase(i int64) purchase {
	return purchase{
		UserID:      1 + i%10_000,
		PromotionID: 1 + i%50,
		ProductID:   1 + i%500,
		AmountCents: 100 + i%99_900,
		IP:          "127.0.0.1",
	}
}
