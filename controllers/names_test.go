package controllers

import "testing"

func TestOrdinal(t *testing.T) {
	tests := []struct {
		pod  string
		want int32
		ok   bool
	}{
		{"promo-0", 0, true},
		{"promo-12", 12, true},
		{"promo-", 0, false},
		{"promo-01", 0, false},
		{"promo--1", 0, false},
		{"promo-peers-0", 0, false},
		{"other-1", 0, false},
	}
	for _, tt := range tests {
		got, ok := testNames.ordinal(tt.pod)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ordinal(%q) = %d, %v; want %d, %v", tt.pod, got, ok, tt.want, tt.ok)
		}
	}
	expect(t, "admin URL", testNames.adminURL("promo-1"), "https://promo-1.promo-peers.shop.svc.cluster.local:8081")
}
