package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/buytracker/buytracker/node/clientauth"
	"github.com/buytracker/buytracker/node/internal/testnode"
)

func newTestAPI(t *testing.T) *httptest.Server {
	t.Helper()
	st := testnode.OpenSingle(t)
	tokens, err := clientauth.Open(authFile(t, false), false, testnode.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(st, Options{Logger: testnode.Logger(t), Auth: tokens}))
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, method, url, contentType, body string, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s answered %d with a body that is not a JSON object: %q", method, url, resp.StatusCode, raw)
	}
	return a
}

func totalBuys(t *testing.T, base string) float64 {
	t.Helper()
	a := call(t, http.MethodGet, base+"/stats", "", "", nil)
	if a.status != http.StatusOK {
		t.Fatalf("GET /stats: %d %v", a.status, a.body)
	}
	return a.body["total_buys"].(float64)
}

// exporter carries a token with the export role that GET /buys needs.
var exporter = map[string]string{"Authorization": "Bearer " + auditorToken}

const validBuy = `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":"19.99"}`

func TestBadBuysAreRejectedAndChangeNothing(t *testing.T) {
	srv := newTestAPI(t)
	if a := call(t, http.MethodPost, srv.URL+"/buy", "application/json", validBuy, nil); a.status != http.StatusCreated {
		t.Fatalf("valid buy: %d %v", a.status, a.body)
	}
	const jsonCT = "application/json"
	cases := []struct {
		name, contentType, body string
		header                  map[string]string
		status                  int
		code, field             string
	}{
		{"missing user_id", jsonCT, `{"promotion_id":2,"product_id":3,"product_amount":1}`, nil, 400, "missing_field", "user_id"},
		{"null product_id", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":null,"product_amount":1}`, nil, 400, "missing_field", "product_id"},
		{"zero user_id", jsonCT, `{"user_id":0,"promotion_id":2,"product_id":3,"product_amount":1}`, nil, 400, "invalid_id", "user_id"},
		{"negative promotion_id", jsonCT, `{"user_id":1,"promotion_id":-5,"product_id":3,"product_amount":1}`, nil, 400, "invalid_id", "promotion_id"},
		{"overflowing product_id", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":9223372036854775808,"product_amount":1}`, nil, 400, "invalid_id", "product_id"},
		{"fractional user_id", jsonCT, `{"user_id":1.5,"promotion_id":2,"product_id":3,"product_amount":1}`, nil, 400, "invalid_id", "user_id"},
		{"exponent user_id", jsonCT, `{"user_id":1e3,"promotion_id":2,"product_id":3,"product_amount":1}`, nil, 400, "invalid_id", "user_id"},
		{"string user_id", jsonCT, `{"user_id":"1","promotion_id":2,"product_id":3,"product_amount":1}`, nil, 400, "invalid_id", "user_id"},
		{"amount with three decimals", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":"1.999"}`, nil, 400, "invalid_amount", "product_amount"},
		{"numeric amount with three decimals", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1.999}`, nil, 400, "invalid_amount", "product_amount"},
		{"negative amount", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":-1}`, nil, 400, "amount_out_of_range", "product_amount"},
		{"amount too large", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":"100000000.00"}`, nil, 400, "amount_out_of_range", "product_amount"},
		{"amount is a word", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":"ten"}`, nil, 400, "invalid_amount", "product_amount"},
		{"amount in exponent form", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1e2}`, nil, 400, "invalid_amount", "product_amount"},
		{"missing amount", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3}`, nil, 400, "missing_field", "product_amount"},
		{"bad ip", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"ip_address":"300.1.1.1"}`, nil, 400, "invalid_ip_address", "ip_address"},
		{"ip not a string", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"ip_address":7}`, nil, 400, "invalid_ip_address", "ip_address"},
		{"bad timestamp", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"timestamp":"yesterday"}`, nil, 400, "invalid_timestamp", "timestamp"},
		{"timestamp of 60 KB", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"timestamp":"2026-11-25T10:00:00.` + strings.Repeat("1", 60_000) + `Z"}`, nil, 400, "invalid_timestamp", "timestamp"},
		{"timestamp of 65 characters", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"timestamp":"2026-11-25T10:00:00.` + strings.Repeat("1", 44) + `Z"}`, nil, 400, "invalid_timestamp", "timestamp"},
		{"ip of 46 characters", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"ip_address":"0000:0000:0000:0000:0000:ffff:255.255.255.255%"}`, nil, 400, "invalid_ip_address", "ip_address"},
		{"case-variant key", jsonCT, `{"user_id":1,"User_Id":5,"promotion_id":2,"product_id":3,"product_amount":1}`, nil, 400, "unknown_field", "User_Id"},
		{"upper-case key", jsonCT, `{"USER_ID":1,"promotion_id":2,"product_id":3,"product_amount":1}`, nil, 400, "unknown_field", "USER_ID"},
		{"duplicate key", jsonCT, `{"user_id":1,"user_id":2,"promotion_id":2,"product_id":3,"product_amount":1}`, nil, 400, "duplicate_field", "user_id"},
		{"duplicate optional key", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"timestamp":null,"timestamp":"2026-11-25T10:00:00Z"}`, nil, 400, "duplicate_field", "timestamp"},
		{"unknown field", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"coupon":"x"}`, nil, 400, "unknown_field", "coupon"},
		{"trailing data", jsonCT, validBuy + `{"user_id":1}`, nil, 400, "invalid_json", ""},
		{"trailing garbage", jsonCT, validBuy + ` x`, nil, 400, "invalid_json", ""},
		{"not an object", jsonCT, `[1,2,3]`, nil, 400, "invalid_json", ""},
		{"broken json", jsonCT, `{"user_id":1,`, nil, 400, "invalid_json", ""},
		{"empty body", jsonCT, ``, nil, 400, "invalid_json", ""},
		{"wrong content type", "text/plain", validBuy, nil, 415, "unsupported_media_type", ""},
		{"no content type", "", validBuy, nil, 415, "unsupported_media_type", ""},
		{"body over 64 KiB", jsonCT, `{"user_id":1,"promotion_id":2,"product_id":3,"product_amount":1,"ip_address":"` + strings.Repeat("1", 70000) + `"}`, nil, 413, "body_too_large", ""},
		{"empty idempotency key", jsonCT, validBuy, map[string]string{"Idempotency-Key": ""}, 400, "invalid_idempotency_key", "Idempotency-Key"},
		{"idempotency key too long", jsonCT, validBuy, map[string]string{"Idempotency-Key": strings.Repeat("k", 129)}, 400, "invalid_idempotency_key", "Idempotency-Key"},
		{"idempotency key with a tab", jsonCT, validBuy, map[string]string{"Idempotency-Key": "k\tk"}, 400, "invalid_idempotency_key", "Idempotency-Key"},
		{"idempotency key not ASCII", jsonCT, validBuy, map[string]string{"Idempotency-Key": "ключ"}, 400, "invalid_idempotency_key", "Idempotency-Key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := totalBuys(t, srv.URL)
			a := call(t, http.MethodPost, srv.URL+"/buy", tc.contentType, tc.body, tc.header)
			checkError(t, a, tc.status, tc.code, tc.field)
			if after := totalBuys(t, srv.URL); after != before {
				t.Fatalf("a rejected buy changed the count from %v to %v", before, after)
			}
		})
	}
}

func checkError(t *testing.T, a answer, status int, code, field string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d (body %v)", a.status, status, a.body)
	}
	e, ok := a.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %v", a.body)
	}
	if e["code"] != code {
		t.Fatalf("error code %v, want %s (%v)", e["code"], code, e)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("error without a message: %v", e)
	}
	if got, _ := e["field"].(string); got != field {
		t.Fatalf("error field %q, want %q", got, field)
	}
}

func TestBadStatsQueriesAreRejected(t *testing.T) {
	srv := newTestAPI(t)
	cases := []struct{ query, code, field string }{
		{"timeframe_hours=0", "invalid_timeframe", "timeframe_hours"},
		{"timeframe_hours=-1", "invalid_timeframe", "timeframe_hours"},
		{"timeframe_hours=87600.5", "invalid_timeframe", "timeframe_hours"},
		{"timeframe_hours=abc", "invalid_timeframe", "timeframe_hours"},
		{"timeframe_hours=NaN", "invalid_timeframe", "timeframe_hours"},
		{"timeframe_hours=1e2", "invalid_timeframe", "timeframe_hours"},
		{"timeframe_hours=", "invalid_timeframe", "timeframe_hours"},
		{"promotion_id=0", "invalid_id", "promotion_id"},
		{"product_id=x", "invalid_id", "product_id"},
		{"product_id=9223372036854775808", "invalid_id", "product_id"},
		{"consistency=eventual", "invalid_consistency", "consistency"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			checkError(t, call(t, http.MethodGet, srv.URL+"/stats?"+tc.query, "", "", nil), 400, tc.code, tc.field)
		})
	}
	for _, q := range []string{"after=-1", "limit=0", "limit=1001", "limit=x", "consistency=x"} {
		t.Run("buys "+q, func(t *testing.T) {
			if a := call(t, http.MethodGet, srv.URL+"/buys?"+q, "", "", exporter); a.status != 400 {
				t.Fatalf("GET /buys?%s: %d, want 400", q, a.status)
			}
		})
	}
}

func TestBuyAndStatsAnswerTheSpecShape(t *testing.T) {
	srv := newTestAPI(t)
	first := call(t, http.MethodPost, srv.URL+"/buy", "application/json; charset=utf-8",
		`{"user_id":9,"promotion_id":2,"product_id":3,"product_amount":10.5,"ip_address":"2001:db8::1","timestamp":"2026-11-25T10:00:00+01:00"}`,
		map[string]string{"Idempotency-Key": "order-1"})
	if first.status != http.StatusCreated || first.body["success"] != true || first.body["purchase_id"] != 1.0 || first.body["total_buys"] != 1.0 {
		t.Fatalf("first buy: %d %v", first.status, first.body)
	}
	retry := call(t, http.MethodPost, srv.URL+"/buy", "application/json",
		`{"user_id":9,"promotion_id":2,"product_id":3,"product_amount":"10.50","ip_address":"2001:db8::1","timestamp":"2026-11-25T10:00:00+01:00"}`,
		map[string]string{"Idempotency-Key": "order-1"})
	if retry.status != http.StatusCreated || retry.header.Get("Idempotent-Replayed") != "true" || retry.body["recorded_at"] != first.body["recorded_at"] {
		t.Fatalf("retry: %d %v, want the first answer replayed", retry.status, retry.body)
	}
	reused := call(t, http.MethodPost, srv.URL+"/buy", "application/json", validBuy, map[string]string{"Idempotency-Key": "order-1"})
	checkError(t, reused, http.StatusUnprocessableEntity, "idempotency_key_reused", "")
	if a := call(t, http.MethodPost, srv.URL+"/buy", "application/json", validBuy, nil); a.body["purchase_id"] != 2.0 {
		t.Fatalf("second purchase: %v", a.body)
	}
	stats := call(t, http.MethodGet, srv.URL+"/stats?timeframe_hours=0.5&promotion_id=2", "", "", nil)
	want := map[string]any{"total_buys": 2.0, "n_recent_buys": 2.0, "timeframe_hours": 0.5, "total_amount": "30.49",
		"recent_amount": "30.49", "consistency": "linearizable", "served_by": "solo", "leader": "solo"}
	for k, v := range want {
		if stats.body[k] != v {
			t.Errorf("stats %s = %v, want %v", k, stats.body[k], v)
		}
	}
	if product := call(t, http.MethodGet, srv.URL+"/stats?product_id=3&promotion_id=9&consistency=stale", "", "", nil); product.body["total_buys"] != 0.0 {
		t.Errorf("filtered stats: %v", product.body)
	}
	buys := call(t, http.MethodGet, srv.URL+"/buys?after=0&limit=10", "", "", exporter)
	list, _ := buys.body["purchases"].([]any)
	if len(list) != 2 {
		t.Fatalf("GET /buys: %v", buys.body)
	}
	p := list[0].(map[string]any)
	if p["ip_address"] != "2001:db8::1" || p["product_amount"] != "10.50" || p["client_timestamp"] != "2026-11-25T10:00:00+01:00" || p["idempotency_key"] != "order-1" {
		t.Fatalf("first record: %v", p)
	}
	if q := list[1].(map[string]any); q["ip_address"] != "127.0.0.1" {
		t.Fatalf("a buy without ip_address keeps the remote address: %v", q)
	}
	for _, path := range []string{"/health", "/ready"} {
		if a := call(t, http.MethodGet, srv.URL+path, "", "", nil); a.status != http.StatusOK {
			t.Errorf("%s: %d %v", path, a.status, a.body)
		}
	}
}

func TestMetricsAreServed(t *testing.T) {
	srv := newTestAPI(t)
	call(t, http.MethodPost, srv.URL+"/buy", "application/json", validBuy, nil)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`buytracker_http_requests_total{code="201",route="POST /buy"} 1`, "buytracker_http_request_duration_seconds_bucket"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
