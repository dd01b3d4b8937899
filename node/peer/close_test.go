package peer

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestCloseWaitsForItsGoroutines(t *testing.T) {
	forEachMode(t, func(t *testing.T, n *testNet) {
		entered := make(chan struct{})
		var handlerDone atomic.Bool
		server := n.server("n1", map[Method]Handler{
			methodEcho: echo,
			methodSlow: func(ctx context.Context, _ Caller, _ []byte) ([]byte, error) {
				close(entered)
				<-ctx.Done() // Close cancels it
				// Some work after the cancellation, which Close must wait for.
				for range 100 {
					runtime.Gosched()
				}
				handlerDone.Store(true)
				return nil, ctx.Err()
			},
		}, nil)
		addr := server.Addr().String()
		client := n.endpoint("n2", nil) // never serves: it owns no goroutines

		// Every kind of connection the server can hold: an idle RPC
		// connection, one in a handler, one that never sent a byte, a Raft
		// connection handed to the transport, and one that nobody accepted.
		slowErr := make(chan error, 1)
		go func() {
			_, err := client.Call(context.Background(), addr, methodSlow, nil, 0)
			slowErr <- err
		}()
		<-entered
		// The slow call holds its connection, so this one opens another.
		if _, err := client.Call(context.Background(), addr, methodEcho, nil, 0); err != nil {
			t.Fatal(err)
		}
		silent, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		raftConns := make([]net.Conn, 2)
		for i := range raftConns {
			if raftConns[i], err = client.RaftLayer().Dial(raft.ServerAddress(addr), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			defer raftConns[i].Close()
		}
		accepted, err := server.RaftLayer().Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer accepted.Close()
		waitFor(t, 10*time.Second, "the server tracks all five connections", func() bool {
			server.connsMu.Lock()
			defer server.connsMu.Unlock()
			return len(server.conns) == 5
		})

		closed := make(chan error, 1)
		go func() { closed <- server.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Close did not return")
		}
		if !handlerDone.Load() {
			t.Fatal("Close returned before the running handler did")
		}
		// A goroutine that called wg.Done may take a moment to vanish from
		// the stacks; one that never ends stays.
		waitFor(t, 5*time.Second, "no endpoint goroutine is left", func() bool { return len(endpointGoroutines()) == 0 })

		select {
		case err := <-slowErr:
			if err == nil {
				t.Fatal("the call in progress succeeded though the server closed")
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the call in progress did not end when the server closed")
		}
		if err := server.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func TestClosedEndpointRefusesWork(t *testing.T) {
	forEachMode(t, func(t *testing.T, n *testNet) {
		live := n.server("n1", map[Method]Handler{methodEcho: echo}, nil)
		liveAddr := live.Addr().String()
		closing := n.server("n2", map[Method]Handler{methodEcho: echo}, nil)
		closingAddr := closing.Addr().String()
		// It has called before: the pool holds a connection to the live peer.
		if _, err := closing.Call(context.Background(), liveAddr, methodEcho, nil, 0); err != nil {
			t.Fatal(err)
		}
		if err := closing.Close(); err != nil {
			t.Fatal(err)
		}

		if _, err := closing.RaftLayer().Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
		if conn, err := closing.RaftLayer().Dial(raft.ServerAddress(liveAddr), 5*time.Second); err == nil {
			conn.Close()
			t.Fatal("the Raft layer dialled after Close")
		}
		if got, err := closing.Call(context.Background(), liveAddr, methodEcho, []byte("x"), 0); !errors.Is(err, ErrNotSent) {
			t.Fatalf("Call after Close: %q, %v; want ErrNotSent", got, err)
		}
		if got, err := live.Call(context.Background(), closingAddr, methodEcho, []byte("x"), 0); !errors.Is(err, ErrNotSent) {
			t.Fatalf("Call to a closed endpoint: %q, %v; want ErrNotSent", got, err)
		}
		if got := idleCount(closing, liveAddr); got != 0 {
			t.Fatalf("a closed endpoint keeps %d idle connections", got)
		}
	})
}

// A detached Raft layer is one Raft instance's view of the endpoint: closing
// it ends only its Accept, and the next layer takes the next connection
// while the endpoint goes on answering calls.
func TestClosingADetachedRaftLayerKeepsTheEndpoint(t *testing.T) {
	forEachMode(t, func(t *testing.T, n *testNet) {
		server := n.server("n1", map[Method]Handler{methodEcho: echo}, nil)
		addr := server.Addr().String()
		client := n.endpoint("n2", nil)

		first := server.DetachedRaftLayer()
		accepting := make(chan error, 1)
		go func() {
			_, err := first.Accept()
			accepting <- err
		}()
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-accepting:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Accept of a closed detached layer: %v, want net.ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("closing the detached layer did not end its Accept")
		}
		if err := first.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}

		if got, err := client.Call(context.Background(), addr, methodEcho, []byte("still"), 0); err != nil || string(got) != "echo:still" {
			t.Fatalf("call after the detached layer closed: %q, %v", got, err)
		}
		conn, err := client.RaftLayer().Dial(raft.ServerAddress(addr), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		accepted, err := server.DetachedRaftLayer().Accept()
		if err != nil {
			t.Fatalf("the next detached layer accepts nothing: %v", err)
		}
		accepted.Close()
	})
}
