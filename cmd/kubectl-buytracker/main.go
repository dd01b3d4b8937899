// Command kubectl-buytracker is the kubectl plugin `kubectl buytracker`
// (docs/plugin.md): put it on PATH and kubectl finds it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/buytracker/buytracker/cmd/kubectl-buytracker/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
