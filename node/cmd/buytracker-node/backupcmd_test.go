package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runAgent runs a backup subcommand in process and decodes its result.
func runAgent(t *testing.T, env map[string]string, args ...string) (int, map[string]any, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runBackup(args, &stdout, &stderr, func(k string) string { return env[k] })
	var res map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("backup %v: stdout is not one JSON object (%v): %q", args, err, stdout.String())
	}
	return code, res, stderr.String()
}

func TestBackupAgentUsageErrorsExit2AndChangeNothing(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	take := []string{"take", "--admin-url=http://127.0.0.1:1", "--admin-token-file=" + token}
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"no subcommand", nil, "a subcommand is needed"},
		{"an unknown subcommand", []string{"restore"}, "unknown backup subcommand"},
		{"an unknown flag", []string{"verify", "--form=/x"}, "flag provided but not defined"},
		{"a stray argument", []string{"verify", "--from=/x", "extra"}, "unexpected arguments"},
		{"a relative location", []string{"verify", "--from=backups/x"}, "absolute path or s3://"},
		{"no location", []string{"delete"}, "--at is required"},
		{"a short checksum", []string{"verify", "--from=/x", "--checksum=abc"}, "hex SHA-256"},
		{"fetch without --to", []string{"fetch", "--from=/x"}, "--to is required"},
		{"a zero timeout", []string{"verify", "--from=/x", "--timeout=0s"}, "--timeout must be above 0"},
		{"take without a token", []string{"take", "--admin-url=http://127.0.0.1:1", "--to=/b/x"}, "--admin-token-file are required"},
		{"prune of the backup itself", append(take, "--to="+dir+"/x", "--prune="+dir+"/x"), "would delete the backup being taken"},
		{"prune of its manifest", append(take, "--to="+dir+"/x", "--prune="+dir+"/x.manifest.json"), "would delete the backup being taken"},
		{"a CA for plain http", append(take, "--to="+dir+"/x", "--ca-file="+token), "--ca-file is for an https"},
		{"a bad admin URL", []string{"take", "--admin-url=127.0.0.1:1", "--admin-token-file=" + token, "--to=" + dir + "/x"}, "--admin-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, res, _ := runAgent(t, nil, tc.args...)
			if code != exitUsage || !strings.Contains(res["error"].(string), tc.says) || res["reason"] != "failed" {
				t.Fatalf("exit %d, result %v; want exit 2 and an error saying %q", code, res, tc.says)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a refused command wrote into %s: %d entries", dir, len(entries))
	}
}

func TestBackupAgentMissingBackupIsUnreadable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.btbackup")
	resultFile := filepath.Join(t.TempDir(), "termination-log")
	code, res, _ := runAgent(t, nil, "verify", "--from="+missing, "--result-file="+resultFile)
	if code != exitUnreadable || res["reason"] != "unreadable" || !strings.Contains(res["error"].(string), "not found") {
		t.Fatalf("verify of a missing file: exit %d, %v; want exit 4, unreadable, not found", code, res)
	}
	raw, err := os.ReadFile(resultFile)
	if err != nil || !bytes.Contains(raw, []byte(`"reason":"unreadable"`)) {
		t.Fatalf("--result-file holds %q (%v), want the same result", raw, err)
	}
}

func TestBackupAgentS3NeedsAnEndpoint(t *testing.T) {
	code, res, _ := runAgent(t, map[string]string{"AWS_SECRET_ACCESS_KEY": "hush", "AWS_ACCESS_KEY_ID": "id"},
		"verify", "--from=s3://bucket/key")
	if code != exitFailed || !strings.Contains(res["error"].(string), "BUYTRACKER_S3_ENDPOINT") {
		t.Fatalf("exit %d, %v; want exit 1 naming BUYTRACKER_S3_ENDPOINT", code, res)
	}
}

func TestBackupAgentFetchSkipsAStartedDataDir(t *testing.T) {
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "identity.json"), []byte(`{"id":"n1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "restore.btbackup")
	// The source does not even exist: a started data dir never reads it.
	code, res, _ := runAgent(t, nil, "fetch", "--from=/nowhere/x.btbackup", "--to="+to, "--skip-if-data-dir="+dataDir)
	if code != exitOK || res["skipped"] != true || len(res) != 1 {
		t.Fatalf("exit %d, %v; want exit 0 and {\"skipped\":true}", code, res)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Fatalf("a skipped fetch wrote %s (%v)", to, err)
	}
	// An empty data dir does not skip.
	code, res, _ = runAgent(t, nil, "fetch", "--from=/nowhere/x.btbackup", "--to="+to, "--skip-if-data-dir="+t.TempDir())
	if code != exitUnreadable {
		t.Fatalf("fetch into an empty data dir's node: exit %d, %v; want it to try, and find nothing (4)", code, res)
	}
}

func TestBackupResultStaysUnderTheTerminationMessageLimit(t *testing.T) {
	long := "/backups/" + strings.Repeat("x", 1000)
	res := backupResult{Location: long, Description: &Description{Checksum: strings.Repeat("a", 64)}}
	for range maxPrunes {
		res.Pruned = append(res.Pruned, long)
	}
	out := encodeResult(res)
	var back backupResult
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if len(out) > maxResult || back.PrunedOmitted == 0 || len(back.Pruned)+back.PrunedOmitted != maxPrunes {
		t.Fatalf("%d bytes, %d pruned listed and %d omitted; want at most %d bytes and every prune counted",
			len(out), len(back.Pruned), back.PrunedOmitted, maxResult)
	}
	// An error message of any length fits too.
	huge := backupResult{Error: truncate(strings.Repeat("é", 5000), maxErrorText)}
	if n := len(encodeResult(huge)); n > maxResult {
		t.Fatalf("an error result of %d bytes", n)
	}
}
