package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/buytracker/buytracker/node/internal/testnode"
)

func TestProbesAnswerWithoutTheTokenAndNothingElseDoes(t *testing.T) {
	st := testnode.OpenSingle(t)
	api, err := New(st, "secret", testnode.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	srv := httptest.NewServer(api)
	defer srv.Close()
	cases := []struct {
		method, path, token string
		status              int
	}{
		{"GET", "/health", "", http.StatusOK},
		{"GET", "/ready", "", http.StatusOK},
		{"GET", "/health", "wrong", http.StatusOK},
		{"GET", "/status", "", http.StatusUnauthorized},
		{"GET", "/cluster", "wrong", http.StatusUnauthorized},
		{"POST", "/health", "", http.StatusUnauthorized},
		{"GET", "/status", "secret", http.StatusOK},
	}
	for _, tc := range cases {
		req, _ := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		derr := json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || derr != nil {
			t.Errorf("%s %s with token %q: %d (%v), want %d with a JSON body", tc.method, tc.path, tc.token, resp.StatusCode, derr, tc.status)
		}
		if tc.path == "/ready" && body["ready"] != true {
			t.Errorf("/ready on the admin listener: %v", body)
		}
	}
}
