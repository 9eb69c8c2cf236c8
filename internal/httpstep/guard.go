package httpstep

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"code.dny.dev/ssrf"
)

// guard decides which addresses a step may be dialled at.
type guard struct {
	guardian *ssrf.Guardian
	names    map[string]bool // allowed host names, normalized
}

// newGuard parses an allow-list of CIDRs, bare IPs and host names.
func newGuard(allow []string) (*guard, error) {
	var v4, v6 []netip.Prefix
	names := map[string]bool{}
	var problems []string
	for _, entry := range allow {
		e := strings.TrimSpace(entry)
		if e == "" {
			continue
		}
		p, err := parseAllowedPrefix(e)
		switch {
		case err == nil && p.Addr().Is4():
			v4 = append(v4, p)
			// The same addresses written as IPv4-mapped IPv6 addresses.
			v6 = append(v6, netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), p.Bits()+96))
		case err == nil:
			v6 = append(v6, p)
		case strings.Contains(e, "/"):
			problems = append(problems, fmt.Sprintf("%q is not a valid CIDR", entry))
		case !validHostName(e):
			problems = append(problems, fmt.Sprintf("%q is not a valid CIDR, IP address or host name (without a port)", entry))
		default:
			names[normalizeHost(e)] = true
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("allowed hosts: %s", strings.Join(problems, "; "))
	}
	return &guard{
		guardian: ssrf.New(
			ssrf.WithAnyPort(),
			ssrf.WithAllowedV4Prefixes(v4...),
			ssrf.WithAllowedV6Prefixes(v6...),
		),
		names: names,
	}, nil
}

// parseAllowedPrefix parses "10.0.0.0/8", "::1/128", "127.0.0.1", "::1" or
// "[::1]" into a prefix.
func parseAllowedPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, errors.New("zones are not allowed")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("zones are not allowed")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validHostName reports whether s looks like a DNS name: letters, digits,
// hyphens, underscores and dots, in labels of at most 63 bytes.
func validHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	if last := s[strings.LastIndexByte(s, '.')+1:]; strings.Trim(last, "0123456789") == "" {
		return false // an all-numeric top label: a mistyped IPv4 address
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func normalizeHost(h string) string {
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// dial dials addr (the host and port of a step's URL: no proxy is ever
// used) with the guard checking every address actually dialled, unless the
// host is an allowed name.
func (g *guard) dial(ctx context.Context, base *net.Dialer, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if g.names[normalizeHost(host)] {
		return base.DialContext(ctx, network, addr)
	}
	d := *base
	d.Control = g.control(host)
	return d.DialContext(ctx, network, addr)
}

// control returns the net.Dialer Control function for dialling host.
func (g *guard) control(host string) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		err := g.guardian.Safe(network, address, nil)
		if err == nil {
			return nil
		}
		r := &refusedError{host: host, err: err}
		if ap, perr := netip.ParseAddrPort(address); perr == nil {
			r.addr = ap.Addr()
		}
		return r
	}
}

// refusedError is the error of a dial the guard refused.
type refusedError struct {
	host string     // the URL's host
	addr netip.Addr // the address it resolved to; invalid if unknown
	err  error      // the guard's reason
}

func (e *refusedError) Error() string {
	if !e.addr.IsValid() {
		return fmt.Sprintf("the step's host %s may not be called (%v); allow it with DURABLE_ALLOW_HOSTS", e.host, e.err)
	}
	kind := describeAddr(e.addr)
	if h, err := netip.ParseAddr(strings.Trim(e.host, "[]")); err == nil && h.Unmap() == e.addr.Unmap() {
		return fmt.Sprintf("the step's address %s is %s, which steps may not call; allow it with DURABLE_ALLOW_HOSTS", e.addr, kind)
	}
	return fmt.Sprintf("%s resolves to %s, %s, which steps may not call; allow it with DURABLE_ALLOW_HOSTS", e.host, e.addr, kind)
}

func (e *refusedError) Unwrap() error { return e.err }

var (
	sharedPrefix  = netip.MustParsePrefix("100.64.0.0/10")
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, …
		netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
		netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	}
)

// describeAddr names the kind of special-purpose address a is, with an
// article, for error messages.
func describeAddr(a netip.Addr) string {
	u := a.Unmap()
	for _, m := range metadataAddrs {
		if u == m {
			return "a cloud metadata address"
		}
	}
	switch {
	case u.IsLoopback():
		return "a loopback address"
	case u.IsUnspecified():
		return "an unspecified address"
	case u.IsPrivate():
		return "a private address"
	case u.IsLinkLocalUnicast():
		return "a link-local address"
	case u.IsMulticast():
		return "a multicast address"
	case sharedPrefix.Contains(u):
		return "a shared (carrier-grade NAT) address"
	case a.Is4In6():
		return "an IPv4-mapped IPv6 address"
	default:
		return "a reserved address"
	}
}
