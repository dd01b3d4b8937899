package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/buytracker/buytracker/node/adminapi"
	"github.com/buytracker/buytracker/node/backup"
	"github.com/buytracker/buytracker/node/backupstore"
	"github.com/buytracker/buytracker/node/store"
)

// maxSmallFile bounds the token and CA files the agent reads.
const maxSmallFile = 1 << 20

func takeFlags(fs *flag.FlagSet, logger *slog.Logger, getenv func(string) string) func(context.Context) (backupResult, error) {
	var adminURL, tokenFile, caFile, to string
	var prunes locationList
	fs.StringVar(&adminURL, "admin-url", "", "the member's admin API, http(s)://HOST:PORT")
	fs.StringVar(&tokenFile, "admin-token-file", "", "file holding the admin bearer token")
	fs.StringVar(&caFile, "ca-file", "", "PEM bundle the admin API's certificate must chain to (https)")
	fs.StringVar(&to, "to", "", "LOCATION to write the backup to (its manifest goes to LOCATION.manifest.json)")
	fs.Var(&prunes, "prune", "LOCATION of an older backup to delete, with its manifest, once this one is stored (repeatable)")
	return func(ctx context.Context) (backupResult, error) {
		if adminURL == "" || tokenFile == "" {
			return backupResult{}, usagef("--admin-url and --admin-token-file are required")
		}
		dest, err := parseLocationFlag("to", to)
		if err != nil {
			return backupResult{}, err
		}
		var old []backupstore.Location
		for _, p := range prunes {
			loc, err := parseLocationFlag("prune", p)
			if err != nil {
				return backupResult{}, err
			}
			if loc == dest || loc.Manifest() == dest || loc == dest.Manifest() {
				return backupResult{}, usagef("--prune=%s would delete the backup being taken", p)
			}
			old = append(old, loc)
		}
		client, err := newAdminClient(adminURL, tokenFile, caFile)
		if err != nil {
			return backupResult{}, err
		}
		s3 := backupstore.S3ConfigFromEnv(getenv)
		return takeBackup(ctx, logger, client, dest, old, s3)
	}
}

// takeBackup streams a backup from the member into dest, verified on the
// way, then stores its manifest and deletes the old backups.
func takeBackup(ctx context.Context, logger *slog.Logger, client *adminapi.Client, dest backupstore.Location,
	prune []backupstore.Location, s3 backupstore.S3Config) (backupResult, error) {
	st, err := backupstore.Open(dest, s3)
	if err != nil {
		return backupResult{}, err
	}
	logger.Info("Taking a backup", "from", client.BaseURL(), "to", dest.String())
	var info adminapi.BackupInfo
	_, err = streamVerified(ctx, st, dest, func(w io.Writer) (err error) {
		info, err = client.Backup(ctx, w)
		return err
	})
	if err != nil {
		return backupResult{}, fmt.Errorf("back up %s to %s: %w", client.BaseURL(), dest, err)
	}
	desc := describe(info)
	manifest, err := json.Marshal(backupResult{Location: dest.String(), Description: desc})
	if err != nil {
		return backupResult{}, fmt.Errorf("encode the manifest: %w", err)
	}
	if _, err := st.Put(ctx, dest.Manifest(), bytes.NewReader(append(manifest, '\n'))); err != nil {
		return backupResult{}, fmt.Errorf("backup stored at %s, but its manifest was not: %w", dest, err)
	}
	logger.Info("Backup stored", "location", dest.String(), "index", info.Index, "purchases", info.Purchases,
		"checksum", info.Checksum, "bytes", info.Size)
	res := backupResult{Location: dest.String(), Description: desc, Pruned: []string{}}
	for _, loc := range prune {
		if err := deleteBackup(ctx, loc, s3); err != nil {
			return backupResult{}, fmt.Errorf("backup stored at %s, but pruning %s failed: %w", dest, loc, err)
		}
		logger.Info("Pruned an older backup", "location", loc.String())
		res.Pruned = append(res.Pruned, loc.String())
	}
	return res, nil
}

// streamVerified stores what produce writes at loc, publishing it only if
// produce succeeds: produce's verdict arrives before the store sees the end
// of its stream, so a refused stream is aborted, never stored. The error
// returned is the cause: produce's own, or the store's.
func streamVerified(ctx context.Context, st backupstore.Store, loc backupstore.Location, produce func(io.Writer) error) (int64, error) {
	pr, pw := io.Pipe()
	produced := make(chan error, 1)
	go func() { // ends when produce returns; the pipe's reader is closed below on every path
		err := produce(pw)
		pw.CloseWithError(err) // nil: the store reads EOF
		produced <- err
	}()
	n, putErr := st.Put(ctx, loc, pr)
	if putErr != nil {
		pr.CloseWithError(putErr)
	} else {
		pr.Close()
	}
	produceErr := <-produced
	switch {
	case produceErr != nil && (putErr == nil || !errors.Is(produceErr, putErr)):
		return n, produceErr
	case putErr != nil:
		return n, putErr
	}
	return n, nil
}

func describe(info adminapi.BackupInfo) *Description {
	return &Description{
		ClusterID: info.ClusterID, NodeID: info.NodeID, Index: info.Index, Purchases: info.Purchases,
		CreatedAt: info.CreatedAt, Checksum: info.Checksum, SizeBytes: info.Size,
	}
}

// newAdminClient builds the client of the member's admin API.
func newAdminClient(adminURL, tokenFile, caFile string) (*adminapi.Client, error) {
	raw, err := readSmallFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--admin-token-file: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return nil, fmt.Errorf("--admin-token-file %s is empty", tokenFile)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	// The node answers once its read barrier passes (10 s at most), then
	// streams; the stream itself is bounded by --timeout.
	transport.ResponseHeaderTimeout = time.Minute
	if caFile != "" {
		if !strings.HasPrefix(adminURL, "https://") {
			return nil, usagef("--ca-file is for an https --admin-url, not %s", adminURL)
		}
		pem, err := readSmallFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
		}
		transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	client, err := adminapi.NewClient(adminURL, token, &http.Client{Transport: transport})
	if err != nil {
		return nil, usageError{fmt.Errorf("--admin-url: %w", err)}
	}
	return client, nil
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxSmallFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(raw) > maxSmallFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSmallFile)
	}
	return raw, nil
}

func fetchFlags(fs *flag.FlagSet, logger *slog.Logger, getenv func(string) string) func(context.Context) (backupResult, error) {
	var from, to, checksum, skipDir string
	fs.StringVar(&from, "from", "", "LOCATION of the backup")
	fs.StringVar(&to, "to", "", "file to write the verified backup to (written whole or not at all)")
	fs.StringVar(&checksum, "checksum", "", "hex SHA-256 the backup must have (its manifest's checksum)")
	fs.StringVar(&skipDir, "skip-if-data-dir", "", "do nothing when this node data dir holds an identity already (a restore happened)")
	return func(ctx context.Context) (backupResult, error) {
		src, err := parseLocationFlag("from", from)
		if err != nil {
			return backupResult{}, err
		}
		want, err := parseChecksumFlag(checksum)
		if err != nil {
			return backupResult{}, err
		}
		if to == "" {
			return backupResult{}, usagef("--to is required")
		}
		abs, err := filepath.Abs(to)
		if err != nil {
			return backupResult{}, usagef("--to: %v", err)
		}
		if skipDir != "" {
			started, err := store.HasIdentity(skipDir)
			if err != nil {
				return backupResult{}, err
			}
			if started {
				logger.Info("The data dir holds a node's identity: nothing to fetch", "data_dir", skipDir)
				return backupResult{Skipped: true}, nil
			}
		}
		s3 := backupstore.S3ConfigFromEnv(getenv)
		return readBackup(ctx, logger, src, want, s3, backupstore.Location{Path: abs})
	}
}

func verifyFlags(fs *flag.FlagSet, logger *slog.Logger, getenv func(string) string) func(context.Context) (backupResult, error) {
	var from, checksum string
	fs.StringVar(&from, "from", "", "LOCATION of the backup")
	fs.StringVar(&checksum, "checksum", "", "hex SHA-256 the backup must have (its manifest's checksum)")
	return func(ctx context.Context) (backupResult, error) {
		src, err := parseLocationFlag("from", from)
		if err != nil {
			return backupResult{}, err
		}
		want, err := parseChecksumFlag(checksum)
		if err != nil {
			return backupResult{}, err
		}
		return readBackup(ctx, logger, src, want, backupstore.S3ConfigFromEnv(getenv), backupstore.Location{})
	}
}

// readBackup reads the backup at src and checks all of it (store.CheckBackup)
// and its checksum when want is set. With a file location keep, the backup
// is written there too, and published only once it passed.
func readBackup(ctx context.Context, logger *slog.Logger, src backupstore.Location, want string,
	s3 backupstore.S3Config, keep backupstore.Location) (backupResult, error) {
	st, err := backupstore.Open(src, s3)
	if err != nil {
		return backupResult{}, err
	}
	body, err := st.Get(ctx, src)
	if err != nil {
		return backupResult{}, err
	}
	defer body.Close()
	var info adminapi.BackupInfo
	check := func(r io.Reader) (err error) {
		if info, err = store.CheckBackup(r); err != nil {
			return fmt.Errorf("backup %s: %w", src, err)
		}
		if want != "" && info.Checksum != want {
			return fmt.Errorf("backup %s: %w: its checksum is %s, not the %s expected", src, backup.ErrInvalid, info.Checksum, want)
		}
		return nil
	}
	if keep.Path == "" {
		err = check(body)
	} else {
		_, err = streamVerified(ctx, backupstore.Volume{}, keep, func(w io.Writer) error {
			return check(io.TeeReader(body, w))
		})
	}
	if err != nil {
		return backupResult{}, err
	}
	logger.Info("Backup verified", "location", src.String(), "kept_at", keep.Path, "index", info.Index,
		"purchases", info.Purchases, "checksum", info.Checksum, "bytes", info.Size)
	return backupResult{Location: src.String(), Description: describe(info)}, nil
}

func deleteFlags(fs *flag.FlagSet, logger *slog.Logger, getenv func(string) string) func(context.Context) (backupResult, error) {
	var at string
	fs.StringVar(&at, "at", "", "LOCATION of the backup to delete, with its manifest")
	return func(ctx context.Context) (backupResult, error) {
		loc, err := parseLocationFlag("at", at)
		if err != nil {
			return backupResult{}, err
		}
		if err := deleteBackup(ctx, loc, backupstore.S3ConfigFromEnv(getenv)); err != nil {
			return backupResult{}, err
		}
		logger.Info("Backup deleted", "location", loc.String())
		return backupResult{Location: loc.String(), Deleted: []string{loc.String(), loc.Manifest().String()}}, nil
	}
}

// deleteBackup removes a backup and then its manifest; absent ones are fine.
func deleteBackup(ctx context.Context, loc backupstore.Location, s3 backupstore.S3Config) error {
	st, err := backupstore.Open(loc, s3)
	if err != nil {
		return err
	}
	if err := st.Delete(ctx, loc); err != nil {
		return err
	}
	return st.Delete(ctx, loc.Manifest())
}
