package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes is the largest POST /buy body accepted, as on the node.
const maxBodyBytes = 64 << 10

// maxTimeframeHours is the longest GET /stats window, as on the node.
const maxTimeframeHours = 87600

// server is the HTTP layer every peer shares: it decodes requests, gives
// each a deadline, and answers in the node's JSON.
type server struct {
	backend backend
	// timeout bounds one request's work in the backend.
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /buy", s.handleBuy)
	mux.HandleFunc("GET /stats", s.handleStats)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /adapter/counters", s.handleCounters)
	return mux
}

func (s *server) handleBuy(w http.ResponseWriter, r *http.Request) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mediaType != "application/json" && !strings.HasSuffix(mediaType, "+json")) {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "", "the body must be JSON (Content-Type: application/json)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "", "the body must be at most 64 KiB")
			return
		}
		writeError(w, http.StatusBadRequest, "unreadable_body", "", err.Error())
		return
	}
	p, err := decodePurchase(body, remoteIP(r))
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		writeError(w, http.StatusBadRequest, "invalid_purchase", fe.field, fe.message)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	rec, err := s.backend.buy(ctx, p, s.now())
	if err != nil {
		s.backendFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		Success bool `json:"success"`
		receipt
	}{true, rec})
}

func (s *server) handleStats(w http.ResponseWriter, r *http.Request) {
	hours := 1.0
	if text := r.URL.Query().Get("timeframe_hours"); text != "" {
		h, err := strconv.ParseFloat(text, 64)
		if err != nil || !(h > 0 && h <= maxTimeframeHours) {
			writeError(w, http.StatusBadRequest, "invalid_timeframe", "timeframe_hours", "timeframe_hours must be a number greater than 0 and at most 87600")
			return
		}
		hours = h
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	c, err := s.backend.stats(ctx, time.Duration(hours*float64(time.Hour)), s.now())
	if err != nil {
		s.backendFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		counts
		TimeframeHours float64 `json:"timeframe_hours"`
	}{c, hours})
}

func (s *server) handleCounters(w http.ResponseWriter, r *http.Request) {
	var out struct {
		Attempts  int64 `json:"attempts"`
		Successes int64 `json:"successes"`
	}
	if ac, ok := s.backend.(attemptCounter); ok {
		out.Attempts, out.Successes = ac.attempts()
	}
	writeJSON(w, http.StatusOK, out)
}

// backendFailed answers as the node does when a commit's outcome is
// unknown (504: the deadline passed) or the store refused (503).
func (s *server) backendFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		writeError(w, http.StatusGatewayTimeout, "timeout", "", "the backend did not answer in time: "+err.Error())
		return
	}
	if r.Context().Err() != nil {
		return // the client went away; nobody reads the answer
	}
	s.log.Warn("Backend failed", "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "backend_unavailable", "", err.Error())
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, field, message string) {
	type apiError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	}
	writeJSON(w, status, map[string]apiError{"error": {code, message, field}})
}
