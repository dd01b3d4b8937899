// Package testnode starts real single-node stores for tests of the packages
// above the store: real Raft over TCP on 127.0.0.1 with bbolt on disk.
package testnode

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/buytracker/buytracker/node/store"
)

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Logger discards logs unless the test runs verbose.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// OpenSingle starts a one-node cluster and waits until it leads and serves
// linearizable reads. The store is closed when the test ends.
func OpenSingle(t testing.TB, mutate ...func(*store.Config)) *store.Store {
	t.Helper()
	addr := FreeAddr(t)
	cfg := store.Config{
		ID: "solo", DataDir: t.TempDir(),
		RaftBind: addr, RaftAdvertise: addr,
		HTTPURL: "http://127.0.0.1:1", AdminURL: "http://127.0.0.1:1",
		InitialCluster:   []raft.Server{{ID: "solo", Address: raft.ServerAddress(addr), Suffrage: raft.Voter}},
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		Logger: Logger(t),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	st, err := store.Open(cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, _ := st.Ready(); ok && st.IsLeader() && st.ReadBarrier(t.Context(), store.Linearizable) == nil {
			return st
		}
		if time.Now().After(deadline) {
			_, reason := st.Ready()
			t.Fatalf("single node did not become a ready leader within 10s: %s", reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
