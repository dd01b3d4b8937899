package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// mount puts a tmpfs of DiskBytes on dir and records it for Close.
func (c *Cluster) mount(ctx context.Context, dir string) error {
	opts := fmt.Sprintf("size=%d,mode=0700", c.cfg.DiskBytes)
	if out, err := exec.CommandContext(ctx, "mount", "-t", "tmpfs", "-o", opts, "chaos-disk", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("cluster: mount a tmpfs on %s: %w: %s", dir, err, strings.TrimSpace(string(out)))
	}
	c.mu.Lock()
	c.mounts = append(c.mounts, dir)
	c.mu.Unlock()
	return nil
}

// unmount takes the tmpfs off dir; a busy one is detached lazily, so that
// nothing stays mounted after Close.
func unmount(dir string) error {
	out, err := exec.Command("umount", dir).CombinedOutput()
	if err == nil {
		return nil
	}
	if lazy, lerr := exec.Command("umount", "-l", dir).CombinedOutput(); lerr != nil {
		return fmt.Errorf("cluster: unmount %s: %w: %s; lazily: %s", dir, err, strings.TrimSpace(string(out)), strings.TrimSpace(string(lazy)))
	}
	return nil
}

// fillerName is the file FillDisk grows beside the node's data dir.
const fillerName = "filler"

// FillDisk fills n's tmpfs to the last byte with a file beside its data
// dir: the node's next write that needs space fails with ENOSPC (and its
// free-space check sees pressure). FreeDisk removes the file.
func (c *Cluster) FillDisk(n *Node) error {
	if c.cfg.DiskBytes == 0 {
		return fmt.Errorf("cluster: fill the disk of %s: the cluster has no tmpfs disks (DiskBytes is 0)", n.ID)
	}
	f, err := os.OpenFile(filepath.Join(n.diskDir, fillerName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cluster: fill the disk of %s: %w", n.ID, err)
	}
	defer f.Close()
	// Big writes first, then smaller ones, so that the last page is used too.
	for _, size := range []int{1 << 20, 4096, 1} {
		if err := fillWith(f, size); err != nil {
			return fmt.Errorf("cluster: fill the disk of %s: %w", n.ID, err)
		}
	}
	c.cfg.Logf("cluster: filled the disk of %s", n.ID)
	return nil
}

// fillWith writes chunks of size to f until the file system is full.
func fillWith(f io.Writer, size int) error {
	chunk := make([]byte, size)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

// FreeDisk removes what FillDisk wrote.
func (c *Cluster) FreeDisk(n *Node) error {
	if err := os.Remove(filepath.Join(n.diskDir, fillerName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cluster: free the disk of %s: %w", n.ID, err)
	}
	c.cfg.Logf("cluster: freed the disk of %s", n.ID)
	return nil
}
