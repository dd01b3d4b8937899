package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/buytracker/buytracker/node/backupstore/s3test"
)

// agentResult is the backup agent's JSON result.
type agentResult struct {
	Location  string    `json:"location"`
	ClusterID string    `json:"cluster_id"`
	NodeID    string    `json:"node_id"`
	Index     uint64    `json:"index"`
	Purchases uint64    `json:"purchases"`
	CreatedAt time.Time `json:"created_at"`
	Checksum  string    `json:"checksum"`
	SizeBytes int64     `json:"size_bytes"`
	Pruned    []string  `json:"pruned"`
	Skipped   bool      `json:"skipped"`
	Error     string    `json:"error"`
	Reason    string    `json:"reason"`
}

// runAgent runs `buytracker-node backup ARGS...` with env added, and
// returns its exit code and result (which --result-file must hold too).
func runAgent(t *testing.T, env []string, args ...string) (int, agentResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	resultFile := filepath.Join(t.TempDir(), "termination-log")
	cmd := exec.CommandContext(ctx, Binary(t), append(append([]string{"backup"}, args...), "--result-file="+resultFile)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run backup %v: %v\n%s", args, err, stderr.String())
	}
	code := cmd.ProcessState.ExitCode()
	var res agentResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("backup %v (exit %d): stdout is not a JSON result: %v\n%q\nstderr:\n%s", args, code, err, stdout.String(), stderr.String())
	}
	inFile, err := os.ReadFile(resultFile)
	if err != nil || !bytes.Equal(bytes.TrimSpace(inFile), bytes.TrimSpace(stdout.Bytes())) || len(inFile) >= 4096 {
		t.Fatalf("--result-file holds %q (%v), want stdout's result under 4096 bytes", inFile, err)
	}
	if code != 0 {
		t.Logf("backup %s: exit %d, %s", args[0], code, strings.TrimSpace(stdout.String()))
	}
	return code, res
}

// takeArgs are take's flags for a member of c.
func takeArgs(c *Cluster, n *Node, to string, extra ...string) []string {
	return append([]string{"take", "--admin-url=" + n.AdminURL, "--admin-token-file=" + c.TokenFile(),
		"--ca-file=" + c.CAFile(), "--to=" + to}, extra...)
}

func TestBackupAgentTakesUnderWritesToAVolumeAndS3AndRestores(t *testing.T) {
	s3 := s3test.Start(t)
	objects, err := s3.Client()
	if err != nil {
		t.Fatal(err)
	}
	src := Start(t, 3)
	leader := src.WaitLeader(10 * time.Second)
	followers := src.Followers(leader)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	writers := startAckingWriters(ctx, src, "ag", 4)
	writers.awaitMore(200, 30*time.Second, "purchases before the first backup")

	// An older backup in S3, which the next take prunes.
	oldLoc := s3.Location("shop/promo/old.btbackup")
	if code, res := runAgent(t, s3.Env(), takeArgs(src, leader, oldLoc)...); code != 0 {
		t.Fatalf("take to %s: exit %d, %+v", oldLoc, code, res)
	}
	if _, err := objects.StatObject(ctx, s3.Bucket, "shop/promo/old.btbackup.manifest.json", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("the old backup's manifest is not in S3: %v", err)
	}

	writers.mu.Lock()
	ackedBefore := maps.Clone(writers.acked)
	writers.mu.Unlock()
	dirLoc := filepath.Join(t.TempDir(), "backups", "shop", "promo", "nightly.btbackup")
	s3Loc := s3.Location("shop/promo/nightly.btbackup")
	code, onDir := runAgent(t, nil, takeArgs(src, followers[0], dirLoc)...)
	if code != 0 {
		t.Fatalf("take to a directory: exit %d, %+v", code, onDir)
	}
	code, onS3 := runAgent(t, s3.Env(), takeArgs(src, followers[1], s3Loc, "--prune="+oldLoc, "--timeout=2m")...)
	if code != 0 {
		t.Fatalf("take to S3: exit %d, %+v", code, onS3)
	}
	writers.awaitMore(100, 30*time.Second, "purchases after the backups")
	writers.finish(t)

	for _, res := range []agentResult{onDir, onS3} {
		if res.Purchases < uint64(len(ackedBefore)) || res.Index == 0 || len(res.Checksum) != 64 || res.SizeBytes <= 0 || res.CreatedAt.IsZero() {
			t.Fatalf("backup %s: %+v; want at least the %d purchases acknowledged before, an index, checksum, size and time",
				res.Location, res, len(ackedBefore))
		}
	}
	if onDir.Location != dirLoc || onDir.NodeID != followers[0].ID || onS3.Location != s3Loc || onS3.NodeID != followers[1].ID {
		t.Fatalf("results name %s from %s and %s from %s", onDir.Location, onDir.NodeID, onS3.Location, onS3.NodeID)
	}
	if !reflect.DeepEqual(onS3.Pruned, []string{oldLoc}) || onDir.Pruned == nil || len(onDir.Pruned) != 0 {
		t.Fatalf("pruned: %q and %q; want [%s] and []", onS3.Pruned, onDir.Pruned, oldLoc)
	}
	for _, key := range []string{"shop/promo/old.btbackup", "shop/promo/old.btbackup.manifest.json"} {
		if _, err := objects.StatObject(ctx, s3.Bucket, key, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
			t.Fatalf("%s after --prune: %v, want it gone", key, err)
		}
	}
	// The manifest beside the backup says what the result says.
	for loc, want := range map[string]agentResult{dirLoc: onDir, s3Loc: onS3} {
		var raw []byte
		if strings.HasPrefix(loc, "s3://") {
			obj, err := objects.Client.GetObject(ctx, s3.Bucket, strings.TrimPrefix(loc, s3.Location(""))+".manifest.json", minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			raw, err = io.ReadAll(obj)
			if err != nil {
				t.Fatalf("read the manifest of %s: %v", loc, err)
			}
		} else if raw, err = os.ReadFile(loc + ".manifest.json"); err != nil {
			t.Fatal(err)
		}
		var m agentResult
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("manifest of %s: %v: %q", loc, err, raw)
		}
		want.Pruned = nil
		if !m.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("manifest of %s: created %s, the result says %s", loc, m.CreatedAt, want.CreatedAt)
		}
		m.CreatedAt = want.CreatedAt
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("manifest of %s: %+v, the result says %+v", loc, m, want)
		}
	}

	all, err := src.AllPurchases(leader.HTTPURL, "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(all)) <= max(onDir.Purchases, onS3.Purchases) {
		t.Fatalf("the source holds %d purchases, want more than the backups': writes went on", len(all))
	}

	// Fetched back, checked against the checksum the result gave, each one
	// starts a new cluster holding exactly its purchases.
	for _, tc := range []struct {
		res     agentResult
		env     []string
		members int
	}{{onS3, s3.Env(), 3}, {onDir, nil, 1}} {
		fetched := filepath.Join(t.TempDir(), "restore.btbackup")
		code, got := runAgent(t, tc.env, "fetch", "--from="+tc.res.Location, "--to="+fetched, "--checksum="+tc.res.Checksum)
		tc.res.Pruned = nil
		if code != 0 || !got.CreatedAt.Equal(tc.res.CreatedAt) {
			t.Fatalf("fetch %s: exit %d, %+v; want %+v", tc.res.Location, code, got, tc.res)
		}
		got.CreatedAt = tc.res.CreatedAt
		if !reflect.DeepEqual(got, tc.res) {
			t.Fatalf("fetch %s: %+v; want %+v", tc.res.Location, got, tc.res)
		}
		dst := Start(t, tc.members, "--restore-from="+fetched)
		dst.WaitLeader(30 * time.Second)
		want := all[:tc.res.Purchases]
		for _, n := range dst.Nodes() {
			restored, err := dst.AllPurchases(n.HTTPURL, "linearizable")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(restored, want) {
				t.Fatalf("restored from %s, %s exports %d purchases, not exactly the backup's %d", tc.res.Location, n.ID, len(restored), len(want))
			}
		}
		t.Logf("%s: index %d, %d purchases, %d bytes, restored on %d members", tc.res.Location, tc.res.Index, tc.res.Purchases, tc.res.SizeBytes, tc.members)
	}

	t.Run("a corrupted or truncated backup is invalid and nothing is kept", func(t *testing.T) {
		obj, err := objects.Client.GetObject(ctx, s3.Bucket, "shop/promo/nightly.btbackup", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(obj)
		if err != nil {
			t.Fatal(err)
		}
		flipped := bytes.Clone(raw)
		flipped[len(flipped)/2] ^= 0x01
		for key, data := range map[string][]byte{"bad/flipped.btbackup": flipped, "bad/cut.btbackup": raw[:len(raw)*2/3]} {
			if _, err := objects.Client.PutObject(ctx, s3.Bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			if code, res := runAgent(t, s3.Env(), "verify", "--from="+s3.Location(key)); code != 3 || res.Reason != "invalid" {
				t.Fatalf("verify %s: exit %d, %+v; want 3, invalid", key, code, res)
			}
			kept := filepath.Join(t.TempDir(), "restore.btbackup")
			if code, res := runAgent(t, s3.Env(), "fetch", "--from="+s3.Location(key), "--to="+kept); code != 3 || res.Reason != "invalid" {
				t.Fatalf("fetch %s: exit %d, %+v; want 3, invalid", key, code, res)
			}
			if entries, _ := os.ReadDir(filepath.Dir(kept)); len(entries) != 0 {
				t.Fatalf("a refused fetch left %d files beside %s", len(entries), kept)
			}
		}
		// A whole backup with another checksum than the one asked for.
		other := strings.Repeat("0", 64)
		if code, res := runAgent(t, nil, "verify", "--from="+dirLoc, "--checksum="+other); code != 3 || !strings.Contains(res.Error, other) {
			t.Fatalf("verify with the wrong checksum: exit %d, %+v; want 3 naming it", code, res)
		}
	})

	t.Run("a missing backup or a refused one is unreadable", func(t *testing.T) {
		wrongKey := append(s3.Env(), "AWS_SECRET_ACCESS_KEY=not-the-secret")
		for name, tc := range map[string]struct {
			env []string
			loc string
		}{
			"missing in S3":       {s3.Env(), s3.Location("shop/promo/absent.btbackup")},
			"missing bucket":      {s3.Env(), "s3://no-such-bucket/x.btbackup"},
			"wrong secret":        {wrongKey, s3Loc},
			"missing on a volume": {nil, filepath.Join(t.TempDir(), "absent.btbackup")},
		} {
			code, res := runAgent(t, tc.env, "verify", "--from="+tc.loc)
			if code != 4 || res.Reason != "unreadable" {
				t.Fatalf("%s: exit %d, %+v; want 4, unreadable", name, code, res)
			}
			if strings.Contains(res.Error, s3.SecretAccessKey) || strings.Contains(res.Error, "not-the-secret") {
				t.Fatalf("%s: the error shows a secret: %s", name, res.Error)
			}
		}
	})

	t.Run("a take refused by the node stores nothing", func(t *testing.T) {
		badToken := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(badToken, []byte("not-the-token"), 0o600); err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(t.TempDir(), "refused.btbackup")
		code, res := runAgent(t, nil, "take", "--admin-url="+leader.AdminURL, "--admin-token-file="+badToken,
			"--ca-file="+src.CAFile(), "--to="+to)
		if code != 1 || !strings.Contains(res.Error, "401") {
			t.Fatalf("take with a wrong token: exit %d, %+v; want 1 and the node's 401", code, res)
		}
		if entries, _ := os.ReadDir(filepath.Dir(to)); len(entries) != 0 {
			t.Fatalf("a refused take left %d files", len(entries))
		}
	})

	t.Run("fetch skips a data dir a node started on", func(t *testing.T) {
		to := filepath.Join(t.TempDir(), "restore.btbackup")
		code, res := runAgent(t, s3.Env(), "fetch", "--from="+s3Loc, "--to="+to, "--skip-if-data-dir="+leader.DataDir())
		if code != 0 || !res.Skipped || res.Location != "" {
			t.Fatalf("fetch for a started node: exit %d, %+v; want {\"skipped\":true}", code, res)
		}
		if _, err := os.Stat(to); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a skipped fetch wrote %s: %v", to, err)
		}
	})

	t.Run("delete removes a backup and its manifest, and again is fine", func(t *testing.T) {
		for range 2 {
			if code, res := runAgent(t, s3.Env(), "delete", "--at="+s3Loc); code != 0 {
				t.Fatalf("delete %s: exit %d, %+v", s3Loc, code, res)
			}
		}
		if code, res := runAgent(t, nil, "delete", "--at="+dirLoc); code != 0 {
			t.Fatalf("delete %s: exit %d, %+v", dirLoc, code, res)
		}
		for _, key := range []string{"shop/promo/nightly.btbackup", "shop/promo/nightly.btbackup.manifest.json"} {
			if _, err := objects.StatObject(ctx, s3.Bucket, key, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
				t.Fatalf("%s after delete: %v, want it gone", key, err)
			}
		}
		for _, path := range []string{dirLoc, dirLoc + ".manifest.json"} {
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s after delete: %v, want it gone", path, err)
			}
		}
	})
}
