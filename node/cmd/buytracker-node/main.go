// Command buytracker-node runs one buytracker node: a Raft member that
// records purchases and serves the client and admin APIs. Flags and wiring
// only; the node's behaviour lives in node/store, node/httpapi and node/admin.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/buytracker/buytracker/node/admin"
	"github.com/buytracker/buytracker/node/backup"
	"github.com/buytracker/buytracker/node/clientauth"
	"github.com/buytracker/buytracker/node/httpapi"
	"github.com/buytracker/buytracker/node/listen"
	"github.com/buytracker/buytracker/node/store"
	"github.com/buytracker/buytracker/node/testhook"
)

func main() {
	// One binary in the image: `buytracker-node backup ...` is the backup
	// agent the operator's Jobs run (backupcmd.go).
	if len(os.Args) > 1 && os.Args[1] == "backup" {
		os.Exit(runBackup(os.Args[2:], os.Stdout, os.Stderr, os.Getenv))
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "buytracker-node:", err)
		os.Exit(1)
	}
}

// defaultMinFreeDisk is the free-space watermark without --min-free-disk:
// room for the purchases in flight and a few seconds of full-speed writes
// after the once-a-second check (docs/node.md).
const defaultMinFreeDisk = 64 << 20

type options struct {
	id, dataDir                       string
	httpAddr, adminAddr, raftAddr     string
	advertiseRaft, advertiseHTTP      string
	advertiseAdmin                    string
	initialCluster, adminTokenFile    string
	clusterID, tlsDir                 string
	clusterCreatedFile                string
	maxClockSkew                      time.Duration
	heartbeatTimeout, electionTimeout time.Duration
	snapshotInterval, requestTimeout  time.Duration
	snapshotThreshold, trailingLogs   uint64
	logLevel                          string
	minFreeDisk, logCacheBytes        byteSize
	idempotencyMaxKeys                int
	maxClientConns, maxAdminConns     int
	clientAuthFile, clientTLSDir      string
	clientAuthRequired                bool
	trustedProxies                    string
	restoreFrom                       string
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("buytracker-node", flag.ContinueOnError)
	fs.StringVar(&o.id, "id", "", "Raft server ID (the pod name in Kubernetes)")
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for the Raft log, snapshots and records")
	fs.StringVar(&o.httpAddr, "http-addr", "0.0.0.0:8080", "client API listen address")
	fs.StringVar(&o.adminAddr, "admin-addr", "0.0.0.0:8081", "admin API listen address")
	fs.StringVar(&o.raftAddr, "raft-addr", "0.0.0.0:7000", "Raft transport listen address")
	fs.StringVar(&o.advertiseRaft, "advertise-raft", "", "Raft address peers dial, host:port (default: --raft-addr when it names a host)")
	fs.StringVar(&o.advertiseHTTP, "advertise-http", "", "client API URL peers forward to (default: http://<advertised raft host>:<http port>)")
	fs.StringVar(&o.advertiseAdmin, "advertise-admin", "", "admin API URL peers call (default: http://<advertised raft host>:<admin port>)")
	fs.StringVar(&o.initialCluster, "initial-cluster", "", "the cluster's initial members ID=RAFTHOST:PORT,...; they create it together, once")
	fs.StringVar(&o.clusterCreatedFile, "cluster-created-file", "", "file that, once it exists and holds the cluster ID (or \"true\"), says the cluster was created: an empty data dir then never bootstraps, it waits to rejoin")
	fs.StringVar(&o.clusterID, "cluster-id", "", "the cluster's identity (the BuyTracker's UID); recorded in the data dir, which then refuses another cluster")
	fs.DurationVar(&o.maxClockSkew, "max-clock-skew", time.Second, "how far the leader's clock may differ from a majority of the voters' before it stops stamping purchases and hands leadership over")
	fs.StringVar(&o.tlsDir, "tls-dir", "", "directory with ca.crt, tls.crt and tls.key: mutual TLS for Raft and every member-to-member call, HTTPS for the admin API (without it: plain TCP, local development only)")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "file holding the admin bearer token (default: <data-dir>/admin-token, generated if absent)")
	fs.DurationVar(&o.heartbeatTimeout, "heartbeat-timeout", time.Second, "Raft heartbeat timeout")
	fs.DurationVar(&o.electionTimeout, "election-timeout", time.Second, "Raft election timeout")
	fs.Uint64Var(&o.snapshotThreshold, "snapshot-threshold", 8192, "log entries between snapshots")
	fs.DurationVar(&o.snapshotInterval, "snapshot-interval", 2*time.Minute, "how often to check whether a snapshot is due")
	fs.Uint64Var(&o.trailingLogs, "trailing-logs", 10240, "log entries kept after a snapshot")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 10*time.Second, "how long a request waits for a commit before answering 504")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	o.minFreeDisk = defaultMinFreeDisk
	fs.Var(&o.minFreeDisk, "min-free-disk", "free space the data dir's file system keeps: below it new purchases answer 507 (a byte count or a size such as 64Mi; 0 sets no watermark)")
	fs.IntVar(&o.idempotencyMaxKeys, "idempotency-max-keys", 1_000_000, "Idempotency-Keys remembered at most; the oldest go first (every member must use the same value)")
	o.logCacheBytes = 32 << 20
	fs.Var(&o.logCacheBytes, "log-cache-bytes", "memory for recent Raft log entries (a byte count or a size such as 32Mi)")
	fs.IntVar(&o.maxClientConns, "max-client-conns", 2048, "connections the client listener holds open at once; past it a new one is answered 503")
	fs.IntVar(&o.maxAdminConns, "max-admin-conns", 64, "connections the admin listener holds open at once; past it a new one is answered 503")
	fs.StringVar(&o.clientAuthFile, "client-auth-file", "", "JSON file of client tokens and their roles (write, read, export), re-read when it changes; without it GET /buys is refused")
	fs.BoolVar(&o.clientAuthRequired, "client-auth-required", false, "require a token with the route's role on POST /buy (write) and GET /stats (read) too, whatever --client-auth-file says (needs --client-auth-file)")
	fs.StringVar(&o.clientTLSDir, "client-tls-dir", "", "directory with tls.crt and tls.key: serve the client port over HTTPS")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "comma-separated addresses or CIDR prefixes of proxies whose X-Forwarded-For names the client (default: none)")
	fs.StringVar(&o.restoreFrom, "restore-from", "", "a backup file (GET /backup) the new cluster starts from: on an empty data dir, every initial member given the same file restores it; ignored on a data dir already started from a backup, refused on any other")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := applyEnv(fs); err != nil {
		return nil, err
	}
	if o.id == "" || o.dataDir == "" {
		return nil, errors.New("--id and --data-dir are required")
	}
	if o.maxClientConns < 1 || o.maxAdminConns < 1 {
		return nil, errors.New("--max-client-conns and --max-admin-conns must be at least 1")
	}
	if o.idempotencyMaxKeys < 1 {
		return nil, fmt.Errorf("--idempotency-max-keys must be at least 1, not %d", o.idempotencyMaxKeys)
	}
	if o.logCacheBytes < 1<<20 || o.logCacheBytes > 1<<40 {
		return nil, fmt.Errorf("--log-cache-bytes must be from 1Mi to 1Ti, not %d", o.logCacheBytes)
	}
	if o.restoreFrom != "" && o.initialCluster == "" {
		return nil, errors.New("--restore-from needs --initial-cluster: a restore starts a new cluster whose initial members all restore the same backup")
	}
	if o.clientAuthRequired && o.clientAuthFile == "" {
		return nil, errors.New("--client-auth-required needs --client-auth-file: without client tokens every POST /buy and GET /stats would answer 401 and nobody could write")
	}
	return o, nil
}

// applyEnv sets every flag not given on the command line from
// BUYTRACKER_<FLAG_NAME>, so --data-dir reads BUYTRACKER_DATA_DIR.
func applyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := "BUYTRACKER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", env, serr)
			}
		}
	})
	return err
}

// parseInitialCluster parses ID=HOST:PORT,... into voters.
func parseInitialCluster(s string) ([]raft.Server, error) {
	if s == "" {
		return nil, nil
	}
	var out []raft.Server
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" {
			return nil, fmt.Errorf("--initial-cluster entry %q: want ID=HOST:PORT", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("--initial-cluster entry %q: %w", part, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("--initial-cluster names %q twice", id)
		}
		seen[id] = true
		out = append(out, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	return out, nil
}

// advertisedURL is the URL peers use for a listener: the listen host when it
// is a specific one, else the advertised Raft host, with the listen port.
func advertisedURL(scheme, listen, raftHost string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = raftHost
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

func loadToken(path, dataDir string, logger *slog.Logger) (string, error) {
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read admin token: %w", err)
		}
		token := strings.TrimSpace(string(raw))
		if token == "" {
			return "", fmt.Errorf("admin token file %s is empty", path)
		}
		return token, nil
	}
	path = filepath.Join(dataDir, "admin-token")
	if raw, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(raw))) > 0 {
		return strings.TrimSpace(string(raw)), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	token := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	logger.Warn("No --admin-token-file given: generated a token", "path", path)
	return token, nil
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", o.id)

	initial, err := parseInitialCluster(o.initialCluster)
	if err != nil {
		return err
	}
	// A backup is checked whole before anything is written to the data dir.
	restoreFrom, err := openRestore(o.restoreFrom, o.dataDir, logger)
	if err != nil {
		return err
	}
	if restoreFrom != nil {
		defer restoreFrom.Close()
	}
	proxies, err := httpapi.ParseTrustedProxies(o.trustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	clientTokens, err := clientauth.Open(o.clientAuthFile, o.clientAuthRequired, logger)
	if err != nil {
		return err
	}
	clientScheme, clientTLS := "http", (*tls.Config)(nil)
	if o.clientTLSDir != "" {
		if clientTLS, err = clientTLSConfig(o.clientTLSDir, logger); err != nil {
			return err
		}
		clientScheme = "https"
	}
	if o.advertiseRaft == "" {
		host, _, err := net.SplitHostPort(o.raftAddr)
		if err != nil {
			return fmt.Errorf("--raft-addr: %w", err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return errors.New("--advertise-raft is required when --raft-addr listens on every interface")
		}
		o.advertiseRaft = o.raftAddr
	}
	raftHost, _, err := net.SplitHostPort(o.advertiseRaft)
	if err != nil {
		return fmt.Errorf("--advertise-raft: %w", err)
	}
	if o.advertiseHTTP == "" {
		if o.advertiseHTTP, err = advertisedURL(clientScheme, o.httpAddr, raftHost); err != nil {
			return err
		}
	}
	adminScheme := "http"
	if o.tlsDir != "" {
		adminScheme = "https"
	}
	if o.advertiseAdmin == "" {
		if o.advertiseAdmin, err = advertisedURL(adminScheme, o.adminAddr, raftHost); err != nil {
			return err
		}
	}
	// Everything the node writes (Raft's snapshots included, which
	// hashicorp/raft creates 0644 in 0755 dirs) is for its own user only.
	syscall.Umask(0o077)
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	peerTLS, err := loadPeerTLS(ctx, o.tlsDir, logger)
	if err != nil {
		return err
	}
	token, err := loadToken(o.adminTokenFile, o.dataDir, logger)
	if err != nil {
		return err
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, err := store.OpenContext(ctx, peerTLS.apply(store.Config{
		ID: o.id, DataDir: o.dataDir,
		RaftBind: o.raftAddr, RaftAdvertise: o.advertiseRaft,
		HTTPURL: o.advertiseHTTP, AdminURL: o.advertiseAdmin,
		ClusterID: o.clusterID, InitialCluster: initial, ClusterCreatedFile: o.clusterCreatedFile,
		Clock: testhook.Clock(logger), MaxClockSkew: o.maxClockSkew,
		MisapplyCentsForTests: testhook.MisapplyCents(),
		WrapLogStoreForTests:  testhook.DiskFaults(logger),
		ApplyDelayForTests:    testhook.ApplyDelay(logger),
		HeartbeatTimeout:      o.heartbeatTimeout, ElectionTimeout: o.electionTimeout,
		SnapshotThreshold: o.snapshotThreshold, SnapshotInterval: o.snapshotInterval,
		TrailingLogs: o.trailingLogs,
		MinFreeDisk:  uint64(o.minFreeDisk), IdempotencyMaxKeys: o.idempotencyMaxKeys,
		LogCacheBytes: int(o.logCacheBytes), RestoreFrom: restoreFrom,
		Logger: logger, Registerer: registry,
	}))
	if err != nil {
		return err
	}
	api := httpapi.New(st, httpapi.Options{RequestTimeout: o.requestTimeout, Logger: logger, Registry: registry, Auth: clientTokens, TrustedProxies: proxies})
	adminAPI, err := admin.New(st, token, logger, peerTLS.forwardConfig())
	if err != nil {
		st.Close()
		return err
	}
	servers := []*http.Server{
		listen.NewServer(api, listen.ClientLimits(o.requestTimeout), logger),
		listen.NewServer(adminAPI, listen.AdminLimits(), logger),
	}
	listeners := []struct {
		name, addr string
		opts       listen.Options
	}{
		{"client", o.httpAddr, listen.Options{MaxConns: o.maxClientConns, TLS: clientTLS}},
		{"admin", o.adminAddr, listen.Options{MaxConns: o.maxAdminConns, TLS: peerTLS.httpsConfig()}},
	}
	go clientTokens.Watch(ctx, 2*time.Second)
	errs := make(chan error, len(servers))
	for i, srv := range servers {
		inner, err := net.Listen("tcp", listeners[i].addr)
		if err != nil {
			st.Close()
			return fmt.Errorf("listen on %s: %w", listeners[i].addr, err)
		}
		ln := listen.New(inner, listeners[i].opts)
		if err := ln.RegisterMetrics(registry, listeners[i].name); err != nil {
			st.Close()
			return fmt.Errorf("register listener metrics: %w", err)
		}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
		}()
	}
	logger.Info("Node started", "http", o.advertiseHTTP, "admin", o.advertiseAdmin, "raft", o.advertiseRaft, "data_dir", o.dataDir)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("Stopping: finishing in-flight requests")
	case runErr = <-errs:
		logger.Error("A listener failed; stopping", "error", runErr)
	}
	// Drain the client API while Raft still runs, so in-flight requests
	// finish; hand leadership over while the admin listener still takes
	// followers' forwarded purchases; then close the admin API, Raft and
	// bbolt.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clientSrv, adminSrv := servers[0], servers[1]
	if err := clientSrv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("Client API shutdown did not finish cleanly", "error", err)
	}
	st.HandOverLeadership()
	if err := adminSrv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("Admin API shutdown did not finish cleanly", "error", err)
	}
	api.Close()
	adminAPI.Close()
	if err := st.Close(); err != nil {
		logger.Warn("Closing the store failed", "error", err)
	}
	logger.Info("Stopped")
	return runErr
}

// openRestore checks --restore-from's backup when the data dir is empty; nil
// when there is nothing to restore.
func openRestore(path, dataDir string, logger *slog.Logger) (*backup.File, error) {
	if path == "" {
		return nil, nil
	}
	needed, err := store.RestoreNeeded(dataDir)
	if err != nil {
		return nil, err
	}
	if !needed {
		logger.Info("The data dir was started with --restore-from already: the backup is not used again", "data_dir", dataDir)
		return nil, nil
	}
	f, err := store.OpenBackup(path)
	if err != nil {
		return nil, fmt.Errorf("--restore-from: %w; nothing was written to %s", err, dataDir)
	}
	logger.Info("Backup checked", "path", path, "index", f.Manifest.Index, "purchases", f.Manifest.Purchases,
		"source_cluster", f.Manifest.ClusterID, "created_at", f.Manifest.CreatedAt, "checksum", f.Checksum, "bytes", f.Size)
	return f, nil
}
