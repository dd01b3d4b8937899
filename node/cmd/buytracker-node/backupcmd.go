package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/buytracker/buytracker/node/backup"
	"github.com/buytracker/buytracker/node/backupstore"
)

// The backup agent: `buytracker-node backup take|fetch|verify|delete`
// (docs/node.md). Each subcommand prints one JSON result on stdout, and in
// --result-file, and exits with a code its caller (the operator's Jobs)
// acts on.

// Exit codes of the backup subcommands.
const (
	exitOK         = 0
	exitFailed     = 1 // anything else, worth retrying
	exitUsage      = 2
	exitInvalid    = 3 // read, but corrupt, truncated or the wrong checksum
	exitUnreadable = 4 // not found, access denied, unreachable
)

const (
	// maxResult bounds the result: Kubernetes keeps 4096 bytes of a
	// container's termination message.
	maxResult = 4095
	// maxErrorText bounds the error message inside it.
	maxErrorText = 1024
	// maxPrunes bounds the --prune locations of one take.
	maxPrunes = 64
)

const backupUsage = `usage:
  buytracker-node backup take   --admin-url=URL --admin-token-file=FILE [--ca-file=FILE]
                                --to=LOCATION [--prune=LOCATION]... [--result-file=FILE] [--timeout=DUR]
  buytracker-node backup fetch  --from=LOCATION --to=FILE [--checksum=HEX] [--skip-if-data-dir=DIR]
                                [--result-file=FILE] [--timeout=DUR]
  buytracker-node backup verify --from=LOCATION [--checksum=HEX] [--result-file=FILE] [--timeout=DUR]
  buytracker-node backup delete --at=LOCATION [--result-file=FILE] [--timeout=DUR]
LOCATION is an absolute path or s3://BUCKET/KEY; S3 settings come from BUYTRACKER_S3_ENDPOINT,
BUYTRACKER_S3_REGION, BUYTRACKER_S3_CA_FILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.`

// backupResult is what a subcommand prints. Description is set for a backup
// taken, fetched or verified.
type backupResult struct {
	Location string `json:"location,omitempty"`
	*Description
	Skipped       bool     `json:"skipped,omitempty"`
	Pruned        []string `json:"pruned,omitzero"`
	PrunedOmitted int      `json:"pruned_omitted,omitempty"`
	Deleted       []string `json:"deleted,omitempty"`
	Error         string   `json:"error,omitempty"`
	Reason        string   `json:"reason,omitempty"`
}

// Description is a backup's manifest, checksum and size: the result's
// fields, and the manifest stored beside a backup (with its location).
type Description struct {
	ClusterID string    `json:"cluster_id"`
	NodeID    string    `json:"node_id"`
	Index     uint64    `json:"index"`
	Purchases uint64    `json:"purchases"`
	CreatedAt time.Time `json:"created_at"`
	Checksum  string    `json:"checksum"`
	SizeBytes int64     `json:"size_bytes"`
}

// usageError is a mistake in the command line: exit 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// commonFlags are the flags every subcommand has.
type commonFlags struct {
	resultFile string
	timeout    time.Duration
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.resultFile, "result-file", "", "also write the JSON result to this file (the operator gives /dev/termination-log)")
	fs.DurationVar(&c.timeout, "timeout", time.Hour, "give up after this long")
}

// runBackup runs a backup subcommand and returns its exit code.
func runBackup(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	logger := slog.New(slog.NewJSONHandler(stderr, nil)).With("component", "backup-agent")
	var common commonFlags
	if len(args) == 0 {
		fmt.Fprintln(stderr, backupUsage)
		return finish(stdout, stderr, "", backupResult{}, usagef("a subcommand is needed: take, fetch, verify or delete"))
	}
	sub := args[0]
	fs := flag.NewFlagSet("buytracker-node backup "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, backupUsage) }
	common.register(fs)
	var op func(ctx context.Context) (backupResult, error)
	switch sub {
	case "take":
		op = takeFlags(fs, logger, getenv)
	case "fetch":
		op = fetchFlags(fs, logger, getenv)
	case "verify":
		op = verifyFlags(fs, logger, getenv)
	case "delete":
		op = deleteFlags(fs, logger, getenv)
	default:
		fmt.Fprintln(stderr, backupUsage)
		return finish(stdout, stderr, "", backupResult{}, usagef("unknown backup subcommand %q: take, fetch, verify or delete", sub))
	}
	if err := fs.Parse(args[1:]); err != nil {
		return finish(stdout, stderr, common.resultFile, backupResult{}, usageError{err})
	}
	if fs.NArg() > 0 {
		return finish(stdout, stderr, common.resultFile, backupResult{}, usagef("unexpected arguments %q", fs.Args()))
	}
	if common.timeout <= 0 || common.timeout > 7*24*time.Hour {
		return finish(stdout, stderr, common.resultFile, backupResult{}, usagef("--timeout must be above 0 and at most 168h, not %s", common.timeout))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, common.timeout)
	defer cancel()
	res, err := op(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("--timeout %s passed: %w", common.timeout, err)
	}
	return finish(stdout, stderr, common.resultFile, res, err)
}

// finish prints the result (or the error) and returns the exit code.
func finish(stdout, stderr io.Writer, resultFile string, res backupResult, err error) int {
	code := exitOK
	if err != nil {
		var reason string
		reason, code = classify(err)
		res = backupResult{Error: truncate(err.Error(), maxErrorText), Reason: reason}
	}
	out := encodeResult(res)
	fmt.Fprintln(stdout, string(out))
	if resultFile != "" {
		if werr := os.WriteFile(resultFile, out, 0o644); werr != nil {
			fmt.Fprintf(stderr, "buytracker-node backup: write --result-file: %v\n", werr)
			if code == exitOK {
				code = exitFailed
			}
		}
	}
	return code
}

// classify maps an error to its reason and exit code.
func classify(err error) (string, int) {
	var usage usageError
	switch {
	case errors.As(err, &usage), errors.Is(err, backupstore.ErrInvalidLocation):
		return "failed", exitUsage
	case errors.Is(err, backup.ErrInvalid):
		return "invalid", exitInvalid
	case errors.Is(err, backupstore.ErrUnreadable):
		return "unreadable", exitUnreadable
	}
	return "failed", exitFailed
}

// encodeResult marshals res within maxResult bytes, leaving out pruned
// locations (counted in pruned_omitted) when there are too many to fit.
func encodeResult(res backupResult) []byte {
	for {
		out, err := json.Marshal(res)
		if err != nil { // only plain fields: cannot happen
			out = []byte(`{"error":"encode the result","reason":"failed"}`)
		}
		if len(out) <= maxResult || len(res.Pruned) == 0 {
			return out
		}
		res.Pruned = res.Pruned[:len(res.Pruned)-1]
		res.PrunedOmitted++
	}
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-3]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// parseLocationFlag parses a required LOCATION flag.
func parseLocationFlag(name, value string) (backupstore.Location, error) {
	if value == "" {
		return backupstore.Location{}, usagef("--%s is required", name)
	}
	loc, err := backupstore.ParseLocation(value)
	if err != nil {
		return backupstore.Location{}, fmt.Errorf("--%s: %w", name, err)
	}
	return loc, nil
}

// parseChecksumFlag checks a --checksum value: a hex SHA-256, or empty.
func parseChecksumFlag(v string) (string, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return "", nil
	}
	if len(v) != 64 || strings.Trim(v, "0123456789abcdef") != "" {
		return "", usagef("--checksum must be a hex SHA-256 (64 digits), not %q", truncate(v, 80))
	}
	return v, nil
}

// locationList is a repeatable LOCATION flag.
type locationList []string

func (l *locationList) String() string { return strings.Join(*l, ",") }
func (l *locationList) Set(v string) error {
	if len(*l) == maxPrunes {
		return fmt.Errorf("at most %d", maxPrunes)
	}
	*l = append(*l, v)
	return nil
}
