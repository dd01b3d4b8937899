package clustertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
)

// takeBackup writes a backup from n's admin API into a file of the test.
func takeBackup(t *testing.T, c *Cluster, n *Node) (string, adminapi.BackupInfo) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.backup")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	info, err := c.Admin(n).Backup(ctx, f)
	if err != nil {
		t.Fatalf("backup from %s: %v", n.ID, err)
	}
	return path, info
}

// promotionStats reads the all-time totals of promotion 1, which every
// purchase of the harness belongs to.
func promotionStats(t *testing.T, c *Cluster, n *Node) (buys int64, amount string) {
	t.Helper()
	var s struct {
		RecentBuys   int64  `json:"n_recent_buys"`
		RecentAmount string `json:"recent_amount"`
	}
	if status, err := c.GetJSON(n.HTTPURL+"/stats?promotion_id=1&timeframe_hours=87600&consistency=linearizable", &s); err != nil || status != 200 {
		t.Fatalf("GET /stats on %s: %d, %v", n.ID, status, err)
	}
	return s.RecentBuys, s.RecentAmount
}

func TestBackupUnderWritesRestoresIntoANewCluster(t *testing.T) {
	src := Start(t, 3)
	leader := src.WaitLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	writers := startAckingWriters(ctx, src, "bk", 4)
	writers.awaitMore(300, 30*time.Second, "purchases before the backup")

	// Taken from a follower: its read barrier asks the leader for the read
	// index, so the backup still holds every purchase acknowledged before.
	writers.mu.Lock()
	ackedBefore := maps.Clone(writers.acked)
	writers.mu.Unlock()
	path, info := takeBackup(t, src, src.Followers(leader)[0])
	writers.awaitMore(100, 30*time.Second, "purchases after the backup")
	writers.finish(t)

	if info.Purchases < uint64(len(ackedBefore)) {
		t.Fatalf("the backup holds %d purchases, fewer than the %d acknowledged before it was asked for", info.Purchases, len(ackedBefore))
	}
	for key, a := range ackedBefore {
		if a.PurchaseID > info.Purchases {
			t.Fatalf("purchase %d (%s) was acknowledged before the backup began but is past its %d purchases", a.PurchaseID, key, info.Purchases)
		}
	}
	all, err := src.AllPurchases(leader.HTTPURL, "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(all)) <= info.Purchases {
		t.Fatalf("the source holds %d purchases, want more than the backup's %d: writes went on", len(all), info.Purchases)
	}
	want := all[:info.Purchases]
	if last := want[len(want)-1]; last.Index > info.Index {
		t.Fatalf("the backup's last purchase is at index %d, past the backup's index %d", last.Index, info.Index)
	}
	if next := all[info.Purchases]; next.Index <= info.Index {
		t.Fatalf("purchase %d is at index %d, within the backup's index %d, but not in it", next.PurchaseID, next.Index, info.Index)
	}
	t.Logf("backup: index %d, %d purchases, %d bytes, %d acknowledged before it began", info.Index, info.Purchases, info.Size, len(ackedBefore))

	dst := Start(t, 3, "--restore-from="+path)
	dstLeader := dst.WaitLeader(30 * time.Second)
	for _, n := range dst.Nodes() {
		got, err := dst.AllPurchases(n.HTTPURL, "linearizable")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s exports %d purchases, not exactly the backup's %d", n.ID, len(got), len(want))
		}
		buys, amount := promotionStats(t, dst, n)
		if wantAmount := fmt.Sprintf("%d.%02d", 125*info.Purchases/100, 125*info.Purchases%100); buys != int64(info.Purchases) || amount != wantAmount {
			t.Fatalf("%s: promotion 1 has %d purchases for %s, want %d for %s", n.ID, buys, amount, info.Purchases, wantAmount)
		}
	}

	// Idempotency keys from the backup answer their first purchase.
	checked := 0
	for key, a := range ackedBefore {
		user := 1 + int(key[len("bk-w")]-'0') // retryingBuy's user for writer i is i+1
		again, err := dst.Buy(t.Context(), dstLeader.HTTPURL, key, user)
		if err != nil {
			t.Fatal(err)
		}
		if again.Status != 201 || !again.Replayed || again.PurchaseID != a.PurchaseID {
			t.Fatalf("retry of %s on the restored cluster: %+v, want purchase %d replayed", key, again, a.PurchaseID)
		}
		if checked++; checked == 20 {
			break
		}
	}
	// New purchases continue the ids.
	for i := range 3 {
		n := dst.Nodes()[i]
		a, err := dst.Buy(t.Context(), n.HTTPURL, "", 1)
		if err != nil || a.Status != 201 {
			t.Fatalf("new purchase through %s: %+v, %v", n.ID, a, err)
		}
		if a.PurchaseID != info.Purchases+uint64(i)+1 {
			t.Fatalf("new purchase got id %d, want %d", a.PurchaseID, info.Purchases+uint64(i)+1)
		}
	}

	// A restart with the flag still set comes back with its data.
	n := dst.Nodes()[0]
	dst.Stop(n)
	dst.Restart(n)
	dst.WaitLeader(30 * time.Second)
	if got, _, err := dst.Stats(n.HTTPURL, "linearizable"); err != nil || got.TotalBuys != info.Purchases+3 {
		t.Fatalf("%s after a restart with --restore-from: %+v, %v; want %d purchases", n.ID, got, err, info.Purchases+3)
	}

	// A member that loses its volume later and comes back with the flag
	// still set must not restore over the cluster: it rejoins as a new
	// incarnation and catches up, new purchases included.
	lost := dst.Nodes()[2]
	dst.Stop(lost)
	dst.WipeData(lost)
	dst.Restart(lost)
	dst.Eventually(30*time.Second, lost.ID+" rejoined and caught up", func() error {
		got, err := dst.AllPurchases(lost.HTTPURL, "linearizable")
		if err != nil {
			return err
		}
		if uint64(len(got)) != info.Purchases+3 {
			return fmt.Errorf("%d purchases, want %d", len(got), info.Purchases+3)
		}
		return nil
	})
	if log := dst.Log(lost); !strings.Contains(log, "The cluster exists") || strings.Count(log, "Restored the backup") != 1 {
		t.Fatalf("%s restored again instead of rejoining; log:\n%s", lost.ID, tail(log, 20))
	}

	t.Run("a corrupted or truncated backup is refused", func(t *testing.T) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		flipped := append([]byte(nil), raw...)
		flipped[len(flipped)/2] ^= 0x01
		for name, tc := range map[string]struct {
			data []byte
			says string
		}{
			"one flipped byte": {flipped, "does not match the trailer"},
			"truncated":        {raw[:len(raw)*2/3], "no checksum trailer"},
		} {
			bad := filepath.Join(t.TempDir(), "bad.backup")
			if err := os.WriteFile(bad, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			c := StartSome(t, 3)
			c.ExtraFlags = []string{"--restore-from=" + bad}
			n := c.Node("n1")
			code, log := c.StartOnce(n, 30*time.Second)
			if code == 0 || !strings.Contains(log, "invalid backup") || !strings.Contains(log, tc.says) {
				t.Fatalf("%s: exit %d, log:\n%s\nwant a refusal saying %q", name, code, tail(log, 5), tc.says)
			}
			if entries, err := os.ReadDir(n.DataDir()); err == nil && len(entries) > 0 {
				t.Fatalf("%s: the refused restore left %d entries in the data dir", name, len(entries))
			} else if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
	})

	t.Run("a data dir with other state is not overwritten", func(t *testing.T) {
		n := src.Nodes()[0]
		src.Stop(n)
		src.ExtraFlags = []string{"--restore-from=" + path}
		code, log := src.StartOnce(n, 30*time.Second)
		if code == 0 || !strings.Contains(log, "not empty and was not started from a backup") {
			t.Fatalf("exit %d, log:\n%s\nwant a refusal of the non-empty data dir", code, tail(log, 5))
		}
	})
}

func TestBackupNeedsTheAdminToken(t *testing.T) {
	c := Start(t, 1)
	n := c.Nodes()[0]
	cl, err := adminapi.NewClient(n.AdminURL, "", c.AdminHTTPClient())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Backup(t.Context(), new(strings.Builder)); !adminapi.IsStatus(err, 401) {
		t.Fatalf("GET /backup without a token: %v, want 401", err)
	}
	// With it, a backup of the one-node cluster verifies.
	_, info := takeBackup(t, c, n)
	if info.Index == 0 || info.NodeID != n.ID {
		t.Fatalf("backup info %+v", info)
	}
}
