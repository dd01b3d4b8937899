package clustertest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scenario 2 of issue 10: two bytes of one log entry change on a follower's
// disk (an amount 2.50 becomes 5.00). The follower must find it before
// applying the entry and leave service; it must never answer a read with the
// changed amount.
func TestAFlippedByteInAFollowersLogTakesItOutOfService(t *testing.T) {
	c := Start(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	const purchases, marked = 20, 777777
	for i := range purchases {
		user := 1000 + i
		if i == purchases/2 {
			user = marked // the purchase whose bytes will be changed
		}
		if status, err := buyAmount(t.Context(), c, leader.HTTPURL, user, "2.50"); err != nil || status != http.StatusCreated {
			t.Fatalf("purchase %d: status %d, %v", i, status, err)
		}
	}
	follower := c.Followers(leader)[0]
	healthy := []*Node{leader, c.Followers(leader)[1]}
	c.Eventually(10*time.Second, follower.ID+" has applied every purchase", func() error {
		a, status, err := statsAnswer(c, follower, "stale")
		if err != nil || status != 200 || a.TotalBuys != purchases {
			return fmt.Errorf("stale stats: %d %+v %v", status, a, err)
		}
		return nil
	})
	c.Stop(follower)

	// The command bytes sit contiguous in raft.db (bbolt keeps no page
	// checksums): the user id's varint, promotion 1, product 2, then the
	// amount, 250 cents. bbolt may still hold older copies of the page in
	// free pages; every copy is changed.
	raftDB := filepath.Join(follower.dataDir, "raft", "raft.db")
	pattern := binary.AppendVarint(nil, marked)
	pattern = binary.AppendVarint(pattern, 1)
	pattern = binary.AppendVarint(pattern, 2)
	from := binary.AppendVarint(bytes.Clone(pattern), 250)
	to := binary.AppendVarint(bytes.Clone(pattern), 500)
	raw, err := os.ReadFile(raftDB)
	if err != nil {
		t.Fatal(err)
	}
	copies := bytes.Count(raw, from)
	if copies == 0 {
		t.Fatalf("the marked purchase (%x) is not in %s", from, raftDB)
	}
	if err := os.WriteFile(raftDB, bytes.ReplaceAll(raw, from, to), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("changed %d copies of the purchase's amount from 2.50 to 5.00 in %s", copies, raftDB)
	c.Restart(follower)

	// Until it halts, whatever the follower answers must be a true prefix of
	// the log: every purchase is 2.50, so the total is 2.50 per purchase.
	// Once halted it answers 503 node_halted at every consistency.
	c.Eventually(30*time.Second, follower.ID+" halted and refusing reads", func() error {
		var notYet []string
		for _, consistency := range []string{"linearizable", "stale"} {
			a, status, err := statsAnswer(c, follower, consistency)
			switch {
			case err != nil:
				notYet = append(notYet, fmt.Sprintf("%s: %v", consistency, err))
			case status == http.StatusOK:
				if want := fmt.Sprintf("%d.%02d", a.TotalBuys*250/100, a.TotalBuys*250%100); a.TotalAmount != want {
					t.Fatalf("%s answered a %s read with total_amount %s for %d purchases of 2.50 (want %s): it applied the changed entry",
						follower.ID, consistency, a.TotalAmount, a.TotalBuys, want)
				}
				notYet = append(notYet, consistency+" still answered")
			case status != http.StatusServiceUnavailable || a.Error.Code != "node_halted":
				notYet = append(notYet, fmt.Sprintf("%s: %d %s", consistency, status, a.Error.Code))
			}
		}
		if len(notYet) > 0 {
			return fmt.Errorf("%s", strings.Join(notYet, "; "))
		}
		return nil
	})

	var ready statsReply
	status, err := getReply(c, follower.HTTPURL+"/ready", &ready)
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(ready.Error.Message, "halted") {
		t.Fatalf("/ready on the halted follower: %d %+v %v; want 503 saying it halted", status, ready.Error, err)
	}
	if v, err := c.Metric(follower, "buytracker_ledger_halted"); err != nil || v != 1 {
		t.Fatalf("buytracker_ledger_halted on %s = %v (%v), want 1", follower.ID, v, err)
	}
	if status, err := buyAmount(t.Context(), c, follower.HTTPURL, 42, "2.50"); err != nil || status != http.StatusServiceUnavailable {
		t.Fatalf("a purchase on the halted follower: %d %v, want 503", status, err)
	}
	if !follower.Running() {
		t.Fatalf("%s exited instead of halting; log:\n%s", follower.ID, tail(c.Log(follower), 30))
	}

	if log := c.Log(follower); !strings.Contains(log, "command checksum mismatch") {
		t.Fatalf("%s halted without logging the checksum mismatch; log:\n%s", follower.ID, tail(log, 20))
	}
	if st, err := nodeStatus(c, follower); err != nil || !strings.Contains(st.Halted, "checksum mismatch") {
		t.Fatalf("admin /status of %s: %+v %v; want the halt's reason", follower.ID, st, err)
	}
	// The two healthy members still take purchases and agree.
	for i := range 5 {
		if status, err := buyAmount(t.Context(), c, healthy[i%2].HTTPURL, 2000+i, "2.50"); err != nil || status != http.StatusCreated {
			t.Fatalf("purchase %d on %s after the halt: %d %v", i, healthy[i%2].ID, status, err)
		}
	}
	for _, n := range healthy {
		a, status, err := statsAnswer(c, n, "linearizable")
		if err != nil || status != 200 || a.TotalBuys != purchases+5 || a.TotalAmount != "62.50" {
			t.Fatalf("linearizable stats on %s: %d %+v %v; want %d purchases totalling 62.50", n.ID, status, a, err, purchases+5)
		}
	}
	// Their digests agree once both applied the same index.
	c.Eventually(10*time.Second, "equal digests on the healthy members", func() error {
		a, errA := nodeStatus(c, healthy[0])
		b, errB := nodeStatus(c, healthy[1])
		switch {
		case errA != nil || errB != nil:
			return fmt.Errorf("status: %v, %v", errA, errB)
		case a.DigestIndex != b.DigestIndex:
			return fmt.Errorf("digest indexes %d and %d", a.DigestIndex, b.DigestIndex)
		case a.Digest != b.Digest || len(a.Digest) != 64:
			t.Fatalf("digests at index %d differ: %s on %s, %s on %s", a.DigestIndex, a.Digest, a.ID, b.Digest, b.ID)
		}
		return nil
	})
}

// integrityStatus is the part of the admin API's GET /status this test
// reads (decoded here, not as adminapi.Status, so that the test also builds
// against nodes from before these fields, where it must fail).
type integrityStatus struct {
	ID          string `json:"id"`
	Digest      string `json:"digest"`
	DigestIndex uint64 `json:"digest_index"`
	Halted      string `json:"halted"`
}

func nodeStatus(c *Cluster, n *Node) (integrityStatus, error) {
	var st integrityStatus
	req, err := http.NewRequest(http.MethodGet, n.AdminURL+"/status", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.AdminHTTPClient().Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s/status: %d", n.AdminURL, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// statsReply is a /stats answer or a JSON error.
type statsReply struct {
	TotalBuys   uint64 `json:"total_buys"`
	TotalAmount string `json:"total_amount"`
	Index       uint64 `json:"index"`
	Error       struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func statsAnswer(c *Cluster, n *Node, consistency string) (statsReply, int, error) {
	var a statsReply
	status, err := getReply(c, n.HTTPURL+"/stats?promotion_id=1&consistency="+consistency, &a)
	return a, status, err
}

// getReply GETs url and decodes its JSON body, whatever the status.
func getReply(c *Cluster, url string, v any) (int, error) {
	resp, err := c.client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return resp.StatusCode, fmt.Errorf("decode %q: %w", raw, err)
	}
	return resp.StatusCode, nil
}

// buyAmount records one purchase of amount in promotion 1, product 2.
func buyAmount(ctx context.Context, c *Cluster, baseURL string, user int, amount string) (int, error) {
	body := `{"user_id":` + strconv.Itoa(user) + `,"promotion_id":1,"product_id":2,"product_amount":"` + amount + `"}`
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/buy", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
