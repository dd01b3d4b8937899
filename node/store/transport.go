package store

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is a raft.StreamLayer over plain TCP that advertises a host
// name rather than an IP. hashicorp/raft's own TCP transport insists on an
// IP, but a pod's IP changes on restart while its DNS name in the headless
// Service does not.
type streamLayer struct {
	net.Listener
	advertise advertisedAddr
}

// advertisedAddr is a host:port that may name a host by DNS.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

func newStreamLayer(bind, advertise string) (*streamLayer, error) {
	if _, _, err := net.SplitHostPort(advertise); err != nil {
		return nil, fmt.Errorf("advertised raft address %q: %w", advertise, err)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	return &streamLayer{Listener: ln, advertise: advertisedAddr(advertise)}, nil
}

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return d.Dial("tcp", string(address))
}

// Addr implements net.Listener with the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }
