package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

func TestFindCommandAcceptsFlagsBeforeAndAfterIt(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		command  string
		rest     []string
		errorHas string
	}{
		{args: []string{"status", "promo"}, command: "status", rest: []string{"promo"}},
		{args: []string{"-n", "shop", "status", "promo", "-o", "json"}, command: "status", rest: []string{"-n", "shop", "promo", "-o", "json"}},
		{args: []string{"--namespace=shop", "logs", "-f", "promo"}, command: "logs", rest: []string{"--namespace=shop", "-f", "promo"}},
		{args: []string{"--context", "kind", "transfer-leader", "promo", "--to", "promo-2"}, command: "transfer-leader", rest: []string{"--context", "kind", "promo", "--to", "promo-2"}},
		{args: []string{"backup", "status"}, command: "backup", rest: []string{"status"}},
		{args: nil},
		{args: []string{"help"}},
		{args: []string{"stauts", "promo"}, errorHas: `unknown command "stauts"`},
		{args: []string{"-n", "shop"}, errorHas: "no command given"},
	} {
		cmd, rest, err := findCommand(tc.args)
		switch {
		case tc.errorHas != "":
			var ue *usageError
			if err == nil || !strings.Contains(err.Error(), tc.errorHas) || !errors.As(err, &ue) {
				t.Errorf("%q: error %v, want a usage error with %q", tc.args, err, tc.errorHas)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.command == "" && cmd != nil:
			t.Errorf("%q: command %s, want none (help)", tc.args, cmd.name)
		case tc.command != "" && (cmd == nil || cmd.name != tc.command || strings.Join(rest, " ") != strings.Join(tc.rest, " ")):
			t.Errorf("%q: got %v %q, want %s %q", tc.args, cmd, rest, tc.command, tc.rest)
		}
	}
}

// TestBadArgumentsFailBeforeReachingAnyCluster runs every mistake with no
// kubeconfig at all: each must be refused by the argument checks, with a
// message that names it, before the plugin tries to connect.
func TestBadArgumentsFailBeforeReachingAnyCluster(t *testing.T) {
	t.Setenv("KUBECONFIG", "/nonexistent/kubeconfig")
	for _, tc := range []struct {
		args     []string
		errorHas string
	}{
		{[]string{"status"}, "status takes one argument, the BuyTracker's name, got 0"},
		{[]string{"status", "a", "b"}, "got 2"},
		{[]string{"status", "promo", "-o", "yaml"}, `--output must be table or json, not "yaml"`},
		{[]string{"status", "promo", "--to", "x"}, "unknown flag: --to"},
		{[]string{"logs", "promo", "--tail", "-2"}, "--tail must be -1 (all) or more, got -2"},
		{[]string{"logs", "promo", "--since", "-1m"}, "--since must not be negative"},
		{[]string{"logs", "promo", "--since", "soon"}, `invalid argument "soon"`},
		{[]string{"backup", "promo", "--name", "Not_A_Name"}, `--name "Not_A_Name" is not a valid object name`},
		{[]string{"backup", "promo", "--wait", "--wait-timeout", "0s"}, "--wait-timeout must be positive"},
		{[]string{"snapshot", "promo", "--member"}, "flag needs an argument: --member"},
	} {
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), tc.args, &stdout, &stderr, Overrides{})
		var ue *usageError
		if err == nil || !strings.Contains(err.Error(), tc.errorHas) || !errors.As(err, &ue) {
			t.Errorf("%q: error %v, want a usage error with %q", tc.args, err, tc.errorHas)
		}
		if stdout.Len() > 0 {
			t.Errorf("%q: wrote %q to stdout", tc.args, stdout.String())
		}
	}
}

func TestMainPrintsUsageAfterAMistakeAndExitsOne(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"stauts", "promo"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if got := stderr.String(); !strings.HasPrefix(got, "error: unknown command \"stauts\"\n") || !strings.Contains(got, "kubectl buytracker status NAME") {
		t.Errorf("stderr = %q, want the error then the usage", got)
	}
	stdout.Reset()
	if code := Main(context.Background(), []string{"snapshot", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--member string") || !strings.Contains(stdout.String(), "--kubeconfig string") {
		t.Errorf("snapshot --help: exit %d, stdout %q; want 0 and its flags", code, stdout.String())
	}
}

func TestLogOptionsFollowTheFlags(t *testing.T) {
	o := &options{tail: -1}
	if got := logOptions(o); got.Container != "node" || got.Follow || got.TailLines != nil || got.SinceSeconds != nil {
		t.Errorf("defaults = %+v, want the node container, everything, no follow", got)
	}
	o = &options{tail: 50, since: 90 * time.Second, follow: true}
	if got := logOptions(o); !got.Follow || got.TailLines == nil || *got.TailLines != 50 || got.SinceSeconds == nil || *got.SinceSeconds != 90 {
		t.Errorf("logOptions(%+v) = %+v", o, got)
	}
}

func TestTagLinesPrefixesEveryLineWhole(t *testing.T) {
	var out bytes.Buffer
	lw := &lineWriter{w: &out}
	if err := tagLines(strings.NewReader("one\ntwo\nlast without newline"), "[promo-0] ", lw); err != nil {
		t.Fatal(err)
	}
	if want := "[promo-0] one\n[promo-0] two\n[promo-0] last without newline\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestBackupNameDefaultsToTheScheduledForm(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 8, 7, 0, time.FixedZone("CET", 3600))
	if got := backupName("promo", &options{}, now); got != "promo-20261201080807" {
		t.Errorf("default name = %q, want promo-20261201080807 (UTC)", got)
	}
	if got := backupName("promo", &options{backupName: "before-upgrade"}, now); got != "before-upgrade" {
		t.Errorf("--name ignored: %q", got)
	}
}

func TestDescribeBackupSaysHowItEnded(t *testing.T) {
	done := &buytrackerv1alpha1.BuyTrackerBackup{ObjectMeta: metav1.ObjectMeta{Name: "b1"}, Status: buytrackerv1alpha1.BuyTrackerBackupStatus{
		Phase: buytrackerv1alpha1.BackupCompleted, Index: 42, Purchases: 7, Checksum: "ab12", SizeBytes: 900, Member: "promo-1"}}
	if got, want := describeBackup(done), "b1: Completed, index 42, 7 purchases, checksum ab12, 900 bytes, written by promo-1\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	failed := &buytrackerv1alpha1.BuyTrackerBackup{ObjectMeta: metav1.ObjectMeta{Name: "b2"}, Status: buytrackerv1alpha1.BuyTrackerBackupStatus{
		Phase: buytrackerv1alpha1.BackupFailed, Conditions: []metav1.Condition{{Type: buytrackerv1alpha1.BackupConditionCompleted, Reason: "JobFailed", Message: "disk full"}}}}
	if got, want := describeBackup(failed), "b2: Failed (JobFailed: disk full)\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
