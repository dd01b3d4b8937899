package netns

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Drop cuts the link one way: packets from `from` never reach `to`, while
// packets from `to` still reach `from`. The rule sits on to's INPUT, so the
// packets leave `from` and are lost on the way, as on a faulty link (a rule
// on from's OUTPUT would instead fail the sender's send with EPERM, which no
// real network does). Over a one-way cut TCP stalls in both directions in
// practice: a connection needs acknowledgements from both ends. Only UDP (or
// the TCP SYN itself) shows the direction. Cuts add to the cuts in place;
// Heal removes them all.
func (n *Network) Drop(ctx context.Context, from, to *Host) error {
	if err := n.own(from, to); err != nil {
		return fmt.Errorf("netns: drop: %w", err)
	}
	if from == to {
		return fmt.Errorf("netns: drop: %s cannot be cut from itself", from.Name)
	}
	if _, err := run(ctx, "ip", "netns", "exec", to.Namespace, "iptables", "-w", "-A", cutsChain, "-s", from.Addr.String(), "-j", "DROP"); err != nil {
		return fmt.Errorf("netns: drop %s -> %s: %w", from.Name, to.Name, err)
	}
	return nil
}

// Partition cuts every link between hosts of different groups, both ways.
// Hosts in no group keep all their links, and the root namespace's link
// (the test's clients) is never cut. The cuts add to those in place; call
// Heal first for a fresh partition. A host in two groups is refused and
// nothing is cut.
func (n *Network) Partition(ctx context.Context, groups ...[]*Host) error {
	seen := map[*Host]bool{}
	for _, g := range groups {
		if err := n.own(g...); err != nil {
			return fmt.Errorf("netns: partition: %w", err)
		}
		for _, h := range g {
			if seen[h] {
				return fmt.Errorf("netns: partition: host %s is in two groups", h.Name)
			}
			seen[h] = true
		}
	}
	for i, gi := range groups {
		for _, gj := range groups[i+1:] {
			for _, a := range gi {
				for _, b := range gj {
					if err := n.Drop(ctx, a, b); err != nil {
						return err
					}
					if err := n.Drop(ctx, b, a); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// Heal removes every cut: it flushes each host's cuts chain.
func (n *Network) Heal(ctx context.Context) error {
	var errs []error
	for _, h := range n.Hosts() {
		if _, err := run(ctx, "ip", "netns", "exec", h.Namespace, "iptables", "-w", "-F", cutsChain); err != nil {
			errs = append(errs, fmt.Errorf("netns: heal %s: %w", h.Name, err))
		}
	}
	return errors.Join(errs...)
}

// own checks that every host belongs to this network.
func (n *Network) own(hosts ...*Host) error {
	mine := n.Hosts()
	for _, h := range hosts {
		if h == nil || !slices.Contains(mine, h) {
			return errors.New("a host of another network (or nil)")
		}
	}
	return nil
}
