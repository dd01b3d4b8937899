package httpapi

import "testing"

func BenchmarkDecodeBuy(b *testing.B) {
	body := []byte(`{"user_id":123,"promotion_id":7,"product_id":42,"product_amount":"19.99"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeBuy(body, "127.0.0.1", ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBuyStrict(b *testing.B) {
	body := []byte(`{"user_id":123,"promotion_id":7,"product_id":42,"product_amount":"19.99"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeBuyStrict(body, "127.0.0.1", ""); err != nil {
			b.Fatal(err)
		}
	}
}
