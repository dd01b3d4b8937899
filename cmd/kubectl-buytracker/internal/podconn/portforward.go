// Package podconn opens connections to the admin API of a BuyTracker's
// members from outside the cluster: TCP streams to a pod's port through the
// API server's port-forward subresource, and admin API clients over them
// that verify the member's certificate against the cluster's CA.
package podconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// Dialer opens a byte stream to a pod's admin port.
type Dialer interface {
	DialPod(ctx context.Context, pod string) (net.Conn, error)
}

// PortForward dials pods through the API server's pods/portforward
// subresource (websocket, falling back to SPDY, as kubectl port-forward
// does), without a local listener: each DialPod is one stream pair on a
// connection kept per pod. Close ends them all.
type PortForward struct {
	config    *rest.Config
	core      rest.Interface
	namespace string
	port      int

	mu        sync.Mutex
	conns     map[string]streamhttp.Connection
	requestID int
	closed    bool
}

// NewPortForward returns a dialer of port on the pods of namespace; core
// is the REST client of the core API group (clientset.CoreV1().RESTClient()).
func NewPortForward(config *rest.Config, core rest.Interface, namespace string, port int) *PortForward {
	return &PortForward{config: config, core: core, namespace: namespace, port: port, conns: map[string]streamhttp.Connection{}}
}

// errStreamWait bounds how long a connection that ended waits for the
// error stream to say why, so that a refused port is reported as such and
// not as a bare EOF.
const errStreamWait = time.Second

// DialPod opens one stream to the pod's port.
func (p *PortForward) DialPod(ctx context.Context, pod string) (net.Conn, error) {
	conn, id, err := p.connection(ctx, pod)
	if err != nil {
		return nil, err
	}
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(p.port))
	headers.Set(corev1.PortForwardRequestIDHeader, strconv.Itoa(id))
	errorStream, err := conn.CreateStream(headers)
	if err != nil {
		p.drop(pod, conn)
		return nil, fmt.Errorf("port-forward to pod %s: error stream: %w", pod, err)
	}
	// Nothing is written to the error stream; the pod's side reports on it.
	_ = errorStream.Close()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	dataStream, err := conn.CreateStream(headers)
	if err != nil {
		conn.RemoveStreams(errorStream)
		p.drop(pod, conn)
		return nil, fmt.Errorf("port-forward to pod %s: data stream: %w", pod, err)
	}
	sc := &streamConn{pod: pod, port: p.port, conn: conn, data: dataStream, errors: errorStream, errDone: make(chan struct{})}
	go sc.readErrors()
	return sc, nil
}

// connection returns the pod's port-forward connection, dialing it when
// there is none (or the last one ended), and a fresh request ID.
func (p *PortForward) connection(ctx context.Context, pod string) (streamhttp.Connection, int, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, 0, errors.New("port-forward: closed")
	}
	p.requestID++
	id := p.requestID
	if conn, ok := p.conns[pod]; ok {
		select {
		case <-conn.CloseChan():
			delete(p.conns, pod)
		default:
			p.mu.Unlock()
			return conn, id, nil
		}
	}
	p.mu.Unlock()

	conn, err := p.dial(ctx, pod)
	if err != nil {
		return nil, 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = conn.Close()
		return nil, 0, errors.New("port-forward: closed")
	}
	if existing, ok := p.conns[pod]; ok {
		// Another call dialed the same pod meanwhile: keep one.
		_ = conn.Close()
		return existing, id, nil
	}
	p.conns[pod] = conn
	return conn, id, nil
}

// dial upgrades a POST to pods/NAME/portforward. The upgrade itself takes
// no context, so it runs in a goroutine that closes a connection which
// arrives after ctx ended.
func (p *PortForward) dial(ctx context.Context, pod string) (streamhttp.Connection, error) {
	dialer, err := p.dialer(pod)
	if err != nil {
		return nil, err
	}
	type dialed struct {
		conn streamhttp.Connection
		err  error
	}
	done := make(chan dialed, 1)
	go func() {
		conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		done <- dialed{conn, err}
	}()
	select {
	case d := <-done:
		if d.err != nil {
			return nil, fmt.Errorf("port-forward to pod %s/%s: %w", p.namespace, pod, d.err)
		}
		return d.conn, nil
	case <-ctx.Done():
		go func() {
			if d := <-done; d.conn != nil {
				_ = d.conn.Close()
			}
		}()
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", p.namespace, pod, ctx.Err())
	}
}

func (p *PortForward) dialer(pod string) (streamhttp.Dialer, error) {
	url := p.core.Post().Resource("pods").Namespace(p.namespace).Name(pod).SubResource("portforward").URL()
	transport, upgrader, err := spdy.RoundTripperFor(p.config)
	if err != nil {
		return nil, fmt.Errorf("port-forward: SPDY transport: %w", err)
	}
	spdyDialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	wsDialer, err := portforward.NewSPDYOverWebsocketDialerForStreaming(url, p.config)
	if err != nil {
		return nil, fmt.Errorf("port-forward: websocket dialer: %w", err)
	}
	// Websockets first (what API servers since 1.31 prefer), SPDY when the
	// server or a proxy in between refuses the upgrade, as kubectl does.
	return portforward.NewFallbackDialerForStreaming(wsDialer, spdyDialer, func(err error) bool {
		return streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err)
	}), nil
}

// drop forgets a pod's connection that failed, and closes it.
func (p *PortForward) drop(pod string, conn streamhttp.Connection) {
	p.mu.Lock()
	if p.conns[pod] == conn {
		delete(p.conns, pod)
	}
	p.mu.Unlock()
	_ = conn.Close()
}

// Close ends every port-forward connection, and with them their streams.
func (p *PortForward) Close() error {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.closed = map[string]streamhttp.Connection{}, true
	p.mu.Unlock()
	var errs []error
	for _, c := range conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// streamConn is one forwarded TCP connection as a net.Conn.
type streamConn struct {
	pod          string
	port         int
	conn         streamhttp.Connection
	data, errors streamhttp.Stream

	// errDone is closed once the error stream ended; remoteErr is what it
	// said, if anything.
	errDone   chan struct{}
	remoteErr error
	closeOnce sync.Once
}

// readErrors reads the error stream to its end: the pod's side writes a
// message there when it cannot reach the port, then closes it.
func (c *streamConn) readErrors() {
	defer close(c.errDone)
	msg, err := io.ReadAll(c.errors)
	switch {
	case len(msg) > 0:
		c.remoteErr = fmt.Errorf("port-forward to pod %s port %d: %s", c.pod, c.port, msg)
		// Unblock a Read waiting for data that will not come.
		_ = c.data.Reset()
	case err != nil && !errors.Is(err, io.EOF):
		c.remoteErr = fmt.Errorf("port-forward to pod %s port %d: error stream: %w", c.pod, c.port, err)
	}
}

func (c *streamConn) Read(b []byte) (int, error) {
	n, err := c.data.Read(b)
	if err != nil {
		timer := time.NewTimer(errStreamWait)
		defer timer.Stop()
		select {
		case <-c.errDone:
			if c.remoteErr != nil {
				return n, c.remoteErr
			}
		case <-timer.C:
		}
	}
	return n, err
}

func (c *streamConn) Write(b []byte) (int, error) {
	select {
	case <-c.errDone:
		if c.remoteErr != nil {
			return 0, c.remoteErr
		}
	default:
	}
	return c.data.Write(b)
}

// Close resets the data stream (discarding what was not sent, so that the
// error stream is not held up behind it) and releases both streams.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.data.Reset()
		c.conn.RemoveStreams(c.data, c.errors)
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return podAddr{pod: "local"} }
func (c *streamConn) RemoteAddr() net.Addr { return podAddr{pod: c.pod, port: c.port} }

// Deadlines are not supported by the streams; the HTTP client bounds every
// call with its context and timeout, which close the connection instead.
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// podAddr names the far end of a forwarded connection.
type podAddr struct {
	pod  string
	port int
}

func (a podAddr) Network() string { return "portforward" }
func (a podAddr) String() string  { return fmt.Sprintf("%s:%d", a.pod, a.port) }
