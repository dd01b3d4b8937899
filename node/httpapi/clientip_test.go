package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/buytracker/buytracker/node/internal/testnode"
	"github.com/buytracker/buytracker/node/store"
)

func TestClientIPTrustsForwardedForOnlyFromTrustedProxies(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8, 192.168.1.7")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, remote, xff string
		trusted           []netip.Prefix
		want              string
	}{
		{"no proxies configured", "203.0.113.9:5000", "198.51.100.1", nil, "203.0.113.9"},
		{"untrusted peer", "203.0.113.9:5000", "198.51.100.1", proxies, "203.0.113.9"},
		{"trusted proxy", "10.1.2.3:5000", "198.51.100.1", proxies, "198.51.100.1"},
		{"trusted single address", "192.168.1.7:5000", "198.51.100.1", proxies, "198.51.100.1"},
		{"the rightmost untrusted entry wins", "10.1.2.3:5000", "6.6.6.6, 198.51.100.1, 10.9.9.9", proxies, "198.51.100.1"},
		{"every entry trusted", "10.1.2.3:5000", "10.8.8.8, 10.9.9.9", proxies, "10.8.8.8"},
		{"a bad entry stops the walk", "10.1.2.3:5000", "198.51.100.1, junk", proxies, "10.1.2.3"},
		{"trusted proxy without the header", "10.1.2.3:5000", "", proxies, "10.1.2.3"},
		{"IPv4-mapped remote", "[::ffff:10.1.2.3]:5000", "2001:db8::5", proxies, "2001:db8::5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/buy", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := clientIP(r, tc.trusted); got != tc.want {
				t.Fatalf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"10.0.0.0/33", "nonsense", "10.0.0.0/8,,"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%q) accepted", bad)
		}
	}
}

func TestAnUntrustedForwardedForDoesNotSetTheStoredIP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted string
		want    string
	}{
		{"untrusted", "", "127.0.0.1"},
		{"trusted", "127.0.0.1/32", "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxies, err := ParseTrustedProxies(tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			st := testnode.OpenSingle(t)
			srv := httptest.NewServer(New(st, Options{Logger: testnode.Logger(t), TrustedProxies: proxies}))
			defer srv.Close()
			if a := call(t, "POST", srv.URL+"/buy", "application/json", validBuy, map[string]string{"X-Forwarded-For": "198.51.100.1"}); a.status != http.StatusCreated {
				t.Fatalf("buy: %d %v", a.status, a.body)
			}
			recs, err := st.Records(t.Context(), 0, 10, store.Stale)
			if err != nil || len(recs) != 1 || recs[0].IP != tc.want {
				t.Fatalf("stored records %+v (%v), want one with IP %s", recs, err, tc.want)
			}
		})
	}
}
