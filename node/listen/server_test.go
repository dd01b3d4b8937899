package listen

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

var shortLimits = Limits{ReadHeaderTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, IdleTimeout: time.Second, MaxHeaderBytes: 8 << 10}

func TestATricklingBodyIsCutOffAfterTheReadTimeout(t *testing.T) {
	bodyErr := make(chan error, 1)
	ln := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		bodyErr <- err
	}), shortLimits, Options{MaxConns: 10})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// One byte every 20 ms: the whole body would take 20 s.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte{'1'}); err != nil {
					return
				}
			}
		}
	}()
	select {
	case err := <-bodyErr:
		if err == nil {
			t.Fatal("the trickled body was read whole")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a body trickled at 50 bytes/s was still being read after 10s; the read timeout is 1s")
	}
	waitFor(t, "the server to close the trickling connection", func() bool { return ln.Open() == 0 })
}

func TestASlowReaderIsCutOffAfterTheWriteTimeout(t *testing.T) {
	writeErr := make(chan error, 1)
	ln := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		for range 2048 { // 64 MiB, far more than socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}), shortLimits, Options{MaxConns: 10})
	c := dialSmallReceiveBuffer(t, ln.Addr().String())
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing.
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("64 MiB were written to a client that read nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the answer to a client that reads nothing was still being written after 10s; the write timeout is 1s")
	}
	waitFor(t, "the server to close the slow reader's connection", func() bool { return ln.Open() == 0 })
}

// dialSmallReceiveBuffer connects with a small receive window, as a client
// that reads slowly over a slow link would.
func dialSmallReceiveBuffer(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHugeHeadersAreRefusedWith431(t *testing.T) {
	ln := serve(t, ok, testLimits, Options{MaxConns: 10})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		// 900 KiB of headers; the write fails once the server has answered
		// and closed.
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 900<<10)+"\r\n\r\n")
	}()
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(c, buf, 12)
	if n < 12 {
		t.Fatalf("no answer to 900 KiB of headers: %v", err)
	}
	if status := string(buf[9:12]); status != "431" {
		t.Fatalf("900 KiB of headers answered %q, want 431", buf[:n])
	}
}
