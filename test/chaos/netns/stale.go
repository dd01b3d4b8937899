package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// PIDPrefix returns base followed by this process's PID ("btc12345"), a
// prefix for New that CleanupStale can trace back to its owner. base must be
// short: the prefix is at most 10 characters.
func PIDPrefix(base string) string { return base + strconv.Itoa(os.Getpid()) }

// CleanupStale removes the namespaces and root-namespace links named
// base<PID>... (see PIDPrefix) whose PID is no longer a running process:
// what a run that crashed before its Close left behind. Objects of live
// processes, this one included, are left alone, and so are any processes
// still running inside a stale namespace (they keep it alive; this never
// kills what it did not start). It returns the names it removed.
func CleanupStale(ctx context.Context, base string) ([]string, error) {
	if !prefixPattern.MatchString(base) {
		return nil, fmt.Errorf("netns: cleanup: base %q: want lowercase letters and digits", base)
	}
	nsOut, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, fmt.Errorf("netns: cleanup: %w", err)
	}
	linkOut, err := run(ctx, "ip", "-o", "link", "show")
	if err != nil {
		return nil, fmt.Errorf("netns: cleanup: %w", err)
	}
	var removed []string
	var errs []error
	for _, line := range strings.Split(nsOut, "\n") {
		// "btc123a-n1 (id: 4)"
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if staleOwner(name, base) {
			if err := ignoreGone(run(ctx, "ip", "netns", "del", name)); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, name)
		}
	}
	for _, line := range strings.Split(linkOut, "\n") {
		// "12: btc123ar@if2: <BROADCAST,...> ..."
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if staleOwner(name, base) {
			if err := ignoreGone(run(ctx, "ip", "link", "del", name)); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, name)
		}
	}
	return removed, errors.Join(errs...)
}

// staleOwner reports whether name is base, a PID and more, and that PID is
// not a running process.
func staleOwner(name, base string) bool {
	rest, ok := strings.CutPrefix(name, base)
	if !ok {
		return false
	}
	digits := len(rest) - len(strings.TrimLeft(rest, "0123456789"))
	if digits == 0 || digits == len(rest) {
		return false
	}
	pid, err := strconv.Atoi(rest[:digits])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	// Signal 0 checks existence; EPERM means it exists under another user.
	err = syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}
