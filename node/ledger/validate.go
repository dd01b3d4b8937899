package ledger

import (
	"errors"
	"net/netip"
	"time"
)

// The limits of a purchase's fields (../shared/SPEC.md, POST /buy). They
// also bound the size of an encoded record (maxRecordBytes).
const (
	// MaxAmountCents is 99999999.99 in cents.
	MaxAmountCents = 99_999_999_99
	// MaxIPLength is the longest text form of an IPv6 address with an
	// embedded IPv4 address.
	MaxIPLength = 45
	// MaxTimestampLength bounds the client's timestamp: RFC 3339 itself
	// allows any number of fractional-second digits.
	MaxTimestampLength = 64
	// MaxIdempotencyKeyLength bounds the Idempotency-Key.
	MaxIdempotencyKeyLength = 128
)

// ErrInvalidPurchase is wrapped by every error ValidatePurchase returns.
var ErrInvalidPurchase = errors.New("invalid purchase")

// InvalidPurchaseError names the field that breaks a rule, by its name in
// the client API (a JSON field, or the Idempotency-Key header).
type InvalidPurchaseError struct {
	Field  string
	Reason string
}

func (e *InvalidPurchaseError) Error() string { return "invalid purchase: " + e.Field + " " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidPurchase) hold.
func (e *InvalidPurchaseError) Unwrap() error { return ErrInvalidPurchase }

func invalid(field, reason string) error { return &InvalidPurchaseError{Field: field, Reason: reason} }

// ValidatePurchase checks every rule a purchase must meet to be recorded.
// It is the one place these rules live: the HTTP decoder applies it to what
// it decoded, the leader before it proposes any purchase, Apply before it
// records one, and Restore to every record it reads. So nothing a client,
// a peer or an old log hands in can be recorded in a form a snapshot will
// not restore.
func ValidatePurchase(p *Purchase) error {
	switch {
	case p.UserID < 1:
		return invalid("user_id", "must be at least 1")
	case p.PromotionID < 1:
		return invalid("promotion_id", "must be at least 1")
	case p.ProductID < 1:
		return invalid("product_id", "must be at least 1")
	case p.AmountCents < 0 || p.AmountCents > MaxAmountCents:
		return invalid("product_amount", "must be between 0 and 99999999.99")
	}
	if err := validateIP(p.IP); err != nil {
		return err
	}
	if err := validateTimestamp(p.ClientTimestamp); err != nil {
		return err
	}
	if p.IdempotencyKey != "" {
		return ValidateIdempotencyKey(p.IdempotencyKey)
	}
	return nil
}

// validateIP accepts an IPv4 or IPv6 address without a zone, in the text
// form netip writes, so that one address is always stored as one string.
func validateIP(ip string) error {
	if len(ip) > MaxIPLength {
		return invalid("ip_address", "must be at most 45 characters")
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Zone() != "" {
		return invalid("ip_address", "must be an IPv4 or IPv6 address")
	}
	var buf [MaxIPLength]byte
	if string(addr.AppendTo(buf[:0])) != ip {
		return invalid("ip_address", "must be in canonical form ("+addr.String()+")")
	}
	return nil
}

func validateTimestamp(ts string) error {
	if ts == "" {
		return nil
	}
	if len(ts) > MaxTimestampLength {
		return invalid("timestamp", "must be at most 64 characters")
	}
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		return invalid("timestamp", "must be an RFC 3339 time such as 2026-11-25T10:00:00Z")
	}
	return nil
}

// ValidateIdempotencyKey checks a given Idempotency-Key: 1 to 128 printable
// ASCII characters.
func ValidateIdempotencyKey(k string) error {
	if len(k) < 1 || len(k) > MaxIdempotencyKeyLength {
		return invalid("Idempotency-Key", "must be 1 to 128 printable ASCII characters")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return invalid("Idempotency-Key", "must be 1 to 128 printable ASCII characters")
		}
	}
	return nil
}
