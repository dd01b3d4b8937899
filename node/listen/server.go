package listen

import (
	"log/slog"
	"net/http"
	"time"
)

// Limits bound what one connection may hold on a server.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a client
	// trickling a body is cut off.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a whole answer: a client that reads an
	// answer slowly, or not at all, is cut off. A handler that streams for
	// longer on purpose extends it with http.ResponseController.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block; past it the answer is
	// 431.
	MaxHeaderBytes int
}

// ClientLimits are the client listener's limits. A request may wait up to
// requestTimeout for a commit and a little longer when forwarded, so the
// write timeout stays well above it.
func ClientLimits(requestTimeout time.Duration) Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      max(30*time.Second, requestTimeout+15*time.Second),
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    8 << 10,
	}
}

// AdminLimits are the admin listener's limits: bodies up to 16 MiB from
// peers, and profiles of up to 30 s (net/http/pprof refuses a profile
// longer than the write timeout).
func AdminLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

// NewServer returns a server for h with the given limits; its own errors
// (a failed TLS handshake, a panic in a handler) go to logger.
func NewServer(h http.Handler, l Limits, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
