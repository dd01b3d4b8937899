package peer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/buytracker/buytracker/node/internal/sockpeek"
)

// Size limits of RPC frames. A forwarded batch holds at most a few thousand
// validated purchases of at most a few hundred bytes each.
const (
	maxRequest = 16 << 20
	// MaxAnswer bounds an answer a client reads unless the call says less.
	MaxAnswer = 4 << 20
)

// ErrNotSent means a call certainly did not reach the peer: no byte of it
// was written (the dial failed, or the connection was found closed).
var ErrNotSent = errors.New("the request was not sent")

// serveRPC answers requests on one connection, one at a time, until the
// peer closes it, it idles too long, or the endpoint closes.
func (e *Endpoint) serveRPC(conn net.Conn, br *bufio.Reader, caller Caller) {
	defer conn.Close()
	bw := bufio.NewWriter(conn)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(idleTimeout))
		if _, err := br.Peek(1); err != nil {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(frameTimeout))
		head, payload, err := readFrame(br, maxRequest)
		if err != nil {
			e.logger.Warn("Closing a peer RPC connection: bad request frame", "remote", conn.RemoteAddr().String(), "error", err)
			return
		}
		answer, herr := e.call(Method(head), caller, payload)
		_ = conn.SetWriteDeadline(time.Now().Add(frameTimeout))
		status := statusOK
		if herr != nil {
			status, answer = statusError, encodeError(herr)
		}
		if err := writeFrame(bw, status, answer); err != nil {
			return
		}
	}
}

// handlerTimeout bounds one handler; the caller's own deadline is usually
// shorter.
const handlerTimeout = 15 * time.Second

func (e *Endpoint) call(m Method, caller Caller, payload []byte) ([]byte, *Error) {
	h, ok := e.handlers[m]
	if !ok {
		return nil, Errorf(CodeUnknown, "unknown method %s", m)
	}
	ctx, cancel := context.WithTimeout(e.ctx, handlerTimeout)
	defer cancel()
	answer, err := h(ctx, caller, payload)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, Errorf(CodeInternal, "%v", err)
	}
	return answer, nil
}

// Call sends one request to the peer endpoint at addr and returns its
// answer. An answer of at most maxAnswer bytes is accepted (0 means
// MaxAnswer). The call's deadline comes from ctx (default 10 s). An error
// wraps ErrNotSent when the request certainly did not reach the peer (also
// after Close), and is an *Error when the peer answered with one.
func (e *Endpoint) Call(ctx context.Context, addr string, m Method, payload []byte, maxAnswer int) ([]byte, error) {
	// A closed endpoint opens no new connections, as its Raft layer does not.
	if e.ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %s to %s: the peer endpoint is closed", ErrNotSent, m, addr)
	}
	if maxAnswer == 0 {
		maxAnswer = MaxAnswer
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	pc, err := e.clients.get(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dial peer %s: %v", ErrNotSent, addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = pc.conn.SetDeadline(deadline)
	// Abandon the connection when ctx ends first.
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(time.Now()) })
	defer stop()
	pc.written = 0
	if err := writeFrame(pc.w, byte(m), payload); err != nil {
		pc.conn.Close()
		if pc.written == 0 {
			return nil, fmt.Errorf("%w: %s to %s: %v", ErrNotSent, m, addr, err)
		}
		return nil, fmt.Errorf("%s to %s: %w", m, addr, err)
	}
	status, answer, err := readFrame(pc.r, maxAnswer)
	if err != nil {
		pc.conn.Close()
		return nil, fmt.Errorf("%s to %s: read answer: %w", m, addr, err)
	}
	_ = pc.conn.SetDeadline(time.Time{})
	e.clients.put(addr, pc)
	if status != statusOK {
		return nil, decodeError(answer)
	}
	return answer, nil
}

// clientPool keeps idle RPC connections per peer address.
type clientPool struct {
	e      *Endpoint
	mu     sync.Mutex
	idle   map[string][]*pooledConn
	closed bool
}

// maxIdlePerPeer bounds idle connections kept per peer.
const maxIdlePerPeer = 8

// idleFor is how long an idle connection is kept: well below the server's
// idle timeout, so the server never closes one under a request.
const idleFor = 30 * time.Second

type pooledConn struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	written int
	idleAt  time.Time
}

// countingWriter counts bytes that reached the connection, so a failed
// write of zero bytes is known not to have been sent.
type countingWriter struct{ pc *pooledConn }

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.pc.conn.Write(p)
	c.pc.written += n
	return n, err
}

func newClientPool(e *Endpoint) *clientPool {
	return &clientPool{e: e, idle: make(map[string][]*pooledConn)}
}

func (p *clientPool) get(ctx context.Context, addr string) (*pooledConn, error) {
	for {
		p.mu.Lock()
		conns := p.idle[addr]
		var pc *pooledConn
		if n := len(conns); n > 0 {
			pc, p.idle[addr] = conns[n-1], conns[:n-1]
		}
		p.mu.Unlock()
		if pc == nil {
			break
		}
		if time.Since(pc.idleAt) < idleFor && stillOpen(pc) {
			return pc, nil
		}
		pc.conn.Close()
	}
	conn, err := p.e.dial(ctx, addr, channelRPC)
	if err != nil {
		return nil, err
	}
	pc := &pooledConn{conn: conn, r: bufio.NewReader(conn)}
	pc.w = bufio.NewWriterSize(countingWriter{pc}, 32<<10)
	return pc, nil
}

// stillOpen reports whether an idle connection can carry a request.
func stillOpen(pc *pooledConn) bool {
	return pc.r.Buffered() == 0 && sockpeek.IdleAlive(pc.conn)
}

func (p *clientPool) put(addr string, pc *pooledConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= maxIdlePerPeer {
		pc.conn.Close()
		return
	}
	pc.idleAt = time.Now()
	p.idle[addr] = append(p.idle[addr], pc)
}

func (p *clientPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, conns := range p.idle {
		for _, pc := range conns {
			pc.conn.Close()
		}
	}
	p.idle = nil
}

var _ io.Writer = countingWriter{}
