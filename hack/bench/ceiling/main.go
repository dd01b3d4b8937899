// Command ceiling is the trivial HTTP server that every buytracker figure is
// compared with: it serves the client API's routes with fixed answers and
// does nothing else, so what it sustains on a machine is the most any Go
// HTTP server could, with the same load generator beside it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/buytracker/buytracker/hack/bench/serve"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:18090", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{Handler: newHandler(), ReadHeaderTimeout: 5 * time.Second}
	slog.Info("Ceiling server listening", "addr", ln.Addr().String())
	return serve.Run(ctx, srv, ln, 5*time.Second)
}

// Fixed answers shaped like the node's, so response sizes are alike.
const (
	buyAnswer    = `{"success":true,"purchase_id":1,"total_buys":1,"recorded_at":"2026-01-01T00:00:00Z","index":1}` + "\n"
	statsAnswer  = `{"total_buys":1,"n_recent_buys":1,"timeframe_hours":1,"total_amount":"19.99","recent_amount":"19.99","index":1,"consistency":"linearizable","served_by":"ceiling","leader":"ceiling"}` + "\n"
	healthAnswer = `{"status":"ok"}` + "\n"
)

func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /buy", func(w http.ResponseWriter, r *http.Request) {
		// Read the body as a real server must before it answers.
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "reading body", http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusCreated, buyAnswer)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statsAnswer)
	})
	for _, path := range []string{"GET /health", "GET /ready"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, healthAnswer)
		})
	}
	return mux
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
