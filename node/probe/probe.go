// Package probe answers GET /health and GET /ready. Both listeners serve
// them (the admin listener without its token), so that Kubernetes' probes,
// pointed at the admin port, still get an answer while the client listener
// is flooded.
package probe

import (
	"encoding/json"
	"net/http"

	"github.com/buytracker/buytracker/node/ledger"
)

// Node is what the probes ask a node.
type Node interface {
	ID() string
	Ready() (bool, string)
	Leader() (ledger.NodeInfo, bool)
}

// Health answers 200 while the process serves (liveness).
func Health(n Node) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": n.ID()})
	}
}

// Ready answers 200 when the node is a member that knows a leader and has
// caught up with it, else 503 with the reason (readiness).
func Ready(n Node) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if ok, reason := n.Ready(); !ok {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "not_ready", "message": reason}})
			return
		}
		leader, _ := n.Leader()
		writeJSON(w, http.StatusOK, map[string]any{"ready": true, "node": n.ID(), "leader": leader.ID})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
