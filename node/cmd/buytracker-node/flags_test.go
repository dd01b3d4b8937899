package main

import (
	"os"
	"strings"
	"testing"
)

func TestClientAuthRequiredNeedsAnAuthFile(t *testing.T) {
	base := []string{"--id=n1", "--data-dir=" + t.TempDir()}
	cases := []struct {
		name     string
		args     []string
		env      string // BUYTRACKER_CLIENT_AUTH_REQUIRED
		required bool
		refusal  string // empty: accepted
	}{
		{"off by default", nil, "", false, ""},
		{"the flag with a file", []string{"--client-auth-required", "--client-auth-file=auth.json"}, "", true, ""},
		{"the environment with a file", []string{"--client-auth-file=auth.json"}, "true", true, ""},
		{"the flag overrides the environment", []string{"--client-auth-required=false"}, "true", false, ""},
		{"the flag without a file", []string{"--client-auth-required"}, "", false, "--client-auth-required needs --client-auth-file"},
		{"the environment without a file", nil, "1", false, "--client-auth-required needs --client-auth-file"},
		{"not a boolean in the environment", nil, "sometimes", false, "BUYTRACKER_CLIENT_AUTH_REQUIRED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("BUYTRACKER_CLIENT_AUTH_REQUIRED", tc.env) // restored after the test
			if tc.env == "" {
				// Unset, not empty: an empty value would be parsed.
				os.Unsetenv("BUYTRACKER_CLIENT_AUTH_REQUIRED")
			}
			o, err := parseFlags(append(append([]string{}, base...), tc.args...))
			if tc.refusal != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refusal) {
					t.Fatalf("parseFlags = %v, want a refusal saying %q", err, tc.refusal)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if o.clientAuthRequired != tc.required {
				t.Fatalf("clientAuthRequired = %v, want %v", o.clientAuthRequired, tc.required)
			}
		})
	}
}

func TestRestoreFromNeedsTheInitialCluster(t *testing.T) {
	base := []string{"--id=n1", "--data-dir=" + t.TempDir(), "--restore-from=b.backup"}
	if _, err := parseFlags(base); err == nil || !strings.Contains(err.Error(), "--restore-from needs --initial-cluster") {
		t.Fatalf("parseFlags without --initial-cluster = %v, want a refusal", err)
	}
	o, err := parseFlags(append(base, "--initial-cluster=n1=127.0.0.1:7001"))
	if err != nil || o.restoreFrom != "b.backup" {
		t.Fatalf("parseFlags = %+v, %v", o, err)
	}
}
