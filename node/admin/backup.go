package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/backup"
	"github.com/buytracker/buytracker/node/store"
)

// backupBarrierTimeout bounds the read barrier before a backup streams;
// the stream itself is bounded by backupWriteIdle between writes.
const (
	backupBarrierTimeout = 10 * time.Second
	backupWriteIdle      = 30 * time.Second
)

// handleBackup streams a backup of the ledger (node/backup's format) at the
// applied index the read barrier reached. The index and purchase count are
// headers; the checksum, known only at the end, is an HTTP trailer and the
// stream's own trailer. A failure mid-stream aborts the connection, so a
// client never mistakes a cut stream for a whole one.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	consistency := store.Linearizable
	switch v := r.URL.Query().Get("consistency"); v {
	case "", string(store.Linearizable):
	case string(store.Lease), string(store.Stale):
		consistency = store.Consistency(v)
	default:
		writeError(w, http.StatusBadRequest, "invalid_consistency", "consistency must be linearizable, lease or stale")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), backupBarrierTimeout)
	capture, err := s.store.Backup(ctx, consistency)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotLeader):
		writeError(w, http.StatusServiceUnavailable, "not_leader", "lease backups are taken on the leader: "+err.Error())
		return
	case errors.Is(err, store.ErrNoLeader), errors.Is(err, store.ErrClockSkew):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "no_leader", err.Error())
		return
	case errors.Is(err, store.ErrHalted):
		writeError(w, http.StatusServiceUnavailable, "halted", err.Error())
		return
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	m := backup.Manifest{
		ClusterID: s.store.Status().ClusterID, NodeID: s.store.ID(),
		Index: capture.Index(), Purchases: capture.Purchases(), CreatedAt: time.Now().UTC(),
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="buytracker-%d.backup"`, m.Index))
	h.Set(adminapi.HeaderBackupIndex, strconv.FormatUint(m.Index, 10))
	h.Set(adminapi.HeaderBackupPurchases, strconv.FormatUint(m.Purchases, 10))
	h.Set(adminapi.HeaderBackupCreatedAt, m.CreatedAt.Format(time.RFC3339Nano))
	h.Set("Trailer", adminapi.TrailerBackupChecksum)
	w.WriteHeader(http.StatusOK)
	out := &idleDeadlineWriter{w: w, rc: http.NewResponseController(w)}
	sum, err := writeBackup(out, m, capture)
	if err != nil {
		s.logger.Warn("Streaming a backup failed; aborting the response", "index", m.Index, "error", err)
		panic(http.ErrAbortHandler)
	}
	h.Set(adminapi.TrailerBackupChecksum, sum)
	s.logger.Info("Streamed a backup", "index", m.Index, "purchases", m.Purchases, "checksum", sum)
}

// snapshotStream is the part of a ledger capture a backup writes.
type snapshotStream interface {
	Stream(w io.Writer) error
}

func writeBackup(w io.Writer, m backup.Manifest, capture snapshotStream) (string, error) {
	bw, err := backup.NewWriter(w, m)
	if err != nil {
		return "", err
	}
	if err := capture.Stream(bw); err != nil {
		return "", fmt.Errorf("stream the ledger snapshot: %w", err)
	}
	return bw.Close()
}

// idleDeadlineWriter moves the response's write deadline forward at every
// write: the admin server's write timeout would otherwise cut a large
// backup, while a client that stops reading is still let go.
type idleDeadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (d *idleDeadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(backupWriteIdle))
	return d.w.Write(p)
}
