// Package netns owns the network of a chaos test: Linux network namespaces
// joined by a bridge, and the iptables rules that cut links between them.
//
// A Network is a bridge (br0) inside a hub namespace. Each Host is its own
// namespace with one veth pair: eth0 inside the host, carrying the host's
// address on a private /24 (10.213.X.0/24, X chosen so that no route on the
// machine overlaps it), the other end enslaved to the bridge. One more veth
// pair joins the root namespace to the bridge, with the .1 address, so the
// test process (and the clients it runs) reaches every host's ports directly;
// that link is never cut.
//
// Cuts are iptables DROP rules in a chain of their own (BTC-CUTS) inside each
// host's namespace, jumped to from INPUT: Drop, Partition and Heal only ever
// touch that chain, so Heal is a flush. Everything lives in namespaces the
// Network made, so the machine's own rules and routes are never touched.
//
// Usage (as root):
//
//	n, err := netns.New(ctx, netns.PIDPrefix("btc"))
//	defer n.Close()
//	a, _ := n.AddHost(ctx, "n1")
//	b, _ := n.AddHost(ctx, "n2")
//	cmd := n.Command(ctx, a, "/path/to/server", "--listen", a.Addr.String()+":8080")
//	n.Partition(ctx, []*netns.Host{a}, []*netns.Host{b})
//	n.Heal(ctx)
//
// Names carry the prefix (and PIDPrefix puts the test's PID in it), so that
// CleanupStale can find and remove what a crashed run left behind.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"sync"
)

// Network is a bridge in a hub namespace plus a veth from the root namespace,
// so the test process (in the root namespace) reaches every host.
type Network struct {
	tag      string // prefix plus a letter: unique among live networks
	hub      string // the hub namespace
	rootLink string // the root namespace's end of the veth into the bridge
	subnet   netip.Prefix
	rootAddr netip.Addr

	mu     sync.Mutex
	hosts  []*Host
	closed bool
}

// Host is one network namespace on the bridge.
type Host struct {
	Name      string     // "n1"
	Namespace string     // the netns name
	Addr      netip.Addr // its address on the bridge
	hubLink   string     // its veth's end on the bridge, in the hub namespace
}

// cutsChain is the iptables chain, in each host namespace, that holds the cuts.
const cutsChain = "BTC-CUTS"

var prefixPattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// New creates the hub namespace, its bridge and the root namespace's link to
// it. prefix (a letter, then up to 9 letters or digits, e.g. "btc12345")
// starts every name the network makes; New adds a letter of its own so that
// several networks of one process never collide. On failure nothing it made
// is left behind.
func New(ctx context.Context, prefix string) (*Network, error) {
	if !prefixPattern.MatchString(prefix) {
		return nil, fmt.Errorf("netns: prefix %q: want a lowercase letter then up to 9 lowercase letters or digits", prefix)
	}
	n := &Network{}
	// `ip netns add` fails when the name exists: claiming the hub's name is
	// what makes the tag ours.
	for c := 'a'; c <= 'z' && n.hub == ""; c++ {
		tag := prefix + string(c)
		_, err := run(ctx, "ip", "netns", "add", tag+"-hub")
		if err != nil && strings.Contains(err.Error(), "File exists") {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netns: create the hub namespace: %w", err)
		}
		n.tag, n.hub, n.rootLink = tag, tag+"-hub", tag+"r"
	}
	if n.hub == "" {
		return nil, fmt.Errorf("netns: every network name with prefix %q is taken (see CleanupStale)", prefix)
	}
	if err := n.build(ctx); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

// build makes the bridge and the root link and picks the subnet.
func (n *Network) build(ctx context.Context) error {
	steps := [][]string{
		{"ip", "-n", n.hub, "link", "set", "lo", "up"},
		{"ip", "-n", n.hub, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", n.hub, "link", "set", "br0", "up"},
		{"ip", "link", "add", n.rootLink, "type", "veth", "peer", "name", "root0", "netns", n.hub},
		{"ip", "-n", n.hub, "link", "set", "root0", "master", "br0", "up"},
		{"ip", "link", "set", n.rootLink, "up"},
	}
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("netns: build network %s: %w", n.tag, err)
		}
	}
	return n.claimSubnet(ctx)
}

// claimSubnet puts the root link on the first 10.213.X.0/24 that no route
// overlaps, starting from a place that depends on the tag so that
// concurrent runs rarely try the same one; after adding the address it checks
// again and moves on if another run took the same subnet meanwhile.
func (n *Network) claimSubnet(ctx context.Context) error {
	h := fnv.New32a()
	h.Write([]byte(n.tag))
	start := int(h.Sum32() % 250)
	for i := range 250 {
		x := byte(2 + (start+i)%250)
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, x, 0}), 24)
		rs, err := listRoutes(ctx)
		if err != nil {
			return err
		}
		if overlapsAny(subnet, rs, "") {
			continue
		}
		addr := netip.AddrFrom4([4]byte{10, 213, x, 1})
		if _, err := run(ctx, "ip", "addr", "add", netip.PrefixFrom(addr, 24).String(), "dev", n.rootLink); err != nil {
			return fmt.Errorf("netns: address the root link: %w", err)
		}
		if rs, err = listRoutes(ctx); err != nil {
			return err
		}
		if overlapsAny(subnet, rs, n.rootLink) {
			if _, err := run(ctx, "ip", "addr", "del", netip.PrefixFrom(addr, 24).String(), "dev", n.rootLink); err != nil {
				return fmt.Errorf("netns: give up a subnet taken meanwhile: %w", err)
			}
			continue
		}
		n.subnet, n.rootAddr = subnet, addr
		return nil
	}
	return errors.New("netns: every 10.213.X.0/24 overlaps a route on this machine")
}

// route is one line of `ip route show table all`.
type route struct {
	dst netip.Prefix
	dev string
}

var routeTypes = map[string]bool{"unicast": true, "local": true, "broadcast": true, "multicast": true,
	"unreachable": true, "blackhole": true, "prohibit": true, "throw": true, "nat": true, "anycast": true}

// routes lists the machine's IPv4 routes in every table, default routes left out.
func listRoutes(ctx context.Context) ([]route, error) {
	out, err := run(ctx, "ip", "-4", "-o", "route", "show", "table", "all")
	if err != nil {
		return nil, fmt.Errorf("netns: list routes: %w", err)
	}
	var rs []route
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && routeTypes[f[0]] {
			f = f[1:]
		}
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		dst, err := netip.ParsePrefix(f[0])
		if err != nil {
			a, aerr := netip.ParseAddr(f[0])
			if aerr != nil {
				continue
			}
			dst = netip.PrefixFrom(a, 32)
		}
		r := route{dst: dst}
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "dev" {
				r.dev = f[i+1]
			}
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// overlapsAny reports whether a route not through dev overlaps subnet.
func overlapsAny(subnet netip.Prefix, rs []route, dev string) bool {
	for _, r := range rs {
		if r.dst.Overlaps(subnet) && (dev == "" || r.dev != dev) {
			return true
		}
	}
	return false
}

// RootAddr is the root namespace's address on the bridge: the address the
// hosts see the test's own connections come from.
func (n *Network) RootAddr() netip.Addr { return n.rootAddr }

// Subnet is the network's /24.
func (n *Network) Subnet() netip.Prefix { return n.subnet }

// Close removes every namespace and link the network made (the cuts go with
// the namespaces). It is idempotent and tries every step even after one
// failed. Processes still running in a host's namespace keep it alive until
// they exit: stop them first.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	// A fresh context: Close runs in cleanups after the test's context ended.
	ctx := context.Background()
	var errs []error
	for _, h := range n.hosts {
		errs = append(errs, ignoreGone(run(ctx, "ip", "netns", "del", h.Namespace)))
	}
	if n.hub != "" {
		errs = append(errs, ignoreGone(run(ctx, "ip", "netns", "del", n.hub)))
		// Deleting the hub takes the veth's other end with it; this is for
		// the case where the hub was never fully made.
		errs = append(errs, ignoreGone(run(ctx, "ip", "link", "del", n.rootLink)))
	}
	return errors.Join(errs...)
}

// ignoreGone drops the error of removing something that is already gone.
func ignoreGone(_ string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "No such file") || strings.Contains(msg, "Cannot find device") || strings.Contains(msg, "does not exist") {
		return nil
	}
	return err
}

// run runs a command and returns its standard output; the error carries the
// command line and its standard error.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
