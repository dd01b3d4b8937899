// Package admin serves a node's admin API (membership and status) on its own
// listener, behind a bearer token: the operator's API. Only /health and
// /ready answer without the token. Members never call it; they talk over the
// peer channel (node/peer). Wire types and the client live in node/adminapi.
package admin

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/forward"
	"github.com/buytracker/buytracker/node/ledger"
	"github.com/buytracker/buytracker/node/probe"
	"github.com/buytracker/buytracker/node/store"
)

// Store is what the admin API needs from a node.
type Store interface {
	ID() string
	Leader() (ledger.NodeInfo, bool)
	Status() adminapi.Status
	Cluster() (*adminapi.Cluster, error)
	AddMember(id, address string) (uint64, error)
	RemoveMember(id string) (uint64, error)
	TransferLeadership(target string) error
	Snapshot() (uint64, error)
	Backup(ctx context.Context, c store.Consistency) (*ledger.Capture, error)
	Ready() (bool, string)
	RecoverQuorum(ctx context.Context, lastIndex uint64) (adminapi.RecoverResult, error)
}

// Server is the admin API of one node.
type Server struct {
	store     Store
	token     []byte
	logger    *slog.Logger
	forwarder *forward.Forwarder
	mux       *http.ServeMux
	// probes are served without the token: Kubernetes' probes use the
	// admin port, which keeps answering while the client port is flooded.
	probes *http.ServeMux
}

// New returns the admin API handler. token must not be empty. forwardTLS
// is used to forward requests to the leader's admin API over HTTPS (nil when
// the admin APIs speak plain HTTP).
func New(st Store, token string, logger *slog.Logger, forwardTLS *tls.Config) (*Server, error) {
	if token == "" {
		return nil, errors.New("admin API: a bearer token is required")
	}
	s := &Server{store: st, token: []byte(token), logger: logger, forwarder: forward.New(st.ID(), forwardTLS), mux: http.NewServeMux(), probes: http.NewServeMux()}
	s.probes.HandleFunc("GET /health", probe.Health(st))
	s.probes.HandleFunc("GET /ready", probe.Ready(st))
	s.mux.HandleFunc("GET /status", s.handleStatus)
	s.mux.HandleFunc("GET /cluster", s.handleCluster)
	s.mux.HandleFunc("POST /cluster/members", s.handleAddMember)
	s.mux.HandleFunc("DELETE /cluster/members/{id}", s.handleRemoveMember)
	s.mux.HandleFunc("POST /cluster/leadership-transfer", s.handleTransfer)
	s.mux.HandleFunc("POST /cluster/recover", s.handleRecover)
	s.mux.HandleFunc("POST /snapshot", s.handleSnapshot)
	s.mux.HandleFunc("GET /backup", s.handleBackup)
	// Profiles, behind the same token, for diagnosing a live node.
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return s, nil
}

// ServeHTTP answers the probes, or checks the bearer token and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, pattern := s.probes.Handler(r); pattern != "" {
		h.ServeHTTP(w, r)
		return
	}
	given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(given), s.token) != 1 {
		writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Close releases pooled connections to peers.
func (s *Server) Close() { s.forwarder.Close() }

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.store.Status())
}

func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	// The leader knows the configuration that is being committed; anyone
	// else answers with its own view when there is no leader.
	if s.forwardToLeader(w, r, nil) {
		return
	}
	c, err := s.store.Cluster()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	var req adminapi.AddMemberRequest
	body, ok := decodeBody(w, r, &req)
	if !ok {
		return
	}
	if req.ID == "" || req.Address == "" {
		writeError(w, http.StatusBadRequest, "invalid_member", "id and address are required")
		return
	}
	index, err := s.store.AddMember(req.ID, req.Address)
	s.answer(w, r, body, index, err, "member "+req.ID+" added as non-voter; it is promoted once caught up")
}

func (s *Server) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	index, err := s.store.RemoveMember(id)
	s.answer(w, r, nil, index, err, "member "+id+" removed")
}

func (s *Server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	var req adminapi.TransferRequest
	body, ok := decodeBody(w, r, &req)
	if !ok {
		return
	}
	err := s.store.TransferLeadership(req.ID)
	s.answer(w, r, body, 0, err, "leadership transferred")
}

// handleRecover makes this node the only voter after a lost quorum. It is
// never forwarded: it is asked of one node, the survivor the caller chose.
func (s *Server) handleRecover(w http.ResponseWriter, r *http.Request) {
	var req adminapi.RecoverRequest
	body, ok := decodeBody(w, r, &req)
	if !ok {
		return
	}
	if len(strings.TrimSpace(string(body))) == 0 || req.LastIndex == 0 {
		writeError(w, http.StatusBadRequest, "invalid_recover", "last_index, the survivor's last log index as observed, is required")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	res, err := s.store.RecoverQuorum(ctx, req.LastIndex)
	var refusal *store.RecoveryRefusal
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.As(err, &refusal):
		writeJSON(w, http.StatusConflict, adminapi.RecoverRefusal{
			Error:     adminapi.ErrorDetail{Code: "recover_refused", Message: refusal.Reason},
			LastIndex: refusal.LastIndex,
		})
	case errors.Is(err, store.ErrNoLeader), errors.Is(err, store.ErrRecoveryRunning):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "recover_pending", err.Error())
	default:
		s.logger.Error("Recovery from a lost quorum failed", "last_index", req.LastIndex, "error", err)
		writeError(w, http.StatusInternalServerError, "recover_failed", err.Error())
	}
}

// handleSnapshot makes this node (not the leader: each node compacts its
// own log) take a snapshot now.
func (s *Server) handleSnapshot(w http.ResponseWriter, _ *http.Request) {
	index, err := s.store.Snapshot()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "snapshot_failed", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, adminapi.Result{Index: index, Message: "snapshot taken"})
}

// answer writes the outcome of a change, forwarding to the leader when this
// node is not it.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, body []byte, index uint64, err error, message string) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, adminapi.Result{Index: index, Message: message})
	case errors.Is(err, store.ErrNotLeader):
		if !s.forwardToLeader(w, r, body) {
			writeError(w, http.StatusServiceUnavailable, "not_leader", "this node is not the leader and could not reach it")
		}
	case errors.Is(err, store.ErrNoLeader):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "no_leader", "no leader right now; retry")
	case errors.Is(err, store.ErrTransferFailed):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "transfer_failed", err.Error())
	case errors.Is(err, store.ErrInvalidTarget):
		writeError(w, http.StatusBadRequest, "invalid_target", err.Error())
	default:
		s.logger.Warn("Admin request failed", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// forwardToLeader forwards r when another node leads and r was not itself
// forwarded; it reports whether an answer was written.
func (s *Server) forwardToLeader(w http.ResponseWriter, r *http.Request, body []byte) bool {
	if forward.WasForwarded(r) {
		return false
	}
	leader, ok := s.store.Leader()
	if !ok || leader.ID == s.store.ID() || leader.AdminURL == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	if err := s.forwarder.Forward(w, r.WithContext(ctx), leader.AdminURL, body); err != nil {
		s.logger.Warn("Forwarding an admin request to the leader failed", "leader", leader.ID, "error", err)
		return false
	}
	return true
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the body must be at most 64 KiB")
		return nil, false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return body, true // every field is optional for some calls; checked by the caller
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body is not the expected JSON object: "+err.Error())
		return nil, false
	}
	return body, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: code, Message: message}})
}
