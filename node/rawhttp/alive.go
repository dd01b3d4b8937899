package rawhttp

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// idleAlive reports whether an idle connection can carry a request: the
// server has neither closed it nor sent anything unasked. It peeks at the
// socket without blocking; EAGAIN is the healthy answer.
func idleAlive(nc net.Conn) bool {
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
