// Package peer owns member-to-member traffic: one listener on the Raft port
// that carries both hashicorp/raft's transport and the members' own RPCs
// (forwarded purchases, read indexes, address publication, status, rejoin),
// over mutual TLS when the node has certificates.
//
// The first byte a dialer sends picks the channel. With TLS, every
// connection must present a certificate of the cluster's CA, and a member
// may only speak for the server ID its certificate names: Raft RPCs whose
// header claims another ID or address are refused before Raft sees them,
// and RPC handlers learn the caller's verified identity.
package peer

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Channel bytes: the first byte on every connection.
const (
	channelRaft byte = 'R'
	channelRPC  byte = 'P'
)

// Identity supplies a member's TLS material; the node's pki.Reloader
// implements it.
type Identity interface {
	// ServerConfig requires and verifies a client certificate.
	ServerConfig() *tls.Config
	// ClientConfig presents this member's certificate and verifies that
	// the server's names expectedID.
	ClientConfig(expectedID string) *tls.Config
}

// Config configures an Endpoint.
type Config struct {
	// Bind is the address to listen on; Advertise is the address peers
	// dial (it may name a host by DNS).
	Bind, Advertise string
	// TLS, when set, makes every connection mutual TLS. Without it the
	// endpoint speaks plain TCP and trusts whatever a peer claims (local
	// development only).
	TLS Identity
	// NamesID reports whether a certificate names a server ID; required
	// with TLS.
	NamesID func(cert *x509.Certificate, id string) bool
	// ResolveID maps a peer's Raft address to its server ID, so that a dial
	// checks it reached that server. Required with TLS.
	ResolveID func(addr string) (string, bool)
	// RefuseVotes, when it answers true, makes the endpoint refuse vote
	// requests and leadership hand-overs before Raft sees them: a member
	// that lost its data must not vote until it is a member again.
	RefuseVotes func() bool
	// MaxConns caps accepted connections (default 256).
	MaxConns int
	Logger   *slog.Logger
}

// Timeouts of the endpoint. Every wait is bounded.
const (
	handshakeTimeout = 5 * time.Second
	// idleTimeout closes an RPC connection that carries no request.
	idleTimeout = 2 * time.Minute
	// frameTimeout bounds reading the rest of a frame once it began, and
	// writing an answer.
	frameTimeout = 15 * time.Second
)

// Endpoint is a member's peer listener and its client side.
type Endpoint struct {
	cfg      Config
	logger   *slog.Logger
	ln       net.Listener
	raftConn chan net.Conn
	handlers map[Method]Handler
	slots    chan struct{}
	clients  *clientPool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
}

// Caller is who sent an RPC.
type Caller struct {
	// Cert is the caller's verified certificate; nil without TLS.
	Cert    *x509.Certificate
	namesID func(*x509.Certificate, string) bool
}

// Is reports whether the caller may speak for server id: its certificate
// names id, or the endpoint runs without TLS.
func (c Caller) Is(id string) bool {
	if c.Cert == nil {
		return true
	}
	return c.namesID(c.Cert, id)
}

// Handler answers one RPC. A returned *Error reaches the caller with its
// code; any other error is answered as CodeInternal.
type Handler func(ctx context.Context, caller Caller, payload []byte) ([]byte, error)

// Listen opens the peer listener. Register handlers, then call Serve.
func Listen(cfg Config) (*Endpoint, error) {
	if _, _, err := net.SplitHostPort(cfg.Advertise); err != nil {
		return nil, fmt.Errorf("advertised peer address %q: %w", cfg.Advertise, err)
	}
	if cfg.TLS != nil && (cfg.NamesID == nil || cfg.ResolveID == nil) {
		return nil, errors.New("peer: NamesID and ResolveID are required with TLS")
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RefuseVotes == nil {
		cfg.RefuseVotes = func() bool { return false }
	}
	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("listen for peers on %s: %w", cfg.Bind, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Endpoint{
		cfg: cfg, logger: cfg.Logger, ln: ln,
		raftConn: make(chan net.Conn),
		handlers: make(map[Method]Handler),
		slots:    make(chan struct{}, cfg.MaxConns),
		ctx:      ctx, cancel: cancel,
		conns: make(map[net.Conn]struct{}),
	}
	e.clients = newClientPool(e)
	return e, nil
}

// Handle registers the handler of a method; call it before Serve.
func (e *Endpoint) Handle(m Method, h Handler) { e.handlers[m] = h }

// Serve accepts connections until Close.
func (e *Endpoint) Serve() {
	e.wg.Add(1)
	go e.acceptLoop()
}

// Addr is the listener's bound address.
func (e *Endpoint) Addr() net.Addr { return e.ln.Addr() }

// Close stops accepting, closes every connection and waits for the
// endpoint's goroutines.
func (e *Endpoint) Close() error {
	var err error
	e.closed.Do(func() {
		e.cancel()
		err = e.ln.Close()
		e.connsMu.Lock()
		for c := range e.conns {
			c.Close()
		}
		e.connsMu.Unlock()
		e.clients.close()
		e.wg.Wait()
	})
	return err
}

func (e *Endpoint) track(c net.Conn, on bool) bool {
	e.connsMu.Lock()
	defer e.connsMu.Unlock()
	if on {
		if e.ctx.Err() != nil {
			return false
		}
		e.conns[c] = struct{}{}
	} else {
		delete(e.conns, c)
	}
	return true
}

func (e *Endpoint) acceptLoop() {
	defer e.wg.Done()
	var delay time.Duration
	for {
		conn, err := e.ln.Accept()
		if err != nil {
			if e.ctx.Err() != nil {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			e.logger.Warn("Accepting a peer connection failed", "error", err)
			select {
			case <-time.After(delay):
				continue
			case <-e.ctx.Done():
				return
			}
		}
		delay = 0
		select {
		case e.slots <- struct{}{}:
		default:
			e.logger.Warn("Refusing a peer connection: too many open", "remote", conn.RemoteAddr().String(), "limit", e.cfg.MaxConns)
			conn.Close()
			continue
		}
		if !e.track(conn, true) {
			conn.Close()
			<-e.slots
			return
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer func() { <-e.slots }()
			defer e.track(conn, false)
			e.handleConn(conn)
		}()
	}
}

// handleConn completes the handshake, reads the channel byte and serves the
// connection until it ends.
func (e *Endpoint) handleConn(raw net.Conn) {
	conn := raw
	var cert *x509.Certificate
	_ = raw.SetDeadline(time.Now().Add(handshakeTimeout))
	if e.cfg.TLS != nil {
		tc := tls.Server(raw, e.cfg.TLS.ServerConfig())
		if err := tc.HandshakeContext(e.ctx); err != nil {
			e.logger.Warn("Refused a peer connection: TLS handshake failed", "remote", raw.RemoteAddr().String(), "error", err)
			raw.Close()
			return
		}
		certs := tc.ConnectionState().PeerCertificates
		if len(certs) == 0 {
			raw.Close()
			return
		}
		cert, conn = certs[0], tc
	}
	br := bufio.NewReader(conn)
	channel, err := br.ReadByte()
	if err != nil {
		conn.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	switch channel {
	case channelRaft:
		e.serveRaft(conn, br, cert)
	case channelRPC:
		e.serveRPC(conn, br, Caller{Cert: cert, namesID: e.cfg.NamesID})
	default:
		e.logger.Warn("Refused a peer connection: unknown channel", "remote", raw.RemoteAddr().String(), "channel", channel)
		conn.Close()
	}
}

// serveRaft hands a Raft connection to the transport through a checking
// proxy and waits until it ends.
func (e *Endpoint) serveRaft(conn net.Conn, br *bufio.Reader, cert *x509.Certificate) {
	checked := newCheckedConn(conn, br, claimCheck{cert: cert, namesID: e.cfg.NamesID, refuseVotes: e.cfg.RefuseVotes, logger: e.logger})
	select {
	case e.raftConn <- checked:
	case <-e.ctx.Done():
		conn.Close()
		return
	}
	checked.run()
}

// RaftLayer returns the raft.StreamLayer over this endpoint. Closing it
// closes the endpoint.
func (e *Endpoint) RaftLayer() raft.StreamLayer { return raftLayer{e: e} }

// DetachedRaftLayer returns a raft.StreamLayer over this endpoint whose
// Close only ends its own Accept: the endpoint stays open for the stream
// layer of the next Raft instance. hashicorp/raft closes its transport, and
// so the stream layer, when it shuts down; a node that replaces its Raft
// instance in process (recovery from a lost quorum) keeps its endpoint.
func (e *Endpoint) DetachedRaftLayer() raft.StreamLayer {
	return raftLayer{e: e, detached: make(chan struct{}), closeOnce: new(sync.Once)}
}

// raftLayer is the endpoint as hashicorp/raft's stream layer. It advertises
// a host name rather than an IP: a pod's IP changes on restart while its DNS
// name in the headless Service does not.
type raftLayer struct {
	e *Endpoint
	// detached, when set, is what Close closes instead of the endpoint.
	detached  chan struct{}
	closeOnce *sync.Once
}

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.e.raftConn:
		return c, nil
	case <-l.e.ctx.Done():
		return nil, net.ErrClosed
	case <-l.detached: // nil, and so never ready, unless detached
		return nil, net.ErrClosed
	}
}

func (l raftLayer) Close() error {
	if l.detached == nil {
		return l.e.Close()
	}
	l.closeOnce.Do(func() { close(l.detached) })
	return nil
}

func (l raftLayer) Addr() net.Addr { return advertisedAddr(l.e.cfg.Advertise) }

func (l raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(l.e.ctx, timeout)
	defer cancel()
	return l.e.dial(ctx, string(address), channelRaft)
}

// dial opens a connection to a peer's endpoint on a channel, verifying with
// TLS that it reached the server the address belongs to.
func (e *Endpoint) dial(ctx context.Context, addr string, channel byte) (net.Conn, error) {
	d := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := raw
	if e.cfg.TLS != nil {
		id, ok := e.cfg.ResolveID(addr)
		if !ok {
			raw.Close()
			return nil, fmt.Errorf("no member is known at %s", addr)
		}
		tc := tls.Client(raw, e.cfg.TLS.ClientConfig(id))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake with %s at %s: %w", id, addr, err)
		}
		conn = tc
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(deadline)
	}
	if _, err := conn.Write([]byte{channel}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open channel to %s: %w", addr, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// advertisedAddr is a host:port that may name a host by DNS.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }
