package adminapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/buytracker/buytracker/node/backup"
)

// BackupInfo describes a backup the client received and verified.
type BackupInfo struct {
	// Manifest is the backup's own, read from the stream.
	backup.Manifest
	// Checksum is the hex SHA-256 of the backup before its trailer.
	Checksum string
	// Size is the backup's length in bytes.
	Size int64
}

// Backup streams a backup of the node's ledger into w and verifies it on
// the way: its trailer's SHA-256, and the index, purchase count and checksum
// the headers and trailer announced. A backup that fails a check returns an
// error wrapping backup.ErrInvalid; w then holds bytes that must not be
// used. The call is bounded by ctx only: a large backup outlives the
// client's usual timeout.
func (c *Client) Backup(ctx context.Context, w io.Writer) (BackupInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/backup", nil)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("build GET /backup: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("GET %s/backup: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return BackupInfo{}, AnswerError(resp.StatusCode, raw)
	}
	v := backup.NewVerifier()
	if _, err := io.Copy(io.MultiWriter(w, v), resp.Body); err != nil {
		return BackupInfo{}, fmt.Errorf("read backup from %s: %w", c.base, err)
	}
	m, sum, err := v.Finish()
	if err != nil {
		return BackupInfo{}, err
	}
	info := BackupInfo{Manifest: m, Checksum: sum, Size: v.Size()}
	if got := resp.Trailer.Get(TrailerBackupChecksum); got != sum {
		return BackupInfo{}, fmt.Errorf("%w: the stream's checksum is %s, the HTTP trailer says %q", backup.ErrInvalid, sum, got)
	}
	for header, want := range map[string]uint64{HeaderBackupIndex: m.Index, HeaderBackupPurchases: m.Purchases} {
		if got := resp.Header.Get(header); got != strconv.FormatUint(want, 10) {
			return BackupInfo{}, fmt.Errorf("%w: %s is %q, the manifest says %d", backup.ErrInvalid, header, got, want)
		}
	}
	return info, nil
}
