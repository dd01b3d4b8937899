package main

import (
	"errors"
	"testing"
	"time"
)

func TestDecodePurchaseKeepsTheFieldsExactly(t *testing.T) {
	body := `{"user_id":9223372036854775807,"promotion_id":7,"product_id":42,"product_amount":"19.99",` +
		`"ip_address":"2001:db8::1","timestamp":"2026-11-25T10:00:00.5Z"}`
	p, err := decodePurchase([]byte(body), "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	want := purchase{
		UserID: 9223372036854775807, PromotionID: 7, ProductID: 42, AmountCents: 1999, IP: "2001:db8::1",
		ClientTimestamp: "2026-11-25T10:00:00.5Z", ClientTime: time.Date(2026, 11, 25, 10, 0, 0, 5e8, time.UTC),
	}
	if !p.ClientTime.Equal(want.ClientTime) {
		t.Errorf("client time = %v, want %v", p.ClientTime, want.ClientTime)
	}
	p.ClientTime, want.ClientTime = time.Time{}, time.Time{}
	if p != want {
		t.Errorf("decoded %+v, want %+v", p, want)
	}
}

func TestDecodePurchaseUsesTheRemoteAddressWhenTheBodyNamesNone(t *testing.T) {
	p, err := decodePurchase([]byte(`{"user_id":1,"promotion_id":1,"product_id":1,"product_amount":0}`), "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if p.IP != "10.0.0.1" || p.ClientTimestamp != "" {
		t.Errorf("ip %q, client timestamp %q; want the remote address and none", p.IP, p.ClientTimestamp)
	}
}

func TestDecodePurchaseRejectsBrokenRules(t *testing.T) {
	for _, tc := range []struct {
		name, body, field string
	}{
		{"missing user", `{"promotion_id":1,"product_id":1,"product_amount":1}`, "user_id"},
		{"zero promotion", `{"user_id":1,"promotion_id":0,"product_id":1,"product_amount":1}`, "promotion_id"},
		{"negative product", `{"user_id":1,"promotion_id":1,"product_id":-3,"product_amount":1}`, "product_id"},
		{"fractional id", `{"user_id":1.5,"promotion_id":1,"product_id":1,"product_amount":1}`, ""},
		{"id past int64", `{"user_id":9223372036854775808,"promotion_id":1,"product_id":1,"product_amount":1}`, ""},
		{"missing amount", `{"user_id":1,"promotion_id":1,"product_id":1}`, "product_amount"},
		{"three decimals", `{"user_id":1,"promotion_id":1,"product_id":1,"product_amount":"1.999"}`, "product_amount"},
		{"amount too large", `{"user_id":1,"promotion_id":1,"product_id":1,"product_amount":100000000}`, "product_amount"},
		{"negative amount", `{"user_id":1,"promotion_id":1,"product_id":1,"product_amount":-1}`, "product_amount"},
		{"exponent amount", `{"user_id":1,"promotion_id":1,"product_id":1,"product_amount":1e2}`, "product_amount"},
		{"bad ip", `{"user_id":1,"promotion_id":1,"product_id":1,"product_amount":1,"ip_address":"300.1.1.1"}`, "ip_address"},
		{"bad timestamp", `{"user_id":1,"promotion_id":1,"product_id":1,"product_amount":1,"timestamp":"yesterday"}`, "timestamp"},
		{"unknown field", `{"user_id":1,"promotion_id":1,"product_id":1,"product_amount":1,"coupon":"x"}`, ""},
		{"two objects", `{"user_id":1,"promotion_id":1,"product_id":1,"product_amount":1}{}`, ""},
		{"not json", `user_id=1`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodePurchase([]byte(tc.body), "10.0.0.1")
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a *fieldError", err)
			}
			if fe.field != tc.field {
				t.Errorf("field %q, want %q (%s)", fe.field, tc.field, fe.message)
			}
		})
	}
}

func TestAmountCentsIsExact(t *testing.T) {
	for in, want := range map[string]int64{
		`"19.99"`: 1999, `19.9`: 1990, `"0"`: 0, `7`: 700, `"99999999.99"`: 99_999_999_99, `0.01`: 1,
	} {
		got, err := amountCents([]byte(in))
		if err != nil || got != want {
			t.Errorf("amountCents(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestRecordHasEveryField(t *testing.T) {
	p := purchase{UserID: 1, PromotionID: 7, ProductID: 42, AmountCents: 1905, IP: "10.0.0.1", ClientTimestamp: "2026-01-01T00:00:00Z"}
	if got, want := p.record(), "1|7|42|19.05|10.0.0.1|2026-01-01T00:00:00Z"; got != want {
		t.Errorf("record() = %q, want %q", got, want)
	}
}

func TestSyntheticPurchasesStayInTheLoadgenRanges(t *testing.T) {
	for _, i := range []int64{0, 1, 9_999, 10_000, 99_899, 99_900, 1_000_000} {
		p := syntheticPurchase(i)
		if p.UserID < 1 || p.UserID > 10_000 || p.PromotionID < 1 || p.PromotionID > 50 ||
			p.ProductID < 1 || p.ProductID > 500 || p.AmountCents < 100 || p.AmountCents > 99_999 {
			t.Errorf("syntheticPurchase(%d) = %+v, outside the loadgen's ranges", i, p)
		}
	}
}

func TestChunkSizesCoverExactlyN(t *testing.T) {
	for _, tc := range []struct {
		n, size int64
		want    []int64
	}{
		{10, 4, []int64{4, 4, 2}},
		{8, 4, []int64{4, 4}},
		{3, 128, []int64{3}},
		{0, 4, nil},
	} {
		got := chunkSizes(tc.n, tc.size)
		if len(got) != len(tc.want) {
			t.Fatalf("chunkSizes(%d, %d) = %v, want %v", tc.n, tc.size, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("chunkSizes(%d, %d) = %v, want %v", tc.n, tc.size, got, tc.want)
			}
		}
	}
}
