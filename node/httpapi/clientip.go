package httpapi

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies parses --trusted-proxies: addresses and CIDR prefixes
// separated by commas. An empty string trusts no one.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		addr, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want an IP address or a CIDR prefix", part)
		}
		addr = addr.Unmap()
		out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
	}
	return out, nil
}

// clientIP is the address a purchase without ip_address is recorded with:
// the connection's address, unless that is a trusted proxy. Then the
// X-Forwarded-For entries are walked from the right (the entries the
// trusted proxies appended) to the first address that is not a trusted
// proxy; entries to its left were written by the client and prove nothing.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	addr := ap.Addr().Unmap()
	if !isTrusted(addr, trusted) {
		return addr.String()
	}
	var entries []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		entries = append(entries, strings.Split(h, ",")...)
	}
	client := addr
	for i := len(entries) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(entries[i]))
		if err != nil {
			// Unparseable: no address to its left can be trusted either.
			return client.String()
		}
		client = hop.Unmap()
		if !isTrusted(client, trusted) {
			break
		}
	}
	return client.String()
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
