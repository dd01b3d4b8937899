package main

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"regexp"
	"testing"
)

func TestMixPicksEachKindForItsShareOfEveryCycle(t *testing.T) {
	m, err := parseMix("buy=60,stats=30,health=10")
	if err != nil {
		t.Fatal(err)
	}
	// Over any full cycle of pick's argument the shares are exact.
	counts := map[requestKind]int{}
	for v := range uint64(3 * m.total) {
		counts[m.pick(1000*uint64(m.total)+v)]++
	}
	want := map[requestKind]int{kindBuy: 180, kindStats: 90, kindHealth: 30}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s picked %d times in 3 cycles, want %d", k, counts[k], n)
		}
	}
}

func TestRandomPicksMatchTheProportions(t *testing.T) {
	m, err := parseMix("buy=60,stats=30,health=10")
	if err != nil {
		t.Fatal(err)
	}
	const draws = 200_000
	r := rand.New(rand.NewPCG(7, 8))
	counts := map[requestKind]int{}
	for range draws {
		counts[m.pick(r.Uint64())]++
	}
	for k, share := range map[requestKind]float64{kindBuy: 0.60, kindStats: 0.30, kindHealth: 0.10} {
		got := float64(counts[k]) / draws
		if math.Abs(got-share) > 0.005 {
			t.Errorf("%s share = %.4f, want %.2f ± 0.005", k, got, share)
		}
	}
}

func TestZeroWeightKindIsNeverPicked(t *testing.T) {
	m, err := parseMix("buy=1,stats=0,health=3")
	if err != nil {
		t.Fatal(err)
	}
	for v := range uint64(100) {
		if m.pick(v) == kindStats {
			t.Fatalf("pick(%d) = stats, whose weight is 0", v)
		}
	}
	if m.String() != "buy=1,health=3" {
		t.Errorf("String() = %q, want %q", m.String(), "buy=1,health=3")
	}
}

func TestParseMixRejectsBadSpecs(t *testing.T) {
	for _, spec := range []string{
		"", "buy", "buy=x", "buy=-1", "buy=0", "buys=10", "buy=1,buy=2", "buy=1,,stats=1",
	} {
		if _, err := parseMix(spec); err == nil {
			t.Errorf("parseMix(%q) succeeded, want an error", spec)
		}
	}
}

func TestBuyBodiesAreValidPurchases(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	amount := regexp.MustCompile(`^[0-9]+\.[0-9]{2}$`)
	for range 1000 {
		body := appendBuyBody(nil, r)
		var p struct {
			UserID        int64  `json:"user_id"`
			PromotionID   int64  `json:"promotion_id"`
			ProductID     int64  `json:"product_id"`
			ProductAmount string `json:"product_amount"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		if p.UserID < 1 || p.UserID > buyUsers || p.PromotionID < 1 || p.PromotionID > buyPromotions ||
			p.ProductID < 1 || p.ProductID > buyProducts || !amount.MatchString(p.ProductAmount) {
			t.Fatalf("body %s is outside the documented ranges", body)
		}
	}
}
