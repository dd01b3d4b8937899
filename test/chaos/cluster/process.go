package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/buytracker/buytracker/node/testhook"
)

// start starts n's process in its host's namespace, output appended to its
// log. A goroutine owned by the process waits for it and closes n.exited.
func (c *Cluster) start(n *Node) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("cluster: start %s: the cluster is closed", n.ID)
	}
	if c.runningLocked(n) {
		return fmt.Errorf("cluster: start %s: already running", n.ID)
	}
	args := []string{
		"--id=" + n.ID, "--data-dir=" + n.dataDir,
		fmt.Sprintf("--http-addr=%s:%d", n.Host.Addr, HTTPPort),
		fmt.Sprintf("--admin-addr=%s:%d", n.Host.Addr, AdminPort),
		"--raft-addr=" + n.RaftAddr,
		"--tls-dir=" + c.ca.dir(n.ID),
		"--admin-token-file=" + filepath.Join(c.cfg.Dir, "admin-token"),
		"--client-auth-file=" + filepath.Join(c.cfg.Dir, "client-auth.json"),
		"--heartbeat-timeout=500ms", "--election-timeout=500ms",
	}
	if c.isInitial(n) {
		args = append(args, "--initial-cluster="+c.initial)
	}
	args = append(args, c.cfg.ExtraFlags...)
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cluster: start %s: %w", n.ID, err)
	}
	fmt.Fprintf(logFile, "=== chaos: start %s at %s\n", n.ID, time.Now().Format(time.RFC3339Nano))
	// The process lives until Kill or Close, not as long as some context.
	cmd := c.net.Command(context.Background(), n.Host, c.cfg.Bin, args...)
	cmd.Env = append(os.Environ(), testhook.ClockOffsetFileEnv+"="+n.clockFile,
		// A node built with -tags testhooks reads its injected disk faults
		// from this file.
		testhook.DiskFaultFileEnv+"="+n.faultFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("cluster: start %s: %w", n.ID, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.killed, n.paused = cmd, exited, false, false
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	c.cfg.Logf("cluster: started %s (pid %d)", n.ID, cmd.Process.Pid)
	return nil
}

// isInitial reports whether n is one of the members the cluster started
// with: only they get --initial-cluster; an added spare waits to be added.
func (c *Cluster) isInitial(n *Node) bool {
	var id int
	_, err := fmt.Sscanf(n.ID, "n%d", &id)
	return err == nil && id <= c.cfg.Members
}

// Running reports whether n's process is alive (paused counts as alive).
func (c *Cluster) Running(n *Node) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningLocked(n)
}

func (c *Cluster) runningLocked(n *Node) bool {
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// PID is the process ID of n's current (or last) process, 0 before its
// first start.
func (c *Cluster) PID(n *Node) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Paused reports whether n is stopped with SIGSTOP.
func (c *Cluster) Paused(n *Node) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.paused && c.runningLocked(n)
}

// Crashed returns the nodes whose last process ended without the test
// ending it: a node that exited on its own is a finding.
func (c *Cluster) Crashed() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.nodes {
		if n.exited != nil && !n.killed && !c.runningLocked(n) {
			out = append(out, n)
		}
	}
	return out
}

// Kill ends n's process with SIGKILL (a crash; a paused process too) and
// waits for it to be gone.
func (c *Cluster) Kill(n *Node) error {
	c.mu.Lock()
	if !c.runningLocked(n) {
		c.mu.Unlock()
		return fmt.Errorf("cluster: kill %s: not running", n.ID)
	}
	n.killed = true
	cmd, exited := n.cmd, n.exited
	c.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cluster: kill %s: %w", n.ID, err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("cluster: kill %s: pid %d still there 30s after SIGKILL", n.ID, cmd.Process.Pid)
	}
	c.cfg.Logf("cluster: killed %s", n.ID)
	return nil
}

// Restart starts n again on the same data dir (and the same hook files).
func (c *Cluster) Restart(n *Node) error { return c.start(n) }

// Pause stops n's process with SIGSTOP: a frozen process (a long GC pause, a
// stalled VM) whose sockets stay open.
func (c *Cluster) Pause(n *Node) error { return c.signalPause(n, true) }

// Resume continues a paused node with SIGCONT.
func (c *Cluster) Resume(n *Node) error { return c.signalPause(n, false) }

func (c *Cluster) signalPause(n *Node, pause bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	what, sig := "pause", syscall.SIGSTOP
	if !pause {
		what, sig = "resume", syscall.SIGCONT
	}
	if !c.runningLocked(n) || n.paused == pause {
		return fmt.Errorf("cluster: %s %s: running %v, paused %v", what, n.ID, c.runningLocked(n), n.paused)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("cluster: %s %s: %w", what, n.ID, err)
	}
	n.paused = pause
	c.cfg.Logf("cluster: %sd %s", what, n.ID)
	return nil
}

// WipeData removes a stopped node's data dir: its volume is lost. Its
// next start is a new incarnation that rejoins through the leader.
func (c *Cluster) WipeData(n *Node) error {
	if c.Running(n) {
		return fmt.Errorf("cluster: wipe %s: the node is running", n.ID)
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		return fmt.Errorf("cluster: wipe %s: %w", n.ID, err)
	}
	c.cfg.Logf("cluster: wiped the data of %s", n.ID)
	return nil
}

// SetClock shifts n's wall clock by offset (the node re-reads its file
// within a fraction of a second); the machine's clock is never touched.
func (c *Cluster) SetClock(n *Node, offset time.Duration) error {
	if err := os.WriteFile(n.clockFile, []byte(offset.String()), 0o600); err != nil {
		return fmt.Errorf("cluster: set the clock of %s: %w", n.ID, err)
	}
	return nil
}

// SetDiskFault makes n's Raft log writes fail: "write" (before writing),
// "fsync" (after the write reached bbolt) or "" (no fault). The node
// re-reads the file at most every 100 ms.
func (c *Cluster) SetDiskFault(n *Node, mode string) error {
	if mode != "" && mode != "write" && mode != "fsync" && mode != "slow-apply" {
		return fmt.Errorf("cluster: disk fault %q on %s: want \"\", \"write\", \"fsync\" or \"slow-apply\"", mode, n.ID)
	}
	if err := os.WriteFile(n.faultFile, []byte(mode), 0o600); err != nil {
		return fmt.Errorf("cluster: set the disk fault of %s: %w", n.ID, err)
	}
	return nil
}
