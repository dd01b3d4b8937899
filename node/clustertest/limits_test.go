package clustertest

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// get sends GET url with an optional bearer token and returns the status and
// the decoded JSON body. Admin URLs are HTTPS under the cluster's CA.
func get(t *testing.T, c *Cluster, url, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	transport := &http.Transport{DisableKeepAlives: true}
	if strings.HasPrefix(url, "https://") {
		transport.TLSClientConfig = c.AdminHTTPClient().Transport.(*http.Transport).TLSClientConfig
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: transport}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil && !strings.HasSuffix(url, "/metrics") {
		t.Fatalf("GET %s: %d with a body that is not JSON: %q", url, resp.StatusCode, raw)
	}
	if body == nil {
		body = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, body
}

func errorCode(body map[string]any) any {
	e, _ := body["error"].(map[string]any)
	return e["code"]
}

func TestANodePastItsConnectionCapAnswers503AndItsAdminPortAnswersProbes(t *testing.T) {
	c := Start(t, 1, "--max-client-conns=20")
	n := c.Nodes()[0]
	var held []net.Conn
	for range 20 {
		conn, err := net.Dial("tcp", n.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		held = append(held, conn)
	}
	// Connections are accepted in the order they arrive, so the next one
	// is past the cap.
	if status, body := get(t, c, n.HTTPURL+"/health", ""); status != http.StatusServiceUnavailable || errorCode(body) != "too_many_connections" {
		t.Fatalf("client /health past the cap: %d %v, want 503 too_many_connections", status, body)
	}
	for _, path := range []string{"/health", "/ready"} {
		if status, body := get(t, c, n.AdminURL+path, ""); status != http.StatusOK {
			t.Fatalf("admin %s without a token while the client port is full: %d %v", path, status, body)
		}
	}
	if status, _ := get(t, c, n.AdminURL+"/status", ""); status != http.StatusUnauthorized {
		t.Fatalf("admin /status without a token: %d, want 401", status)
	}
	for _, conn := range held {
		conn.Close()
	}
	c.Eventually(10*time.Second, "the client port to answer again", func() error {
		if status, body := get(t, c, n.HTTPURL+"/health", ""); status != http.StatusOK {
			return &unexpected{status, body}
		}
		return nil
	})
	_, metrics := get(t, c, n.HTTPURL+"/metrics", "")
	raw := metrics["raw"].(string)
	refused := regexp.MustCompile(`buytracker_listener_refused_connections_total\{listener="client"\} ([0-9]+)`).FindStringSubmatch(raw)
	if refused == nil || refused[1] == "0" || !strings.Contains(raw, `buytracker_listener_max_connections{listener="client"} 20`) {
		t.Fatalf("/metrics lacks the client listener's refusal count or cap")
	}
}

type unexpected struct {
	status int
	body   map[string]any
}

func (u *unexpected) Error() string {
	raw, _ := json.Marshal(u.body)
	return http.StatusText(u.status) + " " + string(raw)
}

func TestANodeRefusesHugeHeadersOnBothPorts(t *testing.T) {
	c := Start(t, 1)
	n := c.Nodes()[0]
	adminTLS := c.AdminHTTPClient().Transport.(*http.Transport).TLSClientConfig
	for _, addr := range []string{n.httpAddr, n.admAddr} {
		var conn net.Conn
		var err error
		if addr == n.admAddr {
			conn, err = tls.Dial("tcp", addr, adminTLS)
		} else {
			conn, err = net.Dial("tcp", addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			_, _ = io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 900<<10)+"\r\n\r\n")
		}()
		buf := make([]byte, 64)
		if n, err := io.ReadAtLeast(conn, buf, 12); n < 12 || string(buf[9:12]) != "431" {
			t.Fatalf("900 KiB of headers to %s: %q (%v), want 431", addr, buf[:n], err)
		}
	}
}

func TestANodeAsksForTheExportRoleOnBuys(t *testing.T) {
	c := Start(t, 1)
	n := c.Nodes()[0]
	if a, err := c.Buy(t.Context(), n.HTTPURL, "", 1); err != nil || a.Status != http.StatusCreated {
		t.Fatalf("POST /buy without a token: %+v %v", a, err)
	}
	if status, body := get(t, c, n.HTTPURL+"/buys", ""); status != http.StatusUnauthorized || errorCode(body) != "unauthorized" {
		t.Fatalf("GET /buys without a token: %d %v", status, body)
	}
	if status, body := get(t, c, n.HTTPURL+"/buys", "not-the-export-token"); status != http.StatusUnauthorized {
		t.Fatalf("GET /buys with a wrong token: %d %v", status, body)
	}
	if status, body := get(t, c, n.HTTPURL+"/buys", ExportToken); status != http.StatusOK || len(body["purchases"].([]any)) != 1 {
		t.Fatalf("GET /buys with the export token: %d %v", status, body)
	}

	// A node started without an auth file refuses /buys and says why.
	solo := Start(t, 1, "--client-auth-file=").Nodes()[0]
	status, body := get(t, c, solo.HTTPURL+"/buys", ExportToken)
	if msg, _ := body["error"].(map[string]any)["message"].(string); status != http.StatusForbidden || !strings.Contains(msg, "--client-auth-file") {
		t.Fatalf("GET /buys on a node without an auth file: %d %v, want 403 naming --client-auth-file", status, body)
	}
}
