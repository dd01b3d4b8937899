// Command compare turns the runs of hack/bench/peers/run.sh into the
// Markdown tables and the SVG plot of docs/benchmarks-peers.md: every load
// on every system, each round side by side, each peer's throughput as a
// multiple of the baseline's (buytracker's) in the same round.
//
// It reads DIR/r<round>/<system>/<load>.json, files written by
// hack/bench/loadgen -json (or by the adapter's -preload).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/buytracker/buytracker/hack/bench/result"
)

const usage = `Usage: compare -results DIR -systems BASELINE,PEER,... -load KEY=NAME... [-preload KEY]
               [-tables loads,preload] [-svg FILE]
Prints Markdown tables of DIR/r<round>/<system>/<load>.json, loads in the
order of the -load flags, and writes the plot to FILE.

`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "compare:", err)
		}
		os.Exit(1)
	}
}

// load is one kind of run every system went through.
type load struct {
	key string // file name without .json
	// name is the short name of the plot's axis; the table uses the run's
	// own label.
	name string
}

// measurements holds every run found: by load key, then system, then round
// (index 0 is round 1); a run that is missing is nil.
type measurements struct {
	rounds  int
	systems []string
	runs    map[string]map[string][]*result.Run
}

func (m *measurements) get(loadKey, system string) []*result.Run {
	return m.runs[loadKey][system]
}

// readMeasurements loads every DIR/r<n>/<system>/<key>.json that exists.
func readMeasurements(dir string, systems []string, keys []string) (*measurements, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading results: %w", err)
	}
	var rounds []int
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "r")); err == nil && e.IsDir() && strings.HasPrefix(e.Name(), "r") && n > 0 {
			rounds = append(rounds, n)
		}
	}
	if len(rounds) == 0 {
		return nil, fmt.Errorf("no round directories (r1, r2, ...) in %s", dir)
	}
	slices.Sort(rounds)
	m := &measurements{rounds: rounds[len(rounds)-1], systems: systems, runs: map[string]map[string][]*result.Run{}}
	for _, key := range keys {
		m.runs[key] = map[string][]*result.Run{}
		for _, system := range systems {
			perRound := make([]*result.Run, m.rounds)
			for _, round := range rounds {
				path := filepath.Join(dir, fmt.Sprintf("r%d", round), system, key+".json")
				if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
					continue
				}
				r, err := result.ReadFile(path)
				if err != nil {
					return nil, err
				}
				perRound[round-1] = r
			}
			m.runs[key][system] = perRound
		}
	}
	return m, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	var (
		dir, systemList, svgPath string
		loads                    []load
		preloadKey, tables       string
	)
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&dir, "results", "", "directory of r<round>/<system>/<load>.json")
	fs.StringVar(&systemList, "systems", "buytracker,postgres,redis,etcd", "systems in order; the first is the baseline of the ratios")
	fs.Func("load", "KEY=NAME: a load's file name and its short name in the plot (repeatable, in order)", func(v string) error {
		key, name, ok := strings.Cut(v, "=")
		if !ok || key == "" || name == "" {
			return fmt.Errorf("want KEY=NAME, got %q", v)
		}
		loads = append(loads, load{key, name})
		return nil
	})
	fs.StringVar(&preloadKey, "preload", "preload", "file name of the preload runs (\"\" for none)")
	fs.StringVar(&tables, "tables", "loads,preload", "tables to print: loads, preload, or both")
	fs.StringVar(&svgPath, "svg", "", "write the plot here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	systems := strings.Split(systemList, ",")
	if dir == "" || len(loads) == 0 || len(systems) < 2 {
		fs.Usage()
		return errors.New("-results, at least one -load and two -systems are needed")
	}
	keys := make([]string, 0, len(loads)+1)
	for _, l := range loads {
		keys = append(keys, l.key)
	}
	if preloadKey != "" {
		keys = append(keys, preloadKey)
	}
	m, err := readMeasurements(dir, systems, keys)
	if err != nil {
		return err
	}
	if svgPath != "" {
		svg := plot(m, loads)
		if err := os.WriteFile(svgPath, []byte(svg), 0o644); err != nil {
			return fmt.Errorf("writing the plot: %w", err)
		}
	}
	var b strings.Builder
	for i, table := range strings.Split(tables, ",") {
		if i > 0 {
			b.WriteString("\n")
		}
		switch {
		case table == "loads":
			writeLoadTable(&b, m, loads)
		case table == "preload" && preloadKey != "":
			writePreloadTable(&b, m, preloadKey)
		default:
			return fmt.Errorf("-tables: unknown table %q (or -preload is empty)", table)
		}
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}
