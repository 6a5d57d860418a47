package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// NetworkMode says where a server may connect; see [Network].
type NetworkMode string

const (
	// NetworkHost: the host's network, as any program the user runs
	// (the default, written "host").
	NetworkHost NetworkMode = ""
	// NetworkNone: a stdio server runs in a network namespace of its own
	// with only its loopback: no route anywhere, no DNS.
	NetworkNone NetworkMode = "none"
	// NetworkAllow: a stdio server runs in a network namespace of its own
	// too, and its only way out is an HTTP proxy Hive runs for it, which
	// reaches the listed destinations and refuses every other.
	NetworkAllow NetworkMode = "allow"
)

// Network is the network key of an mcp.NAME table: "host" (the default),
// "none", or the list of destinations the server may reach, as host:port
// patterns:
//
//	network = ["api.github.com:443", "*.example.org:443", "10.0.0.7:5432"]
//
// A destination is a host name (which the proxy resolves on the host, and
// matches as listed, never by its address), "*." and a name (any name
// under it, not the name itself), an IPv4 address, or an IPv6 address in
// brackets, then a port. A listed name that resolves to a loopback,
// link-local or unspecified address, or to one of the host's own, is
// refused unless that address is itself listed with the port: a name
// under "*.example.org" cannot be pointed at 127.0.0.1 by its DNS.
//
// For a server over HTTP (url), which Hive reaches itself, network is
// "host" or a list that holds the url's destination; Hive then sends its
// requests to listed destinations only (a redirect elsewhere fails).
type Network struct {
	Mode NetworkMode
	// Allow lists the destinations, with NetworkAllow.
	Allow []string

	bad string // what the file held, when it is none of the above (Validate says so)
}

// Isolated reports whether a stdio server with network n runs in a
// network namespace of its own.
func (n Network) Isolated() bool { return n.Mode == NetworkNone || n.Mode == NetworkAllow }

// String is the network as hive.toml writes it.
func (n Network) String() string {
	switch n.Mode {
	case NetworkHost:
		return `"host"`
	case NetworkNone:
		return `"none"`
	}
	b, _ := json.Marshal(n.Allow)
	return strings.ReplaceAll(string(b), `","`, `", "`)
}

// Requirements a policy may set on every server's network
// (policy.mcp_network), for [Network.Meets].
const (
	RequireNone      = "none"      // network = "none"
	RequireAllowlist = "allowlist" // network = "none" or a list
)

// Requirement says what req (of [Network.Meets]) asks of a server's
// network, as hive.toml writes it.
func Requirement(req string) string {
	switch req {
	case RequireNone:
		return `network = "none"`
	case RequireAllowlist:
		return `network = "none" or a list of destinations (never "host")`
	}
	return "any network"
}

// Meets reports whether n meets the requirement req (RequireNone,
// RequireAllowlist, or "" for none).
func (n Network) Meets(req string) bool {
	switch req {
	case RequireNone:
		return n.Mode == NetworkNone
	case RequireAllowlist:
		return n.Mode == NetworkNone || n.Mode == NetworkAllow
	}
	return true
}

// UnmarshalTOML reads "host", "none" or a list of strings. What else the
// file holds is kept for Validate to report, naming the key.
func (n *Network) UnmarshalTOML(v any) error {
	*n = Network{}
	switch v := v.(type) {
	case string:
		return n.setMode(v)
	case []any:
		n.Mode, n.Allow = NetworkAllow, make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				n.bad = fmt.Sprintf("a list holding %v, which is not a string", e)
				return nil
			}
			n.Allow = append(n.Allow, s)
		}
	default:
		n.bad = fmt.Sprintf("%v", v)
	}
	return nil
}

func (n *Network) setMode(s string) error {
	switch s {
	case "host":
		n.Mode = NetworkHost
	case "none":
		n.Mode = NetworkNone
	default:
		n.bad = strconv.Quote(s)
	}
	return nil
}

// MarshalJSON writes "host", "none" or the list (a run's spec is
// journaled as JSON).
func (n Network) MarshalJSON() ([]byte, error) {
	switch {
	case n.bad != "":
		return nil, fmt.Errorf("network is %s", n.bad)
	case n.Mode == NetworkAllow:
		return json.Marshal(n.Allow)
	case n.Mode == NetworkNone:
		return []byte(`"none"`), nil
	}
	return []byte(`"host"`), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (n *Network) UnmarshalJSON(b []byte) error {
	*n = Network{}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		n.setMode(s)
	} else if err := json.Unmarshal(b, &n.Allow); err != nil {
		return errors.New(`network is "host", "none" or a list of host:port destinations`)
	} else {
		n.Mode = NetworkAllow
		if n.Allow == nil {
			n.Allow = []string{}
		}
	}
	if n.bad != "" {
		return fmt.Errorf("network is %s", n.bad)
	}
	return nil
}

// proxyVars are the variables through which programs learn of a proxy;
// Hive sets them for a server with a list of destinations.
var proxyVars = []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}

// validate reports the first mistake in n, the network of c, naming key
// (mcp.NAME.network).
func (n Network) validate(key string, c *ServerConfig) error {
	const write = `write "host" (the host's network, the default), "none" (no network at all) or a list of the destinations the server may reach, like ["api.github.com:443", "*.example.org:443"]`
	switch {
	case n.bad != "":
		return fmt.Errorf("%s is %s: %s", key, n.bad, write)
	case n.Mode == NetworkAllow && len(n.Allow) == 0:
		return fmt.Errorf(`%s is an empty list: write "none" for no network at all, or list the destinations the server may reach (host:port), like ["api.github.com:443"]`, key)
	case n.Mode != NetworkHost && n.Mode != NetworkNone && n.Mode != NetworkAllow:
		return fmt.Errorf("%s is %q: %s", key, n.Mode, write)
	}
	dests, err := parseDests(n.Allow)
	if err != nil {
		return fmt.Errorf("%s %w", key, err)
	}
	if c.URL != "" {
		u, _ := url.Parse(c.URL) // checked before
		dest := urlDest(u)
		switch {
		case n.Mode == NetworkNone:
			return fmt.Errorf(`%s is "none", but Hive itself reaches a server over HTTP (url): write "host", or a list that holds its url's destination, like [%q]`, key, dest)
		case n.Mode == NetworkAllow && !dests.allowsName(dest):
			return fmt.Errorf(`%s does not list %s, the destination of its url: add %q to the list, or write "host"`, key, dest, dest)
		}
		return nil
	}
	if n.Mode == NetworkAllow {
		vars := slices.Clone(c.Env)
		for k := range c.Set {
			vars = append(vars, k)
		}
		for _, v := range vars {
			if slices.Contains(proxyVars, strings.ToUpper(v)) {
				return fmt.Errorf("%s: env or set gives %s, which Hive sets itself for a server with a list of destinations (its way out is Hive's proxy): remove it", key, v)
			}
		}
	}
	return nil
}

// urlDest is the host:port a URL reaches.
func urlDest(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")), port)
}

// dest is one parsed destination of a list.
type dest struct {
	name string     // a host name, or the suffix after "*." with wild
	wild bool       // any name under name
	ip   netip.Addr // an address, when valid
	port uint16
}

type dests []dest

// parseDests parses a list of destinations.
func parseDests(list []string) (dests, error) {
	var ds dests
	for _, s := range list {
		d, err := parseDest(s)
		if err != nil {
			return nil, fmt.Errorf("has %q: %v; a destination is host:port, like \"api.github.com:443\", \"*.example.org:443\", \"10.0.0.7:5432\" or \"[2001:db8::1]:443\"", s, err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

func parseDest(s string) (dest, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return dest{}, errors.New("it is not host:port")
	}
	var d dest
	if d.port, err = parsePort(port); err != nil {
		return dest{}, err
	}
	host = strings.ToLower(host)
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return dest{}, errors.New("an address with a zone cannot be reached through a proxy")
		}
		d.ip = ip.Unmap()
		return d, nil
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		d.wild, host = true, rest
	}
	host = strings.TrimSuffix(host, ".")
	switch {
	case strings.Contains(host, "*"):
		return dest{}, errors.New(`"*" may only begin a name, as in "*.example.org"`)
	case !validHostName(host):
		return dest{}, errors.New("it is not a host name, nor an IPv4 address, nor an IPv6 address in brackets")
	}
	d.name = host
	return d, nil
}

func parsePort(p string) (uint16, error) {
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535 (list each port a server needs)", p)
	}
	return uint16(n), nil
}

// validHostName reports whether s (lower case, without a final dot) is a
// host name: labels of letters, digits, '-' and '_', the last not all
// digits (an address is written a.b.c.d).
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.ContainsFunc(last, func(c rune) bool { return c < '0' || c > '9' })
}

// allowsName reports whether the list allows hostport by its name (or its
// address, if it is one); the addresses a name resolves to are checked
// apart.
func (ds dests) allowsName(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	p, err := parsePort(port)
	if err != nil {
		return false
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		return ds.listsAddr(ip.Unmap(), p)
	}
	for _, d := range ds {
		if d.port != p || d.ip.IsValid() {
			continue
		}
		if !d.wild && host == d.name || d.wild && strings.HasSuffix(host, "."+d.name) {
			return true
		}
	}
	return false
}

// listsAddr reports whether the list names ip with port, as an address.
func (ds dests) listsAddr(ip netip.Addr, port uint16) bool {
	for _, d := range ds {
		if d.ip.IsValid() && d.ip == ip && d.port == port {
			return true
		}
	}
	return false
}
