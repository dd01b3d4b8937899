package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/clustertest"
	"github.com/buytracker/buytracker/test/chaos/checker"
	"github.com/buytracker/buytracker/test/chaos/history"
)

// TestTheHistoryOfAClusterWithALeaderCrashChecksClean runs writers and
// readers against three node processes, kills the leader in the middle and
// restarts it, settles every unanswered buy, exports every member and checks
// the whole history.
func TestTheHistoryOfAClusterWithALeaderCrashChecksClean(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node processes")
	}
	c := clustertest.Start(t, 3)
	var urls []string
	for _, n := range c.Nodes() {
		urls = append(urls, n.HTTPURL)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(client.CloseIdleConnections)
	rec := history.NewRecorder()
	w := Run(t.Context(), Config{
		Writers: 4, Readers: 4, Nodes: func() []string { return urls }, Client: client,
		Rate: 25, Seed: 12, Logf: t.Logf,
	}, rec)
	t.Cleanup(w.Stop)
	acked := func() int {
		n := 0
		for _, op := range rec.Ops() {
			if op.Kind == history.KindBuy && op.Outcome == history.OK {
				n++
			}
		}
		return n
	}
	ackedAtLeast := func(want int) func() error {
		return func() error {
			if err := w.Err(); err != nil {
				t.Fatal(err)
			}
			if got := acked(); got < want {
				return fmt.Errorf("%d acknowledged", got)
			}
			return nil
		}
	}
	c.Eventually(30*time.Second, "60 buys acknowledged", ackedAtLeast(60))
	leader := c.WaitLeader(10 * time.Second)
	c.Kill(leader)
	c.Eventually(30*time.Second, "60 more buys acknowledged with the leader killed", ackedAtLeast(acked()+60))
	c.Restart(leader)
	c.WaitLeader(30 * time.Second)
	c.Eventually(30*time.Second, "60 more buys acknowledged after its restart", ackedAtLeast(acked()+60))

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := w.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	ops := rec.Ops()
	if err := history.WriteJSON(filepath.Join(t.ArtifactDir(), "history.json"), ops); err != nil {
		t.Fatal(err)
	}
	exports := map[string][]history.Record{}
	c.Eventually(30*time.Second, "every member exports the same number of purchases", func() error {
		lengths := map[int][]string{}
		for _, n := range c.Nodes() {
			records, err := export(ctx, client, n.HTTPURL, clustertest.ExportToken)
			if err != nil {
				return err
			}
			exports[n.ID] = records
			lengths[len(records)] = append(lengths[len(records)], n.ID)
		}
		if len(lengths) != 1 {
			return fmt.Errorf("members by export length: %v", lengths)
		}
		return nil
	})
	r := checker.Check(ops, exports, checker.Options{VisualizePath: filepath.Join(t.ArtifactDir(), "linearizability.html")})
	t.Log(r.Summary())
	if !r.OK() {
		t.Fatalf("the history has %d anomalies:\n%s", len(r.Anomalies), strings.Join(r.Anomalies, "\n"))
	}
	if r.Acked == 0 || r.Reads == 0 || r.Unknown != 0 {
		t.Fatalf("history too thin or unsettled: %s", r.Summary())
	}
	if r.ReadsByConsistency["lease"] == 0 || r.ReadsByConsistency["linearizable"] == 0 {
		t.Fatalf("reads by consistency: %v", r.ReadsByConsistency)
	}
}

// export pages through GET /buys of one node (its local state).
func export(ctx context.Context, client *http.Client, baseURL, token string) ([]history.Record, error) {
	var out []history.Record
	after := uint64(0)
	for {
		var page struct {
			Purchases []history.Record `json:"purchases"`
			NextAfter uint64           `json:"next_after"`
		}
		if err := getJSON(ctx, client, fmt.Sprintf("%s/buys?after=%d&limit=1000&consistency=stale", baseURL, after), token, &page); err != nil {
			return nil, err
		}
		if len(page.Purchases) == 0 {
			return out, nil
		}
		out = append(out, page.Purchases...)
		after = page.NextAfter
	}
}

func getJSON(ctx context.Context, client *http.Client, url, token string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return nil
}
