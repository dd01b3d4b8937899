package clustertest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// With --client-auth-required a purchase needs a token with the write role,
// on the leader and on a follower alike; refused ones are not recorded.
func TestARequiredTokenGuardsBuyOnEveryMember(t *testing.T) {
	c := Start(t, 3, "--client-auth-required")
	leader := c.WaitLeader(30 * time.Second)
	for i, n := range []*Node{leader, c.Followers(leader)[0]} {
		if status, hdr, body := buyWithToken(t, c, n.HTTPURL, "", 100+i); status != http.StatusUnauthorized ||
			errorCode(body) != "unauthorized" || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("POST /buy to %s without a token: %d %v (WWW-Authenticate %q), want 401 unauthorized with WWW-Authenticate",
				n.ID, status, body, hdr.Get("WWW-Authenticate"))
		}
		if status, _, body := buyWithToken(t, c, n.HTTPURL, ExportToken, 200+i); status != http.StatusForbidden || errorCode(body) != "forbidden" {
			t.Errorf("POST /buy to %s with the export token: %d %v, want 403 forbidden", n.ID, status, body)
		}
		if status, body := get(t, c, n.HTTPURL+"/stats", ""); status != http.StatusUnauthorized {
			t.Errorf("GET /stats on %s without a token: %d %v, want 401", n.ID, status, body)
		}
	}
	if got, err := c.AllPurchases(leader.HTTPURL, "linearizable"); err != nil || len(got) != 0 {
		t.Fatalf("after refused purchases the ledger holds %d (%v), want none", len(got), err)
	}

	follower := c.Followers(leader)[0]
	if status, _, body := buyWithToken(t, c, follower.HTTPURL, WriteToken, 7); status != http.StatusCreated {
		t.Fatalf("POST /buy to %s with the write token: %d %v, want 201", follower.ID, status, body)
	}
	got, err := c.AllPurchases(leader.HTTPURL, "linearizable")
	if err != nil || len(got) != 1 || got[0].UserID != 7 {
		t.Fatalf("after one accepted purchase the ledger holds %+v (%v), want user 7's alone", got, err)
	}
}

// --client-auth-required (here from the environment) without an auth file
// would leave nobody able to write: the node refuses to start and says why.
func TestTheRequiredTokenFlagWithoutAnAuthFileStopsTheNode(t *testing.T) {
	c := StartSome(t, 1)
	n := c.Nodes()[0]
	c.ExtraFlags = []string{"--client-auth-file="}
	n.Env = []string{"BUYTRACKER_CLIENT_AUTH_REQUIRED=true"}
	code, log := c.StartOnce(n, 30*time.Second)
	if code == 0 || !strings.Contains(log, "--client-auth-required needs --client-auth-file") {
		t.Fatalf("exit %d; want a refusal naming both flags; log:\n%s", code, tail(log, 10))
	}
}

// buyWithToken sends one purchase with an optional bearer token and returns the
// status, the headers and the decoded JSON body.
func buyWithToken(t *testing.T, c *Cluster, baseURL, token string, userID int) (int, http.Header, map[string]any) {
	t.Helper()
	body := `{"user_id":` + strconv.Itoa(userID) + `,"promotion_id":1,"product_id":2,"product_amount":"1.25"}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, baseURL+"/buy", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s/buy: %v", baseURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s/buy: read the answer: %v", baseURL, err)
	}
	var decoded map[string]any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatalf("POST %s/buy: %d with a body that is not JSON: %q", baseURL, resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, decoded
}
