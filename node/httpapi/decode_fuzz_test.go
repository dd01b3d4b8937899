package httpapi

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeBuy checks that the decoder never panics, and that whatever it
// accepts obeys every rule of the spec and survives a round trip.
func FuzzDecodeBuy(f *testing.F) {
	for _, seed := range []string{
		validBuy,
		`{"user_id":9223372036854775807,"promotion_id":1,"product_id":1,"product_amount":99999999.99}`,
		`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":"0.5","ip_address":"::1","timestamp":"2026-01-01T00:00:00Z"}`,
		`{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":"1.999"}`,
		`{"user_id":-1}`, `[]`, `{"a":1}`, `{"user_id":1e2,"product_amount":"-0"}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, aerr := decodeBuy(body, "192.0.2.1", "")
		if aerr != nil {
			if aerr.status != 400 || aerr.code == "" || aerr.message == "" {
				t.Fatalf("bad error for %q: %+v", body, aerr)
			}
			return
		}
		if p.UserID < 1 || p.PromotionID < 1 || p.ProductID < 1 {
			t.Fatalf("accepted ids below 1: %+v from %q", p, body)
		}
		if p.AmountCents < 0 || p.AmountCents > maxAmountCents {
			t.Fatalf("accepted amount %d from %q", p.AmountCents, body)
		}
		if _, err := netip.ParseAddr(p.IP); err != nil {
			t.Fatalf("accepted ip %q from %q", p.IP, body)
		}
		if p.ClientTimestamp != "" {
			if _, err := time.Parse(time.RFC3339Nano, p.ClientTimestamp); err != nil {
				t.Fatalf("accepted timestamp %q from %q", p.ClientTimestamp, body)
			}
		}
		// Re-encode what was accepted; it must decode to the same purchase.
		again := map[string]any{
			"user_id": p.UserID, "promotion_id": p.PromotionID, "product_id": p.ProductID,
			"product_amount": formatCents(p.AmountCents), "ip_address": p.IP,
		}
		if p.ClientTimestamp != "" {
			again["timestamp"] = p.ClientTimestamp
		}
		raw, _ := json.Marshal(again)
		q, aerr := decodeBuy(raw, "192.0.2.1", "")
		if aerr != nil {
			t.Fatalf("re-encoded %s rejected: %v", raw, aerr)
		}
		p.Fingerprint, q.Fingerprint = 0, 0
		if p != q {
			t.Fatalf("round trip changed the purchase: %+v -> %+v", p, q)
		}
	})
}

func TestParseCentsIsExact(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "0.1": 10, "19.99": 1999, "007.5": 750, "99999999.99": 9999999999, "-0": 0} {
		got, ok := parseCents(in)
		if !ok || got != want {
			t.Errorf("parseCents(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", ".5", "5.", "1.234", "1e2", "abc", "1,5", " 1", "0x10", strings.Repeat("9", 13)} {
		if _, ok := parseCents(in); ok {
			t.Errorf("parseCents(%q) accepted", in)
		}
	}
	for cents, want := range map[int64]string{0: "0.00", 5: "0.05", 1999: "19.99", -150: "-1.50"} {
		if got := formatCents(cents); got != want {
			t.Errorf("formatCents(%d) = %s, want %s", cents, got, want)
		}
	}
}
