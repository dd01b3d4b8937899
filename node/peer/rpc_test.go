package peer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buytracker/buytracker/node/internal/sockpeek"
)

func TestCallAnswersAndErrors(t *testing.T) {
	forEachMode(t, func(t *testing.T, n *testNet) {
		const (
			methodRefused Method = 210
			methodBroken  Method = 211
		)
		server := n.server("n1", map[Method]Handler{
			methodEcho: echo,
			methodRefused: func(context.Context, Caller, []byte) ([]byte, error) {
				return nil, fmt.Errorf("wrapped: %w", Errorf(CodeNotLeader, "the leader is %s", "n3"))
			},
			methodBroken: func(context.Context, Caller, []byte) ([]byte, error) {
				return nil, errors.New("disk on fire")
			},
		}, nil)
		client := n.endpoint("n2", nil)
		addr := server.Addr().String()
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, more than any buffer on the way

		for _, tc := range []struct {
			name      string
			method    Method
			payload   []byte
			want      []byte
			wantCode  Code
			wantInMsg string
		}{
			{name: "echo", method: methodEcho, payload: []byte("hi"), want: []byte("echo:hi")},
			{name: "empty payload", method: methodEcho, want: []byte("echo:")},
			{name: "large payload", method: methodEcho, payload: big, want: append([]byte("echo:"), big...)},
			{name: "handler's *Error keeps its code", method: methodRefused, wantCode: CodeNotLeader, wantInMsg: "the leader is n3"},
			{name: "plain error is internal", method: methodBroken, wantCode: CodeInternal, wantInMsg: "disk on fire"},
			{name: "unknown method", method: 250, wantCode: CodeUnknown, wantInMsg: "method-250"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := client.Call(context.Background(), addr, tc.method, tc.payload, 2<<20)
				if tc.wantCode == 0 {
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, tc.want) {
						t.Fatalf("answer of %d bytes, want %d bytes %q...", len(got), len(tc.want), tc.want[:min(len(tc.want), 16)])
					}
					return
				}
				var pe *Error
				if !errors.As(err, &pe) || CodeOf(err) != tc.wantCode {
					t.Fatalf("err %v (code %d), want an *Error with code %d", err, CodeOf(err), tc.wantCode)
				}
				if !bytes.Contains([]byte(pe.Message), []byte(tc.wantInMsg)) {
					t.Fatalf("message %q does not carry %q", pe.Message, tc.wantInMsg)
				}
			})
		}
		// Answers with an error are still whole frames: the connection is reused.
		if got := idleCount(client, addr); got != 1 {
			t.Fatalf("%d idle connections to the server after sequential calls, want 1", got)
		}
	})
}

func TestCallerIsTheCertificatesID(t *testing.T) {
	forEachMode(t, func(t *testing.T, n *testNet) {
		server := n.server("n1", map[Method]Handler{
			methodCaller: func(_ context.Context, c Caller, _ []byte) ([]byte, error) {
				return fmt.Appendf(nil, "cert=%t n2=%t n1=%t n20=%t", c.Cert != nil, c.Is("n2"), c.Is("n1"), c.Is("n20")), nil
			},
		}, nil)
		client := n.endpoint("n2", nil)
		got, err := client.Call(context.Background(), server.Addr().String(), methodCaller, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := "cert=false n2=true n1=true n20=true" // without TLS a caller is whoever it says
		if n.tls {
			want = "cert=true n2=true n1=false n20=false"
		}
		if string(got) != want {
			t.Fatalf("caller seen as %q, want %q", got, want)
		}
	})
}

func TestRequestOverLimitClosesWithoutAllocating(t *testing.T) {
	n := newTestNet(t, false)
	var ran atomic.Int64
	server := n.server("n1", map[Method]Handler{
		methodSized: func(_ context.Context, _ Caller, p []byte) ([]byte, error) {
			ran.Add(1)
			return binary.AppendUvarint(nil, uint64(len(p))), nil
		},
	}, nil)
	addr := server.Addr().String()

	for _, size := range []uint64{maxRequest + 1, 1 << 40, math.MaxUint64} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := dialRawRPC(t, addr)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			// Only the header: a server that believed it would allocate and wait.
			hdr := binary.AppendUvarint([]byte{byte(methodSized)}, size)
			if _, err := c.conn.Write(hdr); err != nil {
				t.Fatal(err)
			}
			expectClosedByPeer(t, c.conn, c.r)
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew >= maxRequest/2 {
				t.Fatalf("the process allocated %d bytes while refusing the frame", grew)
			}
		})
	}
	if got := ran.Load(); got != 0 {
		t.Fatalf("the handler ran %d times for refused frames", got)
	}

	// The limit itself is allowed.
	client := n.endpoint("n2", nil)
	got, err := client.Call(context.Background(), addr, methodSized, make([]byte, maxRequest), 0)
	if err != nil {
		t.Fatal(err)
	}
	if size, _ := binary.Uvarint(got); size != maxRequest {
		t.Fatalf("the handler saw %d bytes, want %d", size, maxRequest)
	}
}

func TestAnswerOverCallersLimitFailsTheCall(t *testing.T) {
	n := newTestNet(t, false)
	server := n.server("n1", map[Method]Handler{
		methodSized: func(_ context.Context, _ Caller, p []byte) ([]byte, error) {
			size, _ := binary.Uvarint(p)
			return make([]byte, size), nil
		},
	}, nil)
	client := n.endpoint("n2", nil)
	addr := server.Addr().String()
	call := func(answerSize, maxAnswer int) ([]byte, error) {
		return client.Call(context.Background(), addr, methodSized, binary.AppendUvarint(nil, uint64(answerSize)), maxAnswer)
	}

	if got, err := call(1000, 1000); err != nil || len(got) != 1000 {
		t.Fatalf("answer at the limit: %d bytes, err %v", len(got), err)
	}
	for _, tc := range []struct{ answer, limit int }{{1000, 999}, {MaxAnswer + 1, 0}} {
		_, err := call(tc.answer, tc.limit)
		if !errors.Is(err, errTooLarge) || CodeOf(err) != 0 || errors.Is(err, ErrNotSent) {
			t.Fatalf("answer of %d bytes with limit %d: err %v, want errTooLarge (sent, no code)", tc.answer, tc.limit, err)
		}
		// The rest of the answer is still on that connection: it must not be reused.
		if got := idleCount(client, addr); got != 0 {
			t.Fatalf("%d idle connections after a refused answer, want 0", got)
		}
	}
	if got, err := call(10, 0); err != nil || len(got) != 10 {
		t.Fatalf("call after refused answers: %d bytes, err %v", len(got), err)
	}
}

func TestMaxConnsRefusesPastTheCap(t *testing.T) {
	n := newTestNet(t, false)
	server := n.server("n1", map[Method]Handler{methodEcho: echo}, func(c *Config) { c.MaxConns = 2 })
	addr := server.Addr().String()

	roundTrip := func(c *rawRPC, payload string) error {
		status, answer, err := c.call(methodEcho, []byte(payload))
		if err != nil {
			return err
		}
		if status != statusOK || string(answer) != "echo:"+payload {
			return fmt.Errorf("answer %d %q", status, answer)
		}
		return nil
	}
	a, b := dialRawRPC(t, addr), dialRawRPC(t, addr)
	for _, c := range []*rawRPC{a, b} {
		if err := roundTrip(c, "first"); err != nil {
			t.Fatal(err)
		}
	}

	over := dialRawRPC(t, addr)
	expectClosedByPeer(t, over.conn, over.r)

	for _, c := range []*rawRPC{a, b} {
		if err := roundTrip(c, "still"); err != nil {
			t.Fatalf("an accepted connection stopped working past the cap: %v", err)
		}
	}

	// A closed connection frees its slot.
	a.conn.Close()
	waitFor(t, 10*time.Second, "a new connection is served after one closed", func() bool {
		c := dialRawRPC(t, addr)
		defer c.conn.Close()
		return roundTrip(c, "again") == nil
	})
}

func TestCallToAClosedPortIsNotSent(t *testing.T) {
	forEachMode(t, func(t *testing.T, n *testNet) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		n.dir.set(addr, "n1")
		client := n.endpoint("n2", nil)
		_, err = client.Call(context.Background(), addr, methodEcho, []byte("x"), 0)
		if !errors.Is(err, ErrNotSent) || CodeOf(err) != 0 {
			t.Fatalf("err %v, want ErrNotSent", err)
		}
	})
}

func TestPooledConnectionClosedByServerIsNotReused(t *testing.T) {
	forEachMode(t, func(t *testing.T, n *testNet) {
		answer := func(s string) Handler {
			return func(context.Context, Caller, []byte) ([]byte, error) { return []byte(s), nil }
		}
		first := n.server("n1", map[Method]Handler{methodEcho: answer("first")}, nil)
		addr := first.Addr().String()
		client := n.endpoint("n2", nil)
		if got, err := client.Call(context.Background(), addr, methodEcho, nil, 0); err != nil || string(got) != "first" {
			t.Fatalf("first call: %q, %v", got, err)
		}
		if idleCount(client, addr) != 1 {
			t.Fatal("the first call's connection is not pooled")
		}
		stale := client.clients.idle[addr][0]

		// The server goes away and another takes its port: the pooled
		// connection is dead, though nothing was written on it.
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		n.server("n1", map[Method]Handler{methodEcho: answer("second")}, func(c *Config) { c.Bind = addr })
		waitFor(t, 5*time.Second, "the client's socket sees the server's close", func() bool { return !sockpeek.IdleAlive(stale.conn) })

		got, err := client.Call(context.Background(), addr, methodEcho, nil, 0)
		if err != nil || string(got) != "second" {
			t.Fatalf("call after the server closed the pooled connection: %q, %v; want a fresh connection", got, err)
		}
		client.clients.mu.Lock()
		reused := len(client.clients.idle[addr]) == 1 && client.clients.idle[addr][0] == stale
		client.clients.mu.Unlock()
		if reused {
			t.Fatal("the stale connection is back in the pool")
		}
	})
}

func TestCallHonoursItsContext(t *testing.T) {
	forEachMode(t, func(t *testing.T, n *testNet) {
		entered := make(chan struct{}, 1)
		release := make(chan struct{})
		returned := make(chan struct{}, 1)
		server := n.server("n1", map[Method]Handler{
			methodEcho: echo,
			methodSlow: func(ctx context.Context, _ Caller, _ []byte) ([]byte, error) {
				defer func() { returned <- struct{}{} }()
				entered <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
				}
				return []byte("late answer"), nil
			},
		}, nil)
		client := n.endpoint("n2", nil)
		addr := server.Addr().String()
		t.Cleanup(func() {
			select {
			case <-release:
			default:
				close(release)
			}
		})

		// slowCall runs a call of the slow method, calls whenEntered once
		// the handler runs, and returns the call's error.
		slowCall := func(ctx context.Context, whenEntered func()) error {
			done := make(chan error, 1)
			go func() {
				_, err := client.Call(ctx, addr, methodSlow, nil, 0)
				done <- err
			}()
			<-entered
			whenEntered()
			select {
			case err := <-done:
				return err
			case <-time.After(15 * time.Second):
				t.Fatal("Call did not return after its context ended")
				return nil
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := slowCall(ctx, func() {})
		if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want a deadline error", err)
		}
		if CodeOf(err) != 0 || errors.Is(err, ErrNotSent) {
			t.Fatalf("err %v: a request that was sent must not claim an answer or ErrNotSent", err)
		}
		if got := idleCount(client, addr); got != 0 {
			t.Fatalf("%d idle connections after an abandoned call, want 0", got)
		}
		// The slow handler answers on the abandoned connection; the next
		// call must not read that answer.
		release <- struct{}{}
		<-returned
		if got, err := client.Call(context.Background(), addr, methodEcho, []byte("next"), 0); err != nil || string(got) != "echo:next" {
			t.Fatalf("call after a timed-out one: %q, %v", got, err)
		}

		// Cancelling ends a call the same way.
		ctx, cancel = context.WithCancel(context.Background())
		defer cancel()
		if err := slowCall(ctx, cancel); err == nil {
			t.Fatal("a cancelled call succeeded")
		}
		if got := idleCount(client, addr); got != 0 {
			t.Fatalf("%d idle connections after a cancelled call, want 0", got)
		}
		release <- struct{}{}
		<-returned
		if got, err := client.Call(context.Background(), addr, methodEcho, []byte("after"), 0); err != nil || string(got) != "echo:after" {
			t.Fatalf("call after a cancelled one: %q, %v", got, err)
		}
	})
}
