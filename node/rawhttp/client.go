// Package rawhttp is a minimal HTTP/1.1 client over keep-alive connections,
// for callers that send many small requests of one known shape and wait for
// each answer: a follower forwarding purchases to its leader, the benchmark's
// load generator.
//
// The request is written in one write by the goroutine that asks, and the
// answer is read by that same goroutine. net/http's client hands every request
// to a writer goroutine and every answer back from a reader goroutine; on an
// idle two-core machine those hand-offs cost about 0.25 ms per round trip
// (docs/benchmarks.md), and a dozen allocations under load. What this client
// does not do: TLS, proxies, redirects, HTTP/2, retries of requests that were
// written.
package rawhttp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/buytracker/buytracker/node/internal/sockpeek"
)

var (
	// ErrMalformed means the server's answer is not HTTP/1.x this client
	// reads.
	ErrMalformed = errors.New("rawhttp: malformed HTTP answer")
	// ErrNotSent wraps every failure that happened before any byte of the
	// request was written (a bad URL, a refused dial, no free connection
	// before the deadline): the server cannot have acted on it. Any other
	// error leaves that open.
	ErrNotSent = errors.New("rawhttp: request not sent")
)

// Options configure a Client.
type Options struct {
	// MaxConns bounds the connections per target (at least 1).
	MaxConns int
	// Timeout bounds each request (or its context's deadline, if sooner).
	Timeout time.Duration
	// TrustIdle skips the check that an idle connection is still open
	// before it is reused (one non-blocking peek per request). A load
	// generator whose servers never close idle connections can skip it; a
	// caller that must know whether a request was sent cannot.
	TrustIdle bool
}

// Client sends requests over keep-alive connections. It is safe for
// concurrent use.
type Client struct {
	maxConns  int
	timeout   time.Duration
	trustIdle bool

	mu    sync.Mutex
	pools map[string]*pool
}

// New returns a client.
func New(opts Options) *Client {
	return &Client{maxConns: max(opts.MaxConns, 1), timeout: opts.Timeout, trustIdle: opts.TrustIdle, pools: make(map[string]*pool)}
}

// Request is one request.
type Request struct {
	// BaseURL is "http://host:port"; any path in it is ignored.
	BaseURL string
	Method  string
	// Target is the path and query, for example "/buy".
	Target string
	// Header holds extra header lines, each ending in "\r\n". Host and,
	// with a body, Content-Length are written by the client.
	Header string
	Body   []byte
	// MaxBody is how many bytes of the answer's body are kept; the rest is
	// read and dropped. DropBodyOf names a status whose body is not kept at
	// all (0: none), so that a load generator copies no successful answer.
	MaxBody    int
	DropBodyOf int
}

// Response is an answer.
type Response struct {
	Status int
	// Body is the first MaxBody bytes of the answer's body.
	Body []byte
}

// pool holds one target's connections: at most maxConns open, idle ones
// kept for the next request.
type pool struct {
	host  string
	idle  chan *conn
	slots chan struct{}
}

type conn struct {
	nc  net.Conn
	r   *bufio.Reader
	buf []byte // the request being written
}

func (c *Client) pool(baseURL string) (*pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pools[baseURL]; ok {
		return p, nil
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("rawhttp: %q: want http://host:port", baseURL)
	}
	p := &pool{host: u.Host, idle: make(chan *conn, c.maxConns), slots: make(chan struct{}, c.maxConns)}
	c.pools[baseURL] = p
	return p, nil
}

// CloseIdle closes every idle connection.
func (c *Client) CloseIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pools {
		for {
			select {
			case cn := <-p.idle:
				cn.nc.Close()
				<-p.slots
				continue
			default:
			}
			break
		}
	}
}

// get returns an idle connection the server has not closed, or dials one.
func (p *pool) get(ctx context.Context, timeout time.Duration, trustIdle bool) (*conn, error) {
	for {
		var cn *conn
		select {
		case cn = <-p.idle:
		default:
			select {
			case cn = <-p.idle:
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if cn == nil {
			break
		}
		// A server may close a connection while it sits idle (a restart,
		// an idle timeout). Writing a request on it would leave its fate
		// unknown, so such a connection is dropped before it is used.
		if trustIdle || sockpeek.IdleAlive(cn.nc) {
			return cn, nil
		}
		p.put(cn, false)
	}
	d := net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", p.host)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, 4096), buf: make([]byte, 0, 512)}, nil
}

func (p *pool) put(cn *conn, reusable bool) {
	if reusable {
		p.idle <- cn
		return
	}
	cn.nc.Close()
	<-p.slots
}

// Do sends one request and reads its whole answer. An error that wraps
// ErrNotSent means the request was not sent.
func (c *Client) Do(ctx context.Context, req *Request) (Response, error) {
	p, err := c.pool(req.BaseURL)
	if err != nil {
		return Response{}, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	cn, err := p.get(ctx, c.timeout, c.trustIdle)
	if err != nil {
		return Response{}, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = cn.nc.SetDeadline(deadline)
	// A cancelled caller must not wait for a slow answer.
	stop := context.AfterFunc(ctx, func() { _ = cn.nc.SetDeadline(time.Unix(1, 0)) })
	resp, keep, err := cn.roundTrip(p.host, req)
	if !stop() || ctx.Err() != nil {
		keep = false
		if err != nil {
			err = ctx.Err()
		}
	}
	// Bytes left after a whole answer mean the stream is out of step.
	p.put(cn, keep && err == nil && cn.r.Buffered() == 0)
	return resp, err
}

func (cn *conn) roundTrip(host string, req *Request) (Response, bool, error) {
	b := append(cn.buf[:0], req.Method...)
	b = append(b, ' ')
	b = append(b, req.Target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	b = append(b, req.Header...)
	if req.Body != nil {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(req.Body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, req.Body...)
	cn.buf = b
	if _, err := cn.nc.Write(b); err != nil {
		return Response{}, false, err
	}
	return cn.readResponse(req)
}

// readResponse reads one answer. keep reports whether the connection can
// carry the next request.
func (cn *conn) readResponse(req *Request) (resp Response, keep bool, err error) {
	line, err := cn.line()
	if err != nil {
		return resp, false, err
	}
	// "HTTP/1.1 201 Created"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return resp, false, ErrMalformed
	}
	if resp.Status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return resp, false, ErrMalformed
	}
	length, chunked, keep := int64(-1), false, line[7] == '1'
	for {
		h, err := cn.line()
		if err != nil {
			return resp, false, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte{':'})
		if !ok {
			return resp, false, ErrMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return resp, false, ErrMalformed
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
			if !chunked {
				return resp, false, ErrMalformed
			}
		case asciiEqualFold(name, "Connection"):
			if asciiEqualFold(value, "close") {
				keep = false
			}
		}
	}
	var sink bodySink
	if resp.Status != req.DropBodyOf {
		sink.keep = req.MaxBody
		if length >= 0 {
			sink.kept = make([]byte, 0, min(length, int64(req.MaxBody)))
		}
	}
	switch {
	case resp.Status == 204 || resp.Status == 304 || resp.Status/100 == 1 || req.Method == "HEAD":
	case chunked:
		err = cn.readChunked(&sink)
	case length >= 0:
		err = sink.copyN(cn.r, length)
	default: // the body runs to the end of the connection
		keep = false
		_, err = io.Copy(&sink, cn.r)
	}
	if err != nil {
		return resp, false, err
	}
	resp.Body = sink.kept
	return resp, keep, nil
}

func (cn *conn) readChunked(sink *bodySink) error {
	for {
		line, err := cn.line()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte{';'})
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return ErrMalformed
		}
		if n == 0 {
			for { // trailers, then the empty line
				t, err := cn.line()
				if err != nil {
					return err
				}
				if len(t) == 0 {
					return nil
				}
			}
		}
		if err := sink.copyN(cn.r, n); err != nil {
			return err
		}
		if crlf, err := cn.line(); err != nil || len(crlf) != 0 {
			return ErrMalformed
		}
	}
}

// line reads one CRLF-terminated line, without its terminator.
func (cn *conn) line() ([]byte, error) {
	line, err := cn.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, ErrMalformed
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'}), nil
}

// bodySink drops a body, keeping its first keep bytes.
type bodySink struct {
	keep int
	kept []byte
}

func (s *bodySink) Write(p []byte) (int, error) {
	if room := s.keep - len(s.kept); room > 0 {
		s.kept = append(s.kept, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (s *bodySink) copyN(r *bufio.Reader, n int64) error {
	for n > 0 {
		chunk, err := r.Peek(int(min(n, int64(r.Size()))))
		if len(chunk) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		_, _ = s.Write(chunk)
		_, _ = r.Discard(len(chunk))
		n -= int64(len(chunk))
	}
	return nil
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
