package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/store"
)

// A 64-character timestamp is the longest accepted, by both decoders.
func TestLongestTimestampIsAccepted(t *testing.T) {
	body := `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"timestamp":"2026-11-25T10:00:00.1111111111111111111111111111111111111111111Z"}`
	if _, ok := decodeBuyFast([]byte(body), "192.0.2.1", ""); !ok {
		t.Fatal("the fast path refused a 64-character timestamp")
	}
	if _, aerr := decodeBuyStrict([]byte(body), "192.0.2.1", ""); aerr != nil {
		t.Fatalf("the strict decoder refused a 64-character timestamp: %v", aerr)
	}
}

func TestBuysAfterTheLastPurchaseAreEmpty(t *testing.T) {
	srv := newTestAPI(t)
	for range 2 {
		if a := call(t, http.MethodPost, srv.URL+"/buy", "application/json", validBuy, nil); a.status != http.StatusCreated {
			t.Fatalf("valid buy: %d %v", a.status, a.body)
		}
	}
	for _, after := range []string{"2", "3", "18446744073709551614", "18446744073709551615"} {
		a := call(t, http.MethodGet, srv.URL+"/buys?after="+after, "", "", exporter)
		list, ok := a.body["purchases"].([]any)
		if a.status != http.StatusOK || !ok || len(list) != 0 {
			t.Fatalf("GET /buys?after=%s: %d %v, want an empty page", after, a.status, a.body)
		}
		if _, ok := a.body["next_after"]; !ok {
			t.Fatalf("GET /buys?after=%s: no next_after in %v", after, a.body)
		}
	}
}

// The leader refuses a forwarded purchase the rules refuse; a follower
// answers that 400 with the field named.
func TestInvalidPurchaseFromTheStoreAnswers400(t *testing.T) {
	err := fmt.Errorf("%w: forwarded", &ledger.InvalidPurchaseError{Field: "timestamp", Reason: "must be at most 64 characters"})
	aerr, forwardable := storeError(err)
	if forwardable || aerr.status != http.StatusBadRequest || aerr.field != "timestamp" || aerr.code != "invalid_timestamp" {
		t.Fatalf("storeError(%v) = %+v, forwardable %v; want 400 invalid_timestamp on field timestamp", err, aerr, forwardable)
	}
	// Without the field (an outcome code carries none) it is still a 400.
	aerr, _ = storeError(fmt.Errorf("leader refused it: %w", ledger.ErrInvalidPurchase))
	if aerr.status != http.StatusBadRequest || aerr.code != "invalid_purchase" {
		t.Fatalf("storeError(ErrInvalidPurchase) = %+v, want 400 invalid_purchase", aerr)
	}
	if errors.Is(err, store.ErrNotLeader) {
		t.Fatal("an invalid purchase must not be mistaken for a redirect")
	}
}
