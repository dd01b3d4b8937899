// Command loadgen drives buytracker's client API (or the ceiling server)
// and reports throughput and latency percentiles.
//
// Closed loop (-conns N): N workers, each on its own keep-alive connection,
// send the next request when the last one answered: this finds the most a
// server sustains. Open loop (-rate R): requests leave on a fixed schedule
// whatever the answers, latency counted from each request's scheduled time:
// this replays a known offered load. -preload N records N purchases as fast
// as it can.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/buytracker/buytracker/hack/bench/result"
)

const usage = `Usage: loadgen -url URL[,URL...] [-mode buy|stats|health|mix] [-conns N | -rate R]
               [-duration D] [-warmup D] [-mix buy=60,stats=30,health=10]
               [-stats-query timeframe_hours=1] [-client raw|std] [-json] [-label TEXT]
       loadgen -url URL[,URL...] -preload N [-conns N] [-duration LIMIT]

`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// config is one run's settings, read from the flags.
type config struct {
	urls        []string
	mode        string
	mix         requestMix
	conns       int
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	timeout     time.Duration
	statsQuery  string
	preload     int64
	maxInFlight int
	seed        uint64
	label       string
	jsonOut     bool
	client      string
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var (
		cfg           config
		urls, mixSpec string
		// The single-kind modes are mixes of one.
		singleKindMixes = map[string]string{"buy": "buy=1", "stats": "stats=1", "health": "health=1"}
	)
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&urls, "url", "http://127.0.0.1:8080", "base URL of the client API; several, comma-separated, share the load round-robin")
	fs.StringVar(&cfg.mode, "mode", "buy", "buy, stats, health, or mix (proportions from -mix)")
	fs.StringVar(&mixSpec, "mix", "buy=60,stats=30,health=10", "request proportions for -mode mix")
	fs.IntVar(&cfg.conns, "conns", 64, "closed loop: concurrent workers; open loop: connections per target at most")
	fs.Float64Var(&cfg.rate, "rate", 0, "open loop: requests per second on a fixed schedule (0: closed loop)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time after the warm-up; with -preload, the time limit")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "load sent before measuring starts")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "deadline of one request")
	fs.StringVar(&cfg.statsQuery, "stats-query", "timeframe_hours=1", "query string of GET /stats")
	fs.Int64Var(&cfg.preload, "preload", 0, "record this many purchases as fast as possible, then report the rate")
	fs.IntVar(&cfg.maxInFlight, "max-inflight", 10_000, "open loop: requests allowed to wait at once")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the random purchases and of the mix")
	fs.StringVar(&cfg.label, "label", "", "name of this run in the report")
	fs.StringVar(&cfg.client, "client", "raw", "raw: a minimal HTTP/1.1 client that costs little CPU; std: net/http's client")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the result as JSON on stdout (the summary still goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for u := range strings.SplitSeq(urls, ",") {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if parsed, err := url.Parse(u); err != nil || parsed.Scheme == "" || parsed.Host == "" {
			return config{}, fmt.Errorf("-url %q: want a base URL such as http://127.0.0.1:8080", u)
		}
		cfg.urls = append(cfg.urls, u)
	}
	if cfg.preload > 0 {
		if cfg.rate > 0 {
			return config{}, errors.New("-preload and -rate exclude each other")
		}
		cfg.mode = "preload"
		mixSpec = "buy=1"
	} else if spec, ok := singleKindMixes[cfg.mode]; ok {
		mixSpec = spec
	} else if cfg.mode != "mix" {
		return config{}, fmt.Errorf("-mode %q: want buy, stats, health or mix", cfg.mode)
	}
	mix, err := parseMix(mixSpec)
	if err != nil {
		return config{}, fmt.Errorf("-mix: %w", err)
	}
	cfg.mix = mix
	switch {
	case cfg.conns < 1:
		return config{}, errors.New("-conns must be at least 1")
	case cfg.rate < 0:
		return config{}, errors.New("-rate must not be negative")
	case cfg.duration <= 0:
		return config{}, errors.New("-duration must be positive")
	case cfg.warmup < 0:
		return config{}, errors.New("-warmup must not be negative")
	case cfg.client != "raw" && cfg.client != "std":
		return config{}, fmt.Errorf("-client %q: want raw or std", cfg.client)
	case cfg.maxInFlight < 1:
		return config{}, errors.New("-max-inflight must be at least 1")
	}
	return cfg, nil
}

// newRun starts a result with the settings of cfg.
func (cfg config) newRun(loop string) *result.Run {
	return &result.Run{
		Label:   cfg.label,
		Mode:    cfg.mode,
		Mix:     cfg.mix.String(),
		Loop:    loop,
		Targets: slices.Clone(cfg.urls),
		Conns:   cfg.conns,
		WarmupS: cfg.warmup.Seconds(),
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	s := newSender(cfg)
	defer s.close()

	var res *result.Run
	var runErr error
	wallStart, cpuStart := time.Now(), processCPU()
	switch {
	case cfg.preload > 0:
		res, runErr = runPreload(ctx, cfg, s)
		res.WarmupS = 0
	case cfg.rate > 0:
		res = runOpen(ctx, cfg, s)
	default:
		res = runClosed(ctx, cfg, s)
	}
	if wall := time.Since(wallStart); wall > 0 {
		res.ClientCores = (processCPU() - cpuStart).Seconds() / wall.Seconds()
	}
	printSummary(stderr, res)
	if cfg.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("writing the result: %w", err)
		}
	}
	if runErr != nil {
		return runErr
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stopped before the end: %w", ctx.Err())
	}
	return nil
}
