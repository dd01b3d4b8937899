package clustertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// postBuy sends a raw POST /buy body and returns the status and the error
// object's field, if any.
func postBuy(t *testing.T, c *Cluster, baseURL, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, baseURL+"/buy", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s/buy: %v", baseURL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var answer struct {
		Error struct {
			Field string `json:"field"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &answer)
	return resp.StatusCode, answer.Error.Field
}

// Scenario 4 of issue 10: an unbounded timestamp and case-variant keys were
// recorded, and /buys?after=<max uint64> answered the first page.
func TestUnboundedAndAmbiguousInputIsRefusedEverywhere(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	if a, err := c.Buy(t.Context(), leader.HTTPURL, "", 1); err != nil || a.Status != 201 {
		t.Fatalf("first purchase: %+v %v", a, err)
	}
	bad := []struct{ name, body, field string }{
		{"a 60 KB timestamp", `{"user_id":7,"promotion_id":1,"product_id":2,"product_amount":"1.25","timestamp":"2026-11-25T10:00:00.` +
			strings.Repeat("1", 60_000) + `Z"}`, "timestamp"},
		{"a case-variant key", `{"user_id":1,"User_Id":5,"promotion_id":1,"product_id":2,"product_amount":"1.25"}`, "User_Id"},
		{"a duplicate key", `{"user_id":1,"user_id":5,"promotion_id":1,"product_id":2,"product_amount":"1.25"}`, "user_id"},
	}
	for _, n := range c.Nodes() { // the leader decides, followers forward: each must refuse
		for _, b := range bad {
			if status, field := postBuy(t, c, n.HTTPURL, b.body); status != 400 || field != b.field {
				t.Errorf("%s through %s: %d with field %q, want 400 naming %q", b.name, n.ID, status, field, b.field)
			}
		}
	}
	// Ids are dense: the next purchase's total proves nothing was recorded
	// in between, and every member must agree once it has applied it.
	last, err := c.Buy(t.Context(), leader.HTTPURL, "", 2)
	if err != nil || last.Status != 201 {
		t.Fatalf("last purchase: %+v %v", last, err)
	}
	if last.TotalBuys != 2 {
		t.Fatalf("the purchase after the refused ones counts %d, want 2", last.TotalBuys)
	}
	for _, n := range c.Nodes() {
		c.Eventually(10*time.Second, n.ID+" applies the last purchase", func() error {
			s, _, err := c.Stats(n.HTTPURL, "stale")
			if err != nil {
				return err
			}
			if s.Index < last.Index {
				return fmt.Errorf("applied index %d, want %d", s.Index, last.Index)
			}
			if s.TotalBuys != 2 {
				t.Fatalf("%s counts %d purchases, want 2", n.ID, s.TotalBuys)
			}
			return nil
		})
		purchases, err := c.AllPurchases(n.HTTPURL, "stale")
		if err != nil {
			t.Fatal(err)
		}
		if len(purchases) != 2 || purchases[0].UserID != 1 || purchases[1].UserID != 2 {
			t.Fatalf("%s holds %+v, want users 1 and 2", n.ID, purchases)
		}
		var page struct {
			Purchases []Purchase `json:"purchases"`
		}
		if status, err := c.GetJSON(n.HTTPURL+"/buys?after=18446744073709551615", &page); err != nil || status != 200 || len(page.Purchases) != 0 {
			t.Fatalf("%s: GET /buys?after=<max>: %d, %d purchases, %v; want an empty page", n.ID, status, len(page.Purchases), err)
		}
	}
}
