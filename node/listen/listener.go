// Package listen owns how a node's HTTP listeners meet the network: a cap on
// the connections open at once, with a clear refusal past it, and the
// timeouts and header limits of the servers behind them. A client that opens
// connections and never finishes a request, or never reads an answer, then
// holds a slot for a bounded time, and a flood of them cannot take the
// process's file descriptors from its other listener.
package listen

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Listener.
type Options struct {
	// MaxConns bounds the connections open at once (at least 1). Past it a
	// new connection is answered 503 and closed.
	MaxConns int
	// TLS, when set, serves TLS: accepted connections are *tls.Conn (so
	// net/http sees them as such) and the refusal is sent over TLS too.
	TLS *tls.Config
	// RefusalTimeout bounds how long a refused connection is kept to
	// deliver its answer (default 2s).
	RefusalTimeout time.Duration
}

// maxRefusing bounds the refusals under way at once, each holding a
// descriptor for at most RefusalTimeout. Past it a connection is closed
// without an answer rather than hold more descriptors.
const maxRefusing = 64

// Listener caps the connections accepted from an inner listener.
type Listener struct {
	inner    net.Listener
	opts     Options
	refusal  []byte
	open     atomic.Int64
	refused  atomic.Uint64
	refusing chan struct{}

	mu     sync.Mutex // orders refusals' wg.Add before Close's wg.Wait
	closed bool
	wg     sync.WaitGroup // refusals under way
}

// New returns a Listener over inner.
func New(inner net.Listener, opts Options) *Listener {
	opts.MaxConns = max(opts.MaxConns, 1)
	if opts.RefusalTimeout <= 0 {
		opts.RefusalTimeout = 2 * time.Second
	}
	return &Listener{inner: inner, opts: opts, refusal: refusalAnswer(opts.MaxConns), refusing: make(chan struct{}, maxRefusing)}
}

// refusalAnswer is the whole answer a refused connection gets, in the
// client API's error shape.
func refusalAnswer(maxConns int) []byte {
	body := fmt.Sprintf(`{"error":{"code":"too_many_connections","message":"this listener has its maximum of %d connections open; retry later"}}`+"\n", maxConns)
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// Accept returns the next connection within the cap, answering and closing
// every connection past it on the way.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > int64(l.opts.MaxConns) {
			l.open.Add(-1)
			l.refuse(c)
			continue
		}
		var conn net.Conn = &countedConn{Conn: c, open: &l.open}
		if l.opts.TLS != nil {
			conn = tls.Server(conn, l.opts.TLS)
		}
		return conn, nil
	}
}

// Close closes the inner listener and waits for the refusals under way.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	err := l.inner.Close()
	l.wg.Wait()
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Open is the number of accepted connections not yet closed.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Refused is the number of connections refused so far.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// RegisterMetrics exports the open and refused connection counts, labelled
// with the listener's name.
func (l *Listener) RegisterMetrics(reg prometheus.Registerer, name string) error {
	labels := prometheus.Labels{"listener": name}
	return errors.Join(
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "buytracker_listener_open_connections", Help: "Connections open on a listener.", ConstLabels: labels,
		}, func() float64 { return float64(l.Open()) })),
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "buytracker_listener_max_connections", Help: "The cap on a listener's open connections.", ConstLabels: labels,
		}, func() float64 { return float64(l.opts.MaxConns) })),
		reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "buytracker_listener_refused_connections_total", Help: "Connections answered 503 because a listener was at its cap.", ConstLabels: labels,
		}, func() float64 { return float64(l.Refused()) })),
	)
}

func (l *Listener) refuse(c net.Conn) {
	l.refused.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return
	}
	select {
	case l.refusing <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() { <-l.refusing }()
		l.sendRefusal(c)
	}()
}

// sendRefusal reads the request's head, writes the 503 answer, ends the
// stream and reads on until the client closes. An answer sent before the
// request is taken by clients as a stale answer on an idle connection, and
// closing a socket with unread data resets it, which can cost the client
// the answer.
func (l *Listener) sendRefusal(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(l.opts.RefusalTimeout))
	conn := c
	if l.opts.TLS != nil {
		tc := tls.Server(c, l.opts.TLS)
		if err := tc.Handshake(); err != nil {
			return
		}
		conn = tc
	}
	if err := readRequestHead(conn); err != nil {
		return
	}
	if _, err := conn.Write(l.refusal); err != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.CopyN(io.Discard, conn, 1<<20)
}

// maxRefusedHead is how much of a refused request is read looking for the
// end of its head before answering anyway.
const maxRefusedHead = 64 << 10

// readRequestHead reads until the blank line that ends a request's head, or
// maxRefusedHead bytes.
func readRequestHead(r io.Reader) error {
	buf := make([]byte, 4096)
	var tail []byte // the last bytes read, to find a terminator split across reads
	for total := 0; total < maxRefusedHead; {
		n, err := r.Read(buf)
		total += n
		tail = append(tail, buf[:n]...)
		if bytes.Contains(tail, []byte("\r\n\r\n")) {
			return nil
		}
		if len(tail) > 3 {
			tail = append(tail[:0], tail[len(tail)-3:]...)
		}
		if err != nil {
			return fmt.Errorf("read refused request: %w", err)
		}
	}
	return nil
}

// countedConn gives its slot back when closed.
type countedConn struct {
	net.Conn
	open   *atomic.Int64
	closed atomic.Bool
}

// CloseWrite lets net/http end its side of a connection before closing it,
// as it does after an error answer, so that the client reads the answer
// instead of a reset.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.open.Add(-1)
	}
	return c.Conn.Close()
}
