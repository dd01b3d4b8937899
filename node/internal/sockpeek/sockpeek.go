// Package sockpeek tells whether an idle client connection can still carry
// a request, without blocking: the check pooled clients make before reuse.
package sockpeek

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// IdleAlive reports whether an idle connection can carry a request: the
// server has neither closed it nor sent anything unasked. It peeks at the
// socket without blocking; EAGAIN is the healthy answer. For a TLS
// connection it peeks at the TCP socket beneath: a close_notify or any other
// unasked record means the stream is closing or out of step.
func IdleAlive(nc net.Conn) bool {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		// Nothing to read is the healthy answer; 0 bytes is the server's
		// close, and bytes nobody asked for put the stream out of step.
		_, _, rerr := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		alive = errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EWOULDBLOCK)
		return true // never wait for readiness
	})
	return err == nil && alive
}
