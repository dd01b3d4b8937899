package main

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
)

// rawClient speaks just the HTTP/1.1 the benchmark needs over keep-alive
// connections: it writes each request in one write and parses the status
// line, the headers that frame the body (Content-Length, chunked,
// Connection: close) and the body. net/http's client spends two goroutine
// hand-offs and a dozen allocations per request; on a machine the client
// shares with the servers, that CPU is taken from them. -client std keeps
// net/http's client, for comparison.
type rawClient struct {
	conns   int
	timeout time.Duration

	mu    sync.Mutex
	pools map[string]*rawPool
}

func newRawClient(conns int, timeout time.Duration) *rawClient {
	return &rawClient{conns: conns, timeout: timeout, pools: make(map[string]*rawPool)}
}

// rawPool holds one target's connections: at most conns open, idle ones
// kept for the next request.
type rawPool struct {
	host  string
	idle  chan *rawConn
	slots chan struct{}
}

type rawConn struct {
	nc  net.Conn
	r   *bufio.Reader
	buf []byte // the request being written
}

func (c *rawClient) pool(baseURL string) (*rawPool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pools[baseURL]; ok {
		return p, nil
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("raw client: %q: want http://host:port", baseURL)
	}
	p := &rawPool{host: u.Host, idle: make(chan *rawConn, c.conns), slots: make(chan struct{}, c.conns)}
	c.pools[baseURL] = p
	return p, nil
}

func (c *rawClient) closeIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pools {
		for {
			select {
			case rc := <-p.idle:
				rc.nc.Close()
				<-p.slots
				continue
			default:
			}
			break
		}
	}
}

func (p *rawPool) get(ctx context.Context, timeout time.Duration) (*rawConn, error) {
	select {
	case rc := <-p.idle:
		return rc, nil
	default:
	}
	select {
	case rc := <-p.idle:
		return rc, nil
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	d := net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", p.host)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return &rawConn{nc: nc, r: bufio.NewReaderSize(nc, 4096), buf: make([]byte, 0, 512)}, nil
}

func (p *rawPool) put(rc *rawConn, reusable bool) {
	if reusable {
		p.idle <- rc
		return
	}
	rc.nc.Close()
	<-p.slots
}

// do sends one request and reads its whole answer. It returns the status
// and, for an answer other than want, the first 256 bytes of its body.
func (c *rawClient) do(ctx context.Context, baseURL, method, target string, body []byte, want int) (int, []byte, error) {
	p, err := c.pool(baseURL)
	if err != nil {
		return 0, nil, err
	}
	rc, err := p.get(ctx, c.timeout)
	if err != nil {
		return 0, nil, err
	}
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = rc.nc.SetDeadline(deadline)
	// A cancelled run must not wait for a slow answer.
	stop := context.AfterFunc(ctx, func() { _ = rc.nc.SetDeadline(time.Unix(1, 0)) })
	status, detail, keep, err := rc.roundTrip(p.host, method, target, body, want)
	if !stop() || ctx.Err() != nil {
		keep = false
		if err != nil {
			err = ctx.Err()
		}
	}
	p.put(rc, keep && err == nil)
	return status, detail, err
}

func (rc *rawConn) roundTrip(host, method, target string, body []byte, want int) (status int, detail []byte, keep bool, err error) {
	b := append(rc.buf[:0], method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	if body != nil {
		b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
	}
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	rc.buf = b
	if _, err := rc.nc.Write(b); err != nil {
		return 0, nil, false, err
	}
	return rc.readResponse(want)
}

var errMalformed = errors.New("raw client: malformed HTTP answer")

// readResponse reads one answer. keep reports whether the connection can
// carry the next request.
func (rc *rawConn) readResponse(want int) (status int, detail []byte, keep bool, err error) {
	line, err := rc.line()
	if err != nil {
		return 0, nil, false, err
	}
	// "HTTP/1.1 201 Created"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, false, errMalformed
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, false, errMalformed
	}
	length, chunked, keep := int64(-1), false, line[7] == '1'
	for {
		h, err := rc.line()
		if err != nil {
			return 0, nil, false, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte{':'})
		if !ok {
			return 0, nil, false, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, nil, false, errMalformed
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
			if !chunked {
				return 0, nil, false, errMalformed
			}
		case asciiEqualFold(name, "Connection"):
			if asciiEqualFold(value, "close") {
				keep = false
			}
		}
	}
	var sink bodySink
	if status != want {
		sink.keep = 256
	}
	switch {
	case status == 204 || status == 304 || status/100 == 1:
	case chunked:
		err = rc.readChunked(&sink)
	case length >= 0:
		err = sink.copyN(rc.r, length)
	default: // the body runs to the end of the connection
		keep = false
		_, err = io.Copy(&sink, rc.r)
	}
	if err != nil {
		return 0, nil, false, err
	}
	return status, sink.kept, keep, nil
}

func (rc *rawConn) readChunked(sink *bodySink) error {
	for {
		line, err := rc.line()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte{';'})
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return errMalformed
		}
		if n == 0 {
			for { // trailers, then the empty line
				t, err := rc.line()
				if err != nil {
					return err
				}
				if len(t) == 0 {
					return nil
				}
			}
		}
		if err := sink.copyN(rc.r, n); err != nil {
			return err
		}
		if crlf, err := rc.line(); err != nil || len(crlf) != 0 {
			return errMalformed
		}
	}
}

// line reads one CRLF-terminated line, without its terminator.
func (rc *rawConn) line() ([]byte, error) {
	line, err := rc.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errMalformed
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'}), nil
}

// bodySink discards a body, keeping its first keep bytes.
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
