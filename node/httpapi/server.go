// Package httpapi serves a node's client API: POST /buy, GET /stats,
// GET /buys, /health, /ready and /metrics. Handlers talk to a Store, never
// to Raft; a follower forwards writes and linearizable reads to the leader.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/buytracker/buytracker/node/clientauth"
	"github.com/buytracker/buytracker/node/forward"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/probe"
	"github.com/buytracker/buytracker/node/store"
)

// Store is what the client API needs from a node.
type Store interface {
	ID() string
	Buy(ctx context.Context, p ledger.Purchase) (ledger.BuyResult, error)
	Stats(ctx context.Context, q ledger.StatsQuery, c store.Consistency) (ledger.Stats, error)
	Records(ctx context.Context, after uint64, limit int, c store.Consistency) ([]ledger.Record, error)
	Leader() (ledger.NodeInfo, bool)
	Ready() (bool, string)
}

// Options configures a Server.
type Options struct {
	// RequestTimeout bounds how long a request waits for Raft; past it a
	// write answers 504 (outcome unknown).
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// Registry receives the HTTP metrics and is served on /metrics.
	Registry *prometheus.Registry
	// Auth holds the client tokens; nil holds none, so GET /buys is
	// refused and the other routes are open.
	Auth *clientauth.Tokens
	// TrustedProxies are the addresses whose X-Forwarded-For header names
	// the client; nil trusts no one.
	TrustedProxies []netip.Prefix
}

// Server is the client API of one node.
type Server struct {
	store     Store
	opts      Options
	forwarder *forward.Forwarder
	metrics   *httpMetrics
	mux       *http.ServeMux
}

// New returns the client API handler for st.
func New(st Store, opts Options) *Server {
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &Server{store: st, opts: opts, forwarder: forward.New(st.ID(), nil), mux: http.NewServeMux()}
	s.metrics = newHTTPMetrics(opts.Registry)
	s.handle("POST /buy", s.requireRole("POST /buy", clientauth.Write, s.handleBuy))
	s.handle("GET /stats", s.requireRole("GET /stats", clientauth.Read, s.handleStats))
	s.handle("GET /buys", s.requireRole("GET /buys", clientauth.Export, s.handleBuys))
	s.handle("GET /health", probe.Health(st))
	s.handle("GET /ready", probe.Ready(st))
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: http.StatusNotFound, code: "not_found", message: "no such route: " + r.Method + " " + r.URL.Path})
	})
	return s
}

func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.mux.Handle(pattern, s.metrics.instrument(pattern, h))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close releases the pooled connections to peers.
func (s *Server) Close() { s.forwarder.Close() }

// storeError maps a store error to an answer; forwardable reports whether
// the leader should be asked instead.
func storeError(err error) (e *apiError, forwardable bool) {
	switch {
	case errors.Is(err, store.ErrNotLeader):
		return &apiError{status: http.StatusServiceUnavailable, code: "not_leader", message: "this node is not the leader and could not reach it"}, true
	case errors.Is(err, store.ErrNoLeader):
		return &apiError{status: http.StatusServiceUnavailable, code: "no_leader", message: "no leader with a quorum right now; nothing was recorded, retry"}, false
	case errors.Is(err, store.ErrDiverged):
		return &apiError{status: http.StatusServiceUnavailable, code: "node_diverged",
			message: "this node answers nothing while its state differs from another member's: " + err.Error() + "; ask another member"}, false
	case errors.Is(err, store.ErrHalted):
		return &apiError{status: http.StatusServiceUnavailable, code: "node_halted", message: "this node found a log entry that failed its checks and is out of service until it is replaced; nothing was recorded or read here, ask another node (" + err.Error() + ")"}, false
	case errors.Is(err, store.ErrOverloaded):
		return &apiError{status: http.StatusServiceUnavailable, code: "overloaded", message: "the write queue is full; nothing was recorded, retry"}, false
	case errors.Is(err, store.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: "shutting_down", message: "the node is stopping; nothing was recorded, retry"}, false
	case errors.Is(err, store.ErrClockSkew):
		return &apiError{status: http.StatusServiceUnavailable, code: "clock_skew",
			message: "nothing was recorded: " + err.Error() + "; leadership is moving to a member with a good clock, retry"}, false
	case errors.Is(err, store.ErrDiskFull):
		return &apiError{status: http.StatusInsufficientStorage, code: "insufficient_storage",
			message: "nothing was recorded: " + err.Error() + "; retry later"}, false
	case errors.Is(err, store.ErrOutcomeUnknown):
		return &apiError{status: http.StatusGatewayTimeout, code: "commit_timeout", message: "the commit was not confirmed in time; the outcome is unknown: retry with the same Idempotency-Key"}, false
	case errors.Is(err, ledger.ErrInvalidPurchase):
		// The leader's rules refused what this node's decoder accepted.
		return invalidPurchase(err), false
	case errors.Is(err, ledger.ErrIdempotencyConflict):
		return &apiError{status: http.StatusUnprocessableEntity, code: "idempotency_key_reused", message: "this Idempotency-Key was already used for a different purchase"}, false
	default:
		return &apiError{status: http.StatusInternalServerError, code: "internal", message: err.Error()}, false
	}
}
