package httpapi

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/clientauth"
	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/store"
)

const (
	writerToken  = "writer-token-0123456789"
	readerToken  = "reader-token-0123456789"
	auditorToken = "auditor-token-0123456789"
	unknownToken = "unknown-token-0123456789"
)

// authFile writes an auth file with a writer, a reader and an auditor.
func authFile(t *testing.T, everywhere bool) string {
	t.Helper()
	content := `{"require_auth_everywhere": ` + map[bool]string{true: "true", false: "false"}[everywhere] + `, "tokens": [
		{"name": "checkout", "token": "` + writerToken + `", "roles": ["write"]},
		{"name": "dashboard", "token": "` + readerToken + `", "roles": ["read"]},
		{"name": "audit", "token": "` + auditorToken + `", "roles": ["export"]}]}`
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newAuthAPI serves a single node's client API with the tokens of the file
// at path ("": none) and --client-auth-required when required is set.
func newAuthAPI(t *testing.T, path string, required bool) (*httptest.Server, *store.Store) {
	t.Helper()
	tokens, err := clientauth.Open(path, required, testnode.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	st := testnode.OpenSingle(t)
	srv := httptest.NewServer(New(st, Options{Logger: testnode.Logger(t), Auth: tokens}))
	t.Cleanup(srv.Close)
	return srv, st
}

func TestRoutesAskForTheirRole(t *testing.T) {
	type route struct{ method, path, body string }
	buy := route{"POST", "/buy", validBuy}
	stats := route{"GET", "/stats", ""}
	buys := route{"GET", "/buys", ""}
	type check struct {
		r      route
		token  string
		status int
		code   string
	}
	modes := []struct {
		name     string
		file     func(t *testing.T) string
		required bool // --client-auth-required
		checks   []check
	}{
		{"no auth file", func(*testing.T) string { return "" }, false, []check{
			{buy, "", 201, ""},
			{stats, "", 200, ""},
			{buys, "", 403, "forbidden"},
			{buys, auditorToken, 403, "forbidden"},
		}},
		{"default mode", func(t *testing.T) string { return authFile(t, false) }, false, []check{
			{buy, "", 201, ""},
			{buy, unknownToken, 201, ""},
			{stats, "", 200, ""},
			{buys, "", 401, "unauthorized"},
			{buys, unknownToken, 401, "unauthorized"},
			{buys, writerToken, 403, "forbidden"},
			{buys, readerToken, 403, "forbidden"},
			{buys, auditorToken, 200, ""},
		}},
		{"tokens everywhere", func(t *testing.T) string { return authFile(t, true) }, false, []check{
			{buy, "", 401, "unauthorized"},
			{buy, unknownToken, 401, "unauthorized"},
			{buy, readerToken, 403, "forbidden"},
			{buy, auditorToken, 403, "forbidden"},
			{buy, writerToken, 201, ""},
			{stats, "", 401, "unauthorized"},
			{stats, writerToken, 403, "forbidden"},
			{stats, readerToken, 200, ""},
			{buys, readerToken, 403, "forbidden"},
			{buys, auditorToken, 200, ""},
		}},
		// The flag over a file that does not ask for tokens everywhere.
		{"tokens required by the flag", func(t *testing.T) string { return authFile(t, false) }, true, []check{
			{buy, "", 401, "unauthorized"},
			{buy, unknownToken, 401, "unauthorized"},
			{buy, readerToken, 403, "forbidden"},
			{buy, writerToken, 201, ""},
			{stats, "", 401, "unauthorized"},
			{stats, writerToken, 403, "forbidden"},
			{stats, readerToken, 200, ""},
			{buys, "", 401, "unauthorized"},
			{buys, auditorToken, 200, ""},
		}},
		// The binary refuses this; the package answers as if no token
		// were valid, because none is.
		{"tokens required by the flag and no file", func(*testing.T) string { return "" }, true, []check{
			{buy, "", 401, "unauthorized"},
			{buy, writerToken, 401, "unauthorized"},
			{stats, "", 401, "unauthorized"},
			{stats, readerToken, 401, "unauthorized"},
			{buys, auditorToken, 403, "forbidden"},
		}},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			srv, st := newAuthAPI(t, mode.file(t), mode.required)
			count := func() int64 {
				s, err := st.Stats(t.Context(), ledger.StatsQuery{Window: time.Minute}, store.Stale)
				if err != nil {
					t.Fatalf("count the purchases: %v", err)
				}
				return s.TotalBuys
			}
			for _, c := range mode.checks {
				before := count()
				header := map[string]string{}
				if c.token != "" {
					header["Authorization"] = "Bearer " + c.token
				}
				a := call(t, c.r.method, srv.URL+c.r.path, "application/json", c.r.body, header)
				what := c.r.method + " " + c.r.path + " with token " + strings.SplitN(c.token+"-", "-", 2)[0]
				if c.code != "" {
					e, _ := a.body["error"].(map[string]any)
					if a.status != c.status || e["code"] != c.code || e["message"] == "" {
						t.Errorf("%s: %d %v, want %d %s", what, a.status, a.body, c.status, c.code)
					}
					if c.status == 401 && a.header.Get("WWW-Authenticate") == "" {
						t.Errorf("%s: 401 without WWW-Authenticate", what)
					}
					if after := count(); after != before {
						t.Errorf("%s was refused but the count went from %v to %v", what, before, after)
					}
				} else if a.status != c.status {
					t.Errorf("%s: %d %v, want %d", what, a.status, a.body, c.status)
				} else if c.r == buy && count() != before+1 {
					t.Errorf("%s answered %d but the count went from %v to %v", what, a.status, before, count())
				}
			}
			for _, path := range []string{"/health", "/ready"} {
				if a := call(t, "GET", srv.URL+path, "", "", nil); a.status != 200 {
					t.Errorf("%s without a token: %d", path, a.status)
				}
			}
			resp, err := http.Get(srv.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("/metrics without a token: %d", resp.StatusCode)
			}
		})
	}
}

func TestWithoutAnAuthFileTheRefusalNamesTheFlag(t *testing.T) {
	srv, _ := newAuthAPI(t, "", false)
	a := call(t, "GET", srv.URL+"/buys", "", "", nil)
	e, _ := a.body["error"].(map[string]any)
	if msg, _ := e["message"].(string); !strings.Contains(msg, "--client-auth-file") {
		t.Fatalf("GET /buys without an auth file: %v, want a message naming --client-auth-file", a.body)
	}
}
