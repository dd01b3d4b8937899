// Package cluster owns the buytracker-node processes of a chaos test: one
// node per netns.Host, listening on the host's address (client API on 8080,
// plain HTTP; admin API on 8081, HTTPS; Raft and the peer channel on 7000,
// mutual TLS), with certificates from node/pki, and the faults that act on
// a node rather than on the network: SIGKILL, SIGSTOP, a lost data dir, a
// shifted clock, failing disk writes and a full disk.
//
// Usage (as root; the binary built with `go build -tags testhooks -o BIN
// ./node/cmd/buytracker-node`):
//
//	net, _ := netns.New(ctx, netns.PIDPrefix("btc"))
//	defer net.Close()
//	c, err := cluster.Start(ctx, net, cluster.Config{Bin: bin, Dir: dir, Members: 3, Spares: 1,
//		DiskBytes: 64 << 20, ExtraFlags: []string{"--min-free-disk=4Mi"}})
//	defer c.Close() // before net.Close: a namespace lives while a process runs in it
//	leader, _ := c.Leader(ctx)
//	net.Partition(ctx, []*netns.Host{leader.Host}, others)
//	...
//	net.Heal(ctx)
//	c.AwaitConverged(ctx)
//
// Start creates (or reuses) hosts n1..n(Members+Spares) on the network; the
// members start at once with --initial-cluster, the spares only when
// AddMember adds them. Dir holds what a failed run needs: logs/<id>.log
// (appended across restarts), tls/, hooks/ (clock offset and disk fault
// files) and disks/<id> (each node's data dir; with DiskBytes a tmpfs of its
// own, unmounted by Close, so its contents are not kept).
//
// Every method that changes a node takes effect at once and returns an
// error for a node in the wrong state (Restart of a running node, Resume of
// one not paused); none of them waits for the cluster to recover: use
// Leader and AwaitConverged for that. A member that RemoveMember took out
// keeps running until killed, but no longer counts as a member.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/buytracker/buytracker/test/chaos/netns"
)

// Config describes a cluster.
type Config struct {
	Bin     string // node binary built with -tags testhooks
	Dir     string // artifacts: logs/<id>.log, tls/, data mounts
	Members int    // initial members n1..nN
	Spares  int    // extra hosts n(N+1).. started only when added
	// DiskBytes is the size of the tmpfs mounted for each node's data dir
	// (0: a plain directory). Set --min-free-disk in ExtraFlags to well
	// below it: its default, 64Mi, would put a small volume under pressure
	// from the start.
	DiskBytes  int64
	ExtraFlags []string // e.g. --snapshot-threshold=200 --trailing-logs=100
	Logf       func(format string, args ...any)
}

// Node is one node: its host, its URLs and its process, if any.
type Node struct {
	ID       string
	Host     *netns.Host
	HTTPURL  string // http://<addr>:8080
	AdminURL string // https://<addr>:8081
	RaftAddr string // <addr>:7000

	diskDir   string // the tmpfs mount point (or a plain dir)
	dataDir   string // diskDir/data: what the node owns
	logPath   string
	clockFile string
	faultFile string

	// Guarded by Cluster.mu.
	member bool          // in the Raft configuration, as far as the test knows
	cmd    *exec.Cmd     // the current or last process; nil before the first start
	exited chan struct{} // closed when cmd's process has ended
	killed bool          // the test ended the last process (Kill or Close)
	paused bool
}

// Ports every node listens on, at its host's address.
const (
	HTTPPort  = 8080
	AdminPort = 8081
	RaftPort  = 7000
)

// ExportToken is the client token with the export role (GET /buys) that
// every node accepts; WriteToken has the write role, for nodes run with
// --client-auth-required.
const (
	ExportToken = "chaos-export-token"
	WriteToken  = "chaos-write-token"
)

const clientAuthFile = `{"tokens": [
	{"name": "chaos-export", "token": "` + ExportToken + `", "roles": ["export", "read"]},
	{"name": "chaos-writer", "token": "` + WriteToken + `", "roles": ["write"]}]}`

// Cluster is the running cluster. Its methods are safe for concurrent use.
type Cluster struct {
	net        *netns.Network
	cfg        Config
	adminToken string
	ca         *memberCA
	initial    string // --initial-cluster
	nodes      []*Node
	client     *http.Client // client port: plain HTTP
	adminHTTP  *http.Client // admin port: HTTPS trusting the cluster's CA

	mu     sync.Mutex
	mounts []string
	closed bool
}

// Start lays the cluster out on net (hosts n1..n(Members+Spares), added
// unless net has them already), starts the members and waits, bounded by
// ctx, for a leader that a majority names. On failure it stops what it
// started.
func Start(ctx context.Context, net *netns.Network, cfg Config) (*Cluster, error) {
	if cfg.Members < 1 || cfg.Spares < 0 || cfg.Members+cfg.Spares > 99 {
		return nil, fmt.Errorf("cluster: %d members and %d spares: want 1 to 99 nodes", cfg.Members, cfg.Spares)
	}
	if cfg.Dir == "" || cfg.DiskBytes < 0 {
		return nil, fmt.Errorf("cluster: Dir %q, DiskBytes %d: want a directory and a size of 0 or more", cfg.Dir, cfg.DiskBytes)
	}
	if _, err := os.Stat(cfg.Bin); err != nil {
		return nil, fmt.Errorf("cluster: node binary: %w", err)
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	c := &Cluster{net: net, cfg: cfg, adminToken: "chaos-admin-token",
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	if err := c.layOut(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	for _, n := range c.nodes {
		if n.member {
			if err := c.start(n); err != nil {
				return nil, errors.Join(err, c.Close())
			}
		}
	}
	for {
		if _, err := c.Leader(ctx); err == nil {
			return c, nil
		} else if ctx.Err() != nil {
			return nil, errors.Join(fmt.Errorf("cluster: no leader (logs in %s): %w", filepath.Join(cfg.Dir, "logs"), err), c.Close())
		}
		if crashed := c.Crashed(); len(crashed) > 0 {
			return nil, errors.Join(fmt.Errorf("cluster: %s exited on its own: see %s", crashed[0].ID, crashed[0].logPath), c.Close())
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// layOut makes the hosts, directories, mounts, certificates and files.
func (c *Cluster) layOut(ctx context.Context) error {
	var err error
	if c.ca, err = newMemberCA(filepath.Join(c.cfg.Dir, "tls")); err != nil {
		return err
	}
	c.adminHTTP = c.ca.adminClient()
	for _, d := range []string{"logs", "hooks", "disks"} {
		if err := os.MkdirAll(filepath.Join(c.cfg.Dir, d), 0o700); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	files := map[string]string{"admin-token": c.adminToken, "client-auth.json": clientAuthFile}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(c.cfg.Dir, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	var initial []string
	for i := 1; i <= c.cfg.Members+c.cfg.Spares; i++ {
		n, err := c.layOutNode(ctx, fmt.Sprintf("n%d", i))
		if err != nil {
			return err
		}
		n.member = i <= c.cfg.Members
		if n.member {
			initial = append(initial, n.ID+"="+n.RaftAddr)
		}
		c.nodes = append(c.nodes, n)
	}
	c.initial = strings.Join(initial, ",")
	return nil
}

func (c *Cluster) layOutNode(ctx context.Context, id string) (*Node, error) {
	h := c.net.Host(id)
	if h == nil {
		var err error
		if h, err = c.net.AddHost(ctx, id); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	addr := h.Addr.String()
	n := &Node{ID: id, Host: h,
		HTTPURL: fmt.Sprintf("http://%s:%d", addr, HTTPPort), AdminURL: fmt.Sprintf("https://%s:%d", addr, AdminPort),
		RaftAddr: fmt.Sprintf("%s:%d", addr, RaftPort),
		diskDir:  filepath.Join(c.cfg.Dir, "disks", id), logPath: filepath.Join(c.cfg.Dir, "logs", id+".log"),
		clockFile: filepath.Join(c.cfg.Dir, "hooks", id+".clock"), faultFile: filepath.Join(c.cfg.Dir, "hooks", id+".diskfault"),
	}
	n.dataDir = filepath.Join(n.diskDir, "data")
	if err := os.MkdirAll(n.diskDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if c.cfg.DiskBytes > 0 {
		if err := c.mount(ctx, n.diskDir); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{n.clockFile, n.faultFile} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	if err := c.ca.issue(id, h.Addr); err != nil {
		return nil, err
	}
	return n, nil
}

// Nodes returns every host's node, members and spares, ordered by id.
func (c *Cluster) Nodes() []*Node { return slices.Clone(c.nodes) }

// Node returns the node with the given id, nil when there is none.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// HTTPClient is a client for the nodes' client ports (plain HTTP).
func (c *Cluster) HTTPClient() *http.Client { return c.client }

// LogPath is the file the node's output goes to, across restarts.
func (c *Cluster) LogPath(n *Node) string { return n.logPath }

// Close SIGKILLs every process the cluster started (by PID; paused ones
// included), waits for them, and unmounts the data disks. Dir is kept.
// Idempotent.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	var errs []error
	for _, n := range c.nodes {
		if c.Running(n) {
			errs = append(errs, c.Kill(n))
		}
	}
	c.mu.Lock()
	mounts := c.mounts
	c.mounts = nil
	c.mu.Unlock()
	for _, m := range mounts {
		errs = append(errs, unmount(m))
	}
	return errors.Join(errs...)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
