package netns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
)

var hostNamePattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// maxHosts keeps host addresses within the /24 (.10 up to .209).
const maxHosts = 200

// AddHost creates a host namespace named after the network and name (a
// letter, then up to 7 letters or digits), joins it to the bridge and
// prepares its cuts chain. Its address is 10.213.X.(10+i) for the i-th host.
// On failure nothing it made is left behind.
func (n *Network) AddHost(ctx context.Context, name string) (*Host, error) {
	if !hostNamePattern.MatchString(name) {
		return nil, fmt.Errorf("netns: host name %q: want a lowercase letter then up to 7 lowercase letters or digits", name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("netns: add host: the network is closed")
	}
	if slices.ContainsFunc(n.hosts, func(h *Host) bool { return h.Name == name }) {
		return nil, fmt.Errorf("netns: host %q exists", name)
	}
	if len(n.hosts) >= maxHosts {
		return nil, fmt.Errorf("netns: add host %q: at most %d hosts", name, maxHosts)
	}
	b := n.subnet.Addr().As4()
	b[3] = byte(10 + len(n.hosts))
	h := &Host{Name: name, Namespace: n.tag + "-" + name, Addr: netip.AddrFrom4(b), hubLink: "h-" + name}
	if _, err := run(ctx, "ip", "netns", "add", h.Namespace); err != nil {
		return nil, fmt.Errorf("netns: add host %s: %w", name, err)
	}
	ipt := []string{"ip", "netns", "exec", h.Namespace, "iptables", "-w"}
	steps := [][]string{
		{"ip", "-n", h.Namespace, "link", "set", "lo", "up"},
		{"ip", "-n", n.hub, "link", "add", h.hubLink, "type", "veth", "peer", "name", "eth0", "netns", h.Namespace},
		{"ip", "-n", n.hub, "link", "set", h.hubLink, "master", "br0", "up"},
		{"ip", "-n", h.Namespace, "addr", "add", netip.PrefixFrom(h.Addr, 24).String(), "dev", "eth0"},
		{"ip", "-n", h.Namespace, "link", "set", "eth0", "up"},
		append(slices.Clip(ipt), "-N", cutsChain),
		append(slices.Clip(ipt), "-A", "INPUT", "-j", cutsChain),
	}
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			// Deleting the namespace takes the veth pair with it.
			return nil, errors.Join(fmt.Errorf("netns: add host %s: %w", name, err),
				ignoreGone(run(context.Background(), "ip", "netns", "del", h.Namespace)))
		}
	}
	n.hosts = append(n.hosts, h)
	return h, nil
}

// Hosts returns the hosts in the order they were added.
func (n *Network) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.hosts)
}

// Host returns the host named name, nil when there is none.
func (n *Network) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Command returns a command that runs the program inside h's namespace
// through `ip netns exec`. ip enters the namespace and then execs the
// program, so the started process's PID is the program's own: signals sent
// to cmd.Process reach it directly.
func (n *Network) Command(ctx context.Context, h *Host, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Namespace, name}, args...)...)
}
