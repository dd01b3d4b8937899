// Package cli is `kubectl buytracker`: its arguments, its commands, and the
// clients they use (the API server with the user's kubeconfig, and the
// members' admin APIs through port-forwards).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/buytracker/buytracker/cmd/kubectl-buytracker/internal/podconn"
)

// options hold every command's flags; each command binds its own.
type options struct {
	output      string        // status: table or json
	to          string        // transfer-leader
	member      string        // snapshot
	since       time.Duration // logs
	tail        int64         // logs
	follow      bool          // logs
	backupName  string        // backup
	wait        bool          // backup
	waitTimeout time.Duration // backup
}

// command is one subcommand: it takes exactly one argument, the
// BuyTracker's name.
type command struct {
	name, summary, usage string
	flags                func(*pflag.FlagSet, *options)
	check                func(*options) error
	run                  func(ctx context.Context, e *session, name string) error
}

var commands = []command{
	{
		name: "status", usage: "status NAME [-o table|json]",
		summary: "members, leader, term, indexes, lag, readiness, conditions and last backup",
		flags: func(fs *pflag.FlagSet, o *options) {
			fs.StringVarP(&o.output, "output", "o", "table", "table or json")
		},
		check: func(o *options) error {
			if o.output != "table" && o.output != "json" {
				return fmt.Errorf("--output must be table or json, not %q", o.output)
			}
			return nil
		},
		run: runStatus,
	},
	{
		name: "transfer-leader", usage: "transfer-leader NAME [--to MEMBER]",
		summary: "move leadership to MEMBER, or to the most up-to-date voter",
		flags: func(fs *pflag.FlagSet, o *options) {
			fs.StringVar(&o.to, "to", "", "the voter to lead (default: Raft picks the most up-to-date one)")
		},
		run: runTransferLeader,
	},
	{
		name: "snapshot", usage: "snapshot NAME [--member MEMBER]",
		summary: "take a Raft snapshot on every member, one after another, or on MEMBER only",
		flags: func(fs *pflag.FlagSet, o *options) {
			fs.StringVar(&o.member, "member", "", "the member (pod) to snapshot (default: every member)")
		},
		run: runSnapshot,
	},
	{
		name: "logs", usage: "logs NAME [--since DURATION] [--tail N] [-f]",
		summary: "every member's node log, each line tagged with the member's name",
		flags: func(fs *pflag.FlagSet, o *options) {
			fs.DurationVar(&o.since, "since", 0, "only lines newer than this (e.g. 10m); 0: all")
			fs.Int64Var(&o.tail, "tail", -1, "only the last N lines of each member; -1: all")
			fs.BoolVarP(&o.follow, "follow", "f", false, "keep streaming new lines until interrupted")
		},
		check: func(o *options) error {
			if o.since < 0 {
				return fmt.Errorf("--since must not be negative, got %s", o.since)
			}
			if o.tail < -1 {
				return fmt.Errorf("--tail must be -1 (all) or more, got %d", o.tail)
			}
			return nil
		},
		run: runLogs,
	},
	{
		name: "backup", usage: "backup NAME [--name BACKUP] [--wait] [--wait-timeout DURATION]",
		summary: "create a BuyTrackerBackup; with --wait, wait until it completes or fails",
		flags: func(fs *pflag.FlagSet, o *options) {
			fs.StringVar(&o.backupName, "name", "", "the BuyTrackerBackup's name (default: NAME-<yyyymmddhhmmss>)")
			fs.BoolVar(&o.wait, "wait", false, "wait until the backup is Completed or Failed")
			fs.DurationVar(&o.waitTimeout, "wait-timeout", 10*time.Minute, "how long --wait waits")
		},
		check: checkBackupFlags,
		run:   runBackup,
	},
}

// Overrides replace what the plugin would otherwise build from the user's
// kubeconfig; tests give an API server's config and dial node processes
// directly.
type Overrides struct {
	Config *rest.Config
	Dialer podconn.Dialer
	// Now is the clock for default backup names.
	Now func() time.Time
}

// session is what a command runs with.
type session struct {
	kube           *kube
	opts           *options
	stdout, stderr io.Writer
	now            func() time.Time
}

// usageError is a mistake in the arguments: Main prints the usage after it.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Main runs the plugin; it returns the process's exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if err := Run(ctx, args, stdout, stderr, Overrides{}); err != nil {
		fmt.Fprintln(stderr, "error:", err)
		if ue := (*usageError)(nil); errors.As(err, &ue) {
			fmt.Fprint(stderr, "\n", usage())
		}
		return 1
	}
	return 0
}

// Run parses args and runs the command they name.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, ov Overrides) error {
	cmd, rest, err := findCommand(args)
	if err != nil {
		return err
	}
	if cmd == nil {
		_, err := io.WriteString(stdout, usage())
		return err
	}
	var (
		o        options
		fs       = pflag.NewFlagSet("kubectl buytracker "+cmd.name, pflag.ContinueOnError)
		loading  = clientcmd.NewDefaultClientConfigLoadingRules()
		override = &clientcmd.ConfigOverrides{}
	)
	fs.SetOutput(io.Discard)
	fs.StringVar(&loading.ExplicitPath, "kubeconfig", "", "the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	clientcmd.BindOverrideFlags(override, fs, clientcmd.RecommendedConfigOverrideFlags(""))
	cmd.flags(fs, &o)
	help := fs.BoolP("help", "h", false, "this help")
	if err := fs.Parse(rest); err != nil {
		return usageErrorf("%s: %v", cmd.name, err)
	}
	if *help {
		_, err := fmt.Fprintf(stdout, "kubectl buytracker %s\n  %s\n\nFlags:\n%s", cmd.usage, cmd.summary, fs.FlagUsages())
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("%s takes one argument, the BuyTracker's name, got %d: kubectl buytracker %s", cmd.name, fs.NArg(), cmd.usage)
	}
	name := fs.Arg(0)
	if cmd.check != nil {
		if err := cmd.check(&o); err != nil {
			return usageErrorf("%s: %v", cmd.name, err)
		}
	}

	config, namespace := ov.Config, override.Context.Namespace
	if config == nil {
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, override)
		if config, err = cc.ClientConfig(); err != nil {
			return fmt.Errorf("load kubeconfig: %w", err)
		}
		if namespace, _, err = cc.Namespace(); err != nil {
			return fmt.Errorf("namespace from kubeconfig: %w", err)
		}
	}
	if namespace == "" {
		namespace = "default"
	}
	k, err := newKube(config, namespace, ov.Dialer)
	if err != nil {
		return err
	}
	defer k.Close()
	now := ov.Now
	if now == nil {
		now = time.Now
	}
	return cmd.run(ctx, &session{kube: k, opts: &o, stdout: stdout, stderr: stderr, now: now}, name)
}

// findCommand returns the command args name and the args without it: the
// first argument that is a command's name. No command (or help) returns
// nil; an unknown first word is an error.
func findCommand(args []string) (*command, []string, error) {
	for i, a := range args {
		if a == "help" || a == "-h" || a == "--help" {
			return nil, nil, nil
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		for j := range commands {
			if commands[j].name == a {
				return &commands[j], slices.Concat(args[:i], args[i+1:]), nil
			}
		}
		// The value of a flag before the command (-n shop status ...).
		if i > 0 && strings.HasPrefix(args[i-1], "-") && !strings.Contains(args[i-1], "=") {
			continue
		}
		return nil, nil, usageErrorf("unknown command %q", a)
	}
	if len(args) == 0 {
		return nil, nil, nil
	}
	return nil, nil, usageErrorf("no command given")
}

func usage() string {
	b := &strings.Builder{}
	b.WriteString("kubectl buytracker: operate a BuyTracker (docs/plugin.md).\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(b, "  kubectl buytracker %s\n      %s\n", c.usage, c.summary)
	}
	b.WriteString("\nEvery command takes kubectl's connection flags (--kubeconfig, --context, -n/--namespace, ...).\n" +
		"`kubectl buytracker COMMAND --help` lists a command's flags.\n")
	return b.String()
}
