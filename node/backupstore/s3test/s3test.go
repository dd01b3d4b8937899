// Package s3test runs a real S3-compatible object store for tests:
// SeaweedFS's S3 gateway (`weed server -s3`, built by
// hack/build-seaweedfs.sh), one process per test, on 127.0.0.1, with a
// bucket and one identity's credentials, stopped by the test's cleanup.
//
// BUYTRACKER_SEAWEEDFS names the weed binary. Without it a test that needs
// the store is skipped, unless BUYTRACKER_REQUIRE_SEAWEEDFS is set (as
// `make test-node` sets it), which turns a missing binary into a failure.
package s3test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/buytracker/buytracker/node/backupstore"
)

const (
	// EnvBinary names the weed binary.
	EnvBinary = "BUYTRACKER_SEAWEEDFS"
	// EnvRequire makes a missing binary fail the test instead of skipping it.
	EnvRequire = "BUYTRACKER_REQUIRE_SEAWEEDFS"
	// readyTimeout bounds the wait for the gateway to serve S3 (about 12 s
	// on an idle machine; 2 busy cores take longer).
	readyTimeout = 90 * time.Second
	// stopTimeout is how long a SIGTERM may take before SIGKILL.
	stopTimeout = 15 * time.Second
)

// Server is one running SeaweedFS with its S3 gateway.
type Server struct {
	// Endpoint is the gateway's URL, http://127.0.0.1:PORT.
	Endpoint string
	// Bucket exists, empty, when Start returns.
	Bucket string
	// AccessKeyID and SecretAccessKey are the identity allowed everything.
	AccessKeyID, SecretAccessKey string

	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	ports   []int
}

// Binary returns the weed binary to run, or skips (or fails) t when there
// is none.
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("%s is not set and %s is: run `make seaweedfs-assets` (hack/build-seaweedfs.sh prints the path)", EnvBinary, EnvRequire)
		}
		t.Skipf("SeaweedFS not built: set %s=$(hack/build-seaweedfs.sh) to run this test against a real S3 store (`make test-node` does)", EnvBinary)
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("%s=%s is not an executable file (%v): run `make seaweedfs-assets`", EnvBinary, bin, err)
	}
	return bin
}

// Start runs SeaweedFS for t (master, volume server, filer and S3 gateway
// in one process), waits until its S3 gateway answers, creates a bucket,
// and stops the process when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	s := &Server{
		Bucket: "backups", AccessKeyID: "buytracker-test", SecretAccessKey: "buytracker-test-secret-" + fmt.Sprint(rand.Uint64()),
		logPath: filepath.Join(dir, "weed.log"), exited: make(chan struct{}),
	}
	configPath := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(configPath, []byte(identities(s.AccessKeyID, s.SecretAccessKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	// Eight ports: the HTTP and gRPC ports of the master, volume server,
	// filer and gateway (weed's default gRPC port is HTTP + 10000, which
	// nobody checked was free).
	s.ports = freePorts(t, 8)
	p := s.ports
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", p[6])
	args := []string{
		"-logtostderr", "server",
		"-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		fmt.Sprintf("-master.port=%d", p[0]), fmt.Sprintf("-master.port.grpc=%d", p[1]),
		fmt.Sprintf("-volume.port=%d", p[2]), fmt.Sprintf("-volume.port.grpc=%d", p[3]),
		fmt.Sprintf("-filer.port=%d", p[4]), fmt.Sprintf("-filer.port.grpc=%d", p[5]),
		"-s3", fmt.Sprintf("-s3.port=%d", p[6]), fmt.Sprintf("-s3.port.grpc=%d", p[7]),
		"-s3.config=" + configPath, "-s3.port.iceberg=0", "-s3.port.lance=0",
		// As a real store: a PUT into a missing bucket fails.
		"-s3.autoCreateBucket=false",
		"-master.telemetry=false", "-master.volumeSizeLimitMB=256", "-volume.max=16",
		"-filer.localSocket=" + filepath.Join(shortTempDir(t), "filer.sock"),
		"-s3.localSocket=" + filepath.Join(shortTempDir(t), "s3.sock"),
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = data // weed reads *.toml from its working directory
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })
	if err := s.awaitReady(t.Context()); err != nil {
		t.Fatalf("SeaweedFS S3 gateway at %s: %v; its log ends:\n%s", s.Endpoint, err, s.LogTail(30))
	}
	return s
}

// identities is weed's -s3.config: one identity allowed everything.
func identities(accessKey, secretKey string) string {
	return fmt.Sprintf(`{"identities":[{"name":"buytracker-test",`+
		`"credentials":[{"accessKey":%q,"secretKey":%q}],`+
		`"actions":["Admin","Read","List","Tagging","Write"]}]}`, accessKey, secretKey)
}

// awaitReady creates the bucket, retrying until the gateway serves it or
// readyTimeout passes.
func (s *Server) awaitReady(ctx context.Context) error {
	client, err := s.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last error
	for {
		attempt, stop := context.WithTimeout(ctx, 5*time.Second)
		last = s.probe(attempt, client)
		stop()
		if last == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("weed exited (%v) before its gateway answered; last error: %w", s.cmd.ProcessState, last)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s: %w", readyTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// probe creates the bucket (unless an earlier attempt did) and writes and
// removes an object: the gateway answers before its volume server takes
// writes.
func (s *Server) probe(ctx context.Context, client *minio.Core) error {
	if err := client.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{}); err != nil {
		if exists, err2 := client.BucketExists(ctx, s.Bucket); err2 != nil || !exists {
			return err
		}
	}
	const probeKey = ".ready"
	if _, err := client.Client.PutObject(ctx, s.Bucket, probeKey, strings.NewReader("ready"), 5, minio.PutObjectOptions{}); err != nil {
		return err
	}
	return client.RemoveObject(ctx, s.Bucket, probeKey, minio.RemoveObjectOptions{})
}

// Client returns a client of the gateway with the server's credentials.
func (s *Server) Client() (*minio.Core, error) {
	return minio.NewCore(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKeyID, s.SecretAccessKey, ""),
		BucketLookup: minio.BucketLookupPath, Region: "us-east-1", MaxRetries: 1,
	})
}

// Config is the backupstore configuration of this server.
func (s *Server) Config() backupstore.S3Config {
	return backupstore.S3Config{Endpoint: s.Endpoint, AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey}
}

// Env is the environment the backup agent reads Config from.
func (s *Server) Env() []string {
	return []string{
		backupstore.EnvS3Endpoint + "=" + s.Endpoint,
		backupstore.EnvAccessKeyID + "=" + s.AccessKeyID,
		backupstore.EnvSecretAccessKey + "=" + s.SecretAccessKey,
	}
}

// Location names key in the server's bucket.
func (s *Server) Location(key string) string { return "s3://" + s.Bucket + "/" + key }

// LogTail returns the last lines of weed's log.
func (s *Server) LogTail(lines int) string {
	raw, _ := os.ReadFile(s.logPath)
	all := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// stop ends the process this Server started (by its PID only) and removes
// the gRPC sockets weed names after its ports in /tmp.
func (s *Server) stop(t testing.TB) {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	for _, port := range s.ports {
		for _, name := range []string{"master", "volume", "filer", "s3"} {
			os.Remove(fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", name, port))
		}
	}
	if t.Failed() {
		t.Logf("SeaweedFS log (%s) ends:\n%s", s.logPath, s.LogTail(40))
	}
}

// shortTempDir is a directory with a path short enough for a Unix socket
// (108 bytes), which t.TempDir's may not be.
func shortTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "sw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// freePorts returns n ports of 127.0.0.1 that could be bound a moment ago,
// below Linux's ephemeral range (so no outgoing connection takes one
// meanwhile) and distinct within this process.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	var out []int
	for range 5000 {
		if len(out) == n {
			return out
		}
		port := 20000 + rand.IntN(12000)
		if portsTaken[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		portsTaken[port] = true
		out = append(out, port)
	}
	t.Fatalf("found %d free ports below the ephemeral range, want %d", len(out), n)
	return nil
}

var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{}
)
