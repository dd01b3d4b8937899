// Command report turns load-generator results (loadgen -json) into the
// Markdown tables of docs/benchmarks.md, each closed-loop figure also given
// as a ratio to the ceiling server's run of the same mode.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/buytracker/buytracker/hack/bench/result"
)

const usage = `Usage: report [-ceiling RESULT.json]... RESULT.json...
Prints a Markdown table of the runs, in the order given. A closed-loop run
whose mode matches a -ceiling run's mode (buy, stats) also shows its
throughput as a multiple of that ceiling's.

`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "report:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	var ceilingFiles []string
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.Func("ceiling", "a ceiling server's result (repeatable, one per mode)", func(path string) error {
		ceilingFiles = append(ceilingFiles, path)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no results given")
	}
	ceilings := ceilingsByMode{}
	for _, path := range ceilingFiles {
		r, err := result.ReadFile(path)
		if err != nil {
			return err
		}
		ceilings[r.Mode] = r
	}
	runs := make([]*result.Run, 0, fs.NArg())
	for _, path := range fs.Args() {
		r, err := result.ReadFile(path)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	return writeTables(stdout, runs, ceilings)
}
