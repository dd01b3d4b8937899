package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newNetwork makes a network with n hosts n1..nN, removed at the test's end.
func newNetwork(t *testing.T, hosts int) (*Network, []*Host) {
	t.Helper()
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := New(ctx, PIDPrefix("btc"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	var hs []*Host
	for i := 1; i <= hosts; i++ {
		h, err := n.AddHost(ctx, fmt.Sprintf("n%d", i))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return n, hs
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("netns tests need root: they create network namespaces, veth pairs and iptables rules (run as root, as CI does)")
	}
}

// inNamespace runs fn on an OS thread that entered h's network namespace, so
// that the sockets fn creates belong to h. The thread is never given back to
// the runtime (the goroutine ends locked), so no other goroutine runs in h.
func inNamespace(t *testing.T, h *Host, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			ns, err := os.Open(filepath.Join("/run/netns", h.Namespace))
			if err != nil {
				return err
			}
			defer ns.Close()
			// Locked without unlocking: the thread exits with the goroutine.
			runtime.LockOSThread()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("setns %s: %w", h.Namespace, err)
			}
			return fn()
		}()
	}()
	if err := <-done; err != nil {
		t.Fatalf("in %s: %v", h.Name, err)
	}
}

// udpSocket opens a UDP socket on h's address, port 9000, closed at the end.
func udpSocket(t *testing.T, h *Host) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	inNamespace(t, h, func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: h.Addr.AsSlice(), Port: 9000})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// barrier is sent from the root namespace, whose link is never cut.
const barrier = "barrier"

// delivered sends msg from `from` to `to`, then a barrier from the root
// namespace, and reports whether msg arrived before the barrier. Both travel
// the same bridge and msg leaves first, so a msg that the barrier overtook
// was dropped. (If it ever were only late the test could pass wrongly, never
// fail wrongly; the paths that must deliver are checked the same way.)
func delivered(t *testing.T, from, to *net.UDPConn, msg string) bool {
	t.Helper()
	if _, err := from.WriteToUDP([]byte(msg), to.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatalf("send %q: %v", msg, err)
	}
	root, err := net.DialUDP("udp4", nil, to.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.Write([]byte(barrier)); err != nil {
		t.Fatalf("send the barrier: %v", err)
	}
	got := false
	buf := make([]byte, 100)
	if err := to.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		k, _, err := to.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("the barrier from the root namespace did not arrive within 10s: %v", err)
		}
		switch string(buf[:k]) {
		case msg:
			got = true
		case barrier:
			return got
		}
	}
}

func TestHostsReachEachOtherOverTCP(t *testing.T) {
	n, hs := newNetwork(t, 2)
	if hs[0].Addr == hs[1].Addr || !n.Subnet().Contains(hs[0].Addr) || hs[0].Addr == n.RootAddr() {
		t.Fatalf("addresses: hosts %v and %v, root %v, subnet %v", hs[0].Addr, hs[1].Addr, n.RootAddr(), n.Subnet())
	}
	var ln net.Listener
	inNamespace(t, hs[1], func() (err error) {
		ln, err = net.Listen("tcp4", hs[1].Addr.String()+":7000")
		return err
	})
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello %s\n", c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
	greet := func(c net.Conn) string {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("read the greeting: %v", err)
		}
		return strings.TrimSpace(line)
	}
	var c net.Conn
	inNamespace(t, hs[0], func() (err error) {
		c, err = net.DialTimeout("tcp4", hs[1].Addr.String()+":7000", 10*time.Second)
		return err
	})
	if got, want := greet(c), "hello "+hs[0].Addr.String(); got != want {
		t.Fatalf("from n1: got %q, want %q", got, want)
	}
	c, err := net.DialTimeout("tcp4", hs[1].Addr.String()+":7000", 10*time.Second)
	if err != nil {
		t.Fatalf("the root namespace cannot reach n2: %v", err)
	}
	if got, want := greet(c), "hello "+n.RootAddr().String(); got != want {
		t.Fatalf("from the root namespace: got %q, want %q", got, want)
	}
}

func TestDropCutsOneDirectionOnly(t *testing.T) {
	ctx := context.Background()
	n, hs := newNetwork(t, 2)
	a, b := udpSocket(t, hs[0]), udpSocket(t, hs[1])
	if !delivered(t, a, b, "before") {
		t.Fatal("n1 -> n2 lost before any cut")
	}
	if err := n.Drop(ctx, hs[0], hs[1]); err != nil {
		t.Fatal(err)
	}
	if delivered(t, a, b, "cut") {
		t.Fatal("n1 -> n2 delivered after Drop(n1, n2)")
	}
	if !delivered(t, b, a, "reverse") {
		t.Fatal("n2 -> n1 lost after Drop(n1, n2): the cut must be one-way")
	}
	// A TCP connection from n1 cannot even be set up: its SYN is lost.
	var err error
	inNamespace(t, hs[0], func() error {
		var c net.Conn
		c, err = net.DialTimeout("tcp4", hs[1].Addr.String()+":7001", time.Second)
		if c != nil {
			c.Close()
		}
		return nil
	})
	if !errors.Is(err, os.ErrDeadlineExceeded) && !strings.Contains(fmt.Sprint(err), "timeout") {
		t.Fatalf("dial n1 -> n2 over the cut: got %v, want a timeout (a refusal would mean the SYN got through)", err)
	}
	if err := n.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if !delivered(t, a, b, "healed") {
		t.Fatal("n1 -> n2 still lost after Heal")
	}
	if err := n.Drop(ctx, hs[0], hs[0]); err == nil {
		t.Fatal("Drop(n1, n1) accepted")
	}
}

func TestPartitionCutsBetweenGroupsOnly(t *testing.T) {
	ctx := context.Background()
	n, hs := newNetwork(t, 4)
	s := []*net.UDPConn{udpSocket(t, hs[0]), udpSocket(t, hs[1]), udpSocket(t, hs[2]), udpSocket(t, hs[3])}
	// n1 | n2 n3; n4 is in no group and keeps every link.
	if err := n.Partition(ctx, []*Host{hs[0]}, []*Host{hs[1], hs[2]}); err != nil {
		t.Fatal(err)
	}
	want := map[[2]int]bool{{0, 1}: false, {1, 0}: false, {0, 2}: false, {2, 0}: false,
		{1, 2}: true, {2, 1}: true, {0, 3}: true, {3, 0}: true, {1, 3}: true, {3, 2}: true}
	for pair, ok := range want {
		msg := fmt.Sprintf("n%d->n%d", pair[0]+1, pair[1]+1)
		if got := delivered(t, s[pair[0]], s[pair[1]], msg); got != ok {
			t.Errorf("%s: delivered %v, want %v", msg, got, ok)
		}
	}
	if err := n.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]int{{0, 1}, {1, 0}, {2, 0}} {
		if !delivered(t, s[pair[0]], s[pair[1]], "healed") {
			t.Errorf("n%d->n%d lost after Heal", pair[0]+1, pair[1]+1)
		}
	}
	if err := n.Partition(ctx, []*Host{hs[0]}, []*Host{hs[0], hs[1]}); err == nil {
		t.Fatal("a host in two groups was accepted")
	}
}

func TestCommandRunsInTheHostNamespace(t *testing.T) {
	n, hs := newNetwork(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := n.Command(ctx, hs[0], "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// /proc/PID/ns/net names the namespace by the inode its bind mount shows.
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join("/run/netns", hs[0].Namespace), &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	// ip execs sleep once it entered the namespace: wait for that exec.
	deadline := time.Now().Add(10 * time.Second)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		if strings.TrimSpace(string(comm)) == "sleep" && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PID %d: comm %q in %s, want sleep in %s", cmd.Process.Pid, comm, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	ctx := context.Background()
	n, hs := newNetwork(t, 2)
	if err := n.Partition(ctx, []*Host{hs[0]}, []*Host{hs[1]}); err != nil {
		t.Fatal(err)
	}
	names := []string{n.hub, hs[0].Namespace, hs[1].Namespace}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	assertGone(t, append(names, n.rootLink), n.tag)
	if _, err := n.AddHost(ctx, "n3"); err == nil {
		t.Fatal("AddHost on a closed network succeeded")
	}
}

// assertGone fails when a namespace or a root link still carries tag.
func assertGone(t *testing.T, names []string, tag string) {
	t.Helper()
	nsList, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(nsList), string(links)} {
		if strings.Contains(out, tag) {
			t.Fatalf("%v: something named with %q is left:\n%s", names, tag, out)
		}
	}
}

func TestCleanupStaleRemovesOnlyDeadOwners(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	// A network of this (live) process under the same base: must stay.
	live, err := New(ctx, PIDPrefix("btct"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Close() })
	h, err := live.AddHost(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale, err := New(ctx, "btct"+fmt.Sprint(dead.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stale.Close() })
	if _, err := stale.AddHost(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	removed, err := CleanupStale(ctx, "btct")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 { // hub, n1, root link
		t.Errorf("removed %v, want the hub, n1 and the root link", removed)
	}
	assertGone(t, removed, stale.tag)
	if _, err := os.Stat(filepath.Join("/run/netns", h.Namespace)); err != nil {
		t.Fatalf("a live owner's namespace was touched: %v", err)
	}
}
