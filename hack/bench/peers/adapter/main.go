// Command adapter serves buytracker's client API (POST /buy, GET /stats,
// GET /health) in front of one of buytracker's peers: PostgreSQL, Redis or
// etcd. Every peer gets this same HTTP layer, so a benchmark of the
// adapters compares the stores, not their HTTP servers.
//
// With -preload N it records N synthetic purchases through the peer's own
// bulk path instead, prints the run as loadgen JSON, and exits.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/buytracker/buytracker/hack/bench/result"
	httpserve "github.com/buytracker/buytracker/hack/bench/serve"
)

const usage = `Usage: adapter -backend postgres|redis|etcd [-addr HOST:PORT] [-postgres DSN]
               [-redis HOST:PORT] [-etcd URL,URL,...] [-conns N] [-request-timeout D]
       adapter -backend ... -preload N [-preload-limit D] [-label TEXT]

`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "adapter:", err)
		os.Exit(1)
	}
}

type config struct {
	backend        string
	addr           string
	postgresDSN    string
	redisAddr      string
	etcdEndpoints  string
	conns          int
	requestTimeout time.Duration
	preload        int64
	preloadLimit   time.Duration
	label          string
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("adapter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.backend, "backend", "", "postgres, redis or etcd")
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:27090", "HTTP listen address")
	fs.StringVar(&cfg.postgresDSN, "postgres", "postgres://bench@127.0.0.1:27432/postgres", "PostgreSQL connection string")
	fs.StringVar(&cfg.redisAddr, "redis", "127.0.0.1:27379", "Redis address")
	fs.StringVar(&cfg.etcdEndpoints, "etcd", "http://127.0.0.1:27301,http://127.0.0.1:27302,http://127.0.0.1:27303", "etcd client URLs, comma-separated")
	fs.IntVar(&cfg.conns, "conns", 64, "connections to PostgreSQL or Redis (etcd multiplexes one)")
	fs.DurationVar(&cfg.requestTimeout, "request-timeout", 10*time.Second, "deadline of one request's work in the backend")
	fs.Int64Var(&cfg.preload, "preload", 0, "record this many purchases through the backend's bulk path, print the run as JSON, and exit")
	fs.DurationVar(&cfg.preloadLimit, "preload-limit", 300*time.Second, "time allowed for -preload")
	fs.StringVar(&cfg.label, "label", "", "name of the preload run in the report")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	case cfg.backend != "postgres" && cfg.backend != "redis" && cfg.backend != "etcd":
		return config{}, fmt.Errorf("-backend %q: want postgres, redis or etcd", cfg.backend)
	case cfg.conns < 1:
		return config{}, errors.New("-conns must be at least 1")
	case cfg.requestTimeout <= 0 || cfg.preloadLimit <= 0:
		return config{}, errors.New("-request-timeout and -preload-limit must be positive")
	case cfg.preload < 0:
		return config{}, errors.New("-preload must not be negative")
	}
	return cfg, nil
}

func openBackend(ctx context.Context, cfg config) (backend, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch cfg.backend {
	case "postgres":
		return newPostgresBackend(ctx, cfg.postgresDSN, int32(cfg.conns))
	case "redis":
		return newRedisBackend(ctx, cfg.redisAddr, cfg.conns)
	default:
		return newEtcdBackend(ctx, strings.Split(cfg.etcdEndpoints, ","))
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("backend", cfg.backend)
	b, err := openBackend(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.close()
	if cfg.preload > 0 {
		return preload(ctx, cfg, b, stdout, log)
	}
	return serve(ctx, cfg, b, log)
}

// preload runs the bulk path and prints it as a loadgen result, so the
// report reads it like an HTTP preload.
func preload(ctx context.Context, cfg config, b backend, stdout io.Writer, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.preloadLimit)
	defer cancel()
	start := time.Now()
	done, err := b.preload(ctx, cfg.preload, start)
	elapsed := time.Since(start)
	run := &result.Run{
		Label: cfg.label, Mode: "preload", Mix: "bulk", Loop: "bulk",
		Targets: []string{cfg.backend}, Conns: 1,
		DurationS: elapsed.Seconds(), Requests: done, Successes: done,
	}
	if elapsed > 0 {
		run.Throughput = float64(done) / elapsed.Seconds()
	}
	log.Info("Preloaded", "purchases", done, "of", cfg.preload, "seconds", elapsed.Seconds())
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if encErr := enc.Encode(run); encErr != nil {
		return fmt.Errorf("writing the result: %w", encErr)
	}
	if err != nil {
		return fmt.Errorf("preload recorded %d of %d purchases: %w", done, cfg.preload, err)
	}
	return nil
}

func serve(ctx context.Context, cfg config, b backend, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	s := &server{backend: b, timeout: cfg.requestTimeout, now: time.Now, log: log}
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	log.Info("Adapter listening", "addr", ln.Addr().String())
	if err := httpserve.Run(ctx, srv, ln, 10*time.Second); err != nil {
		return err
	}
	if ac, ok := b.(attemptCounter); ok {
		attempts, successes := ac.attempts()
		log.Info("Stopped", "attempts", attempts, "successes", successes)
	}
	return nil
}
