package mcp

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestProxyCheck: the proxy matches a destination by the name the server
// asked for, resolves it on the host, and refuses a name that leads to
// this machine or its link unless the address itself is listed.
func TestProxyCheck(t *testing.T) {
	ds, err := parseDests([]string{"api.github.com:443", "*.example.org:443", "10.0.0.7:5432", "local.example.net:8080", "127.0.0.1:8080", "[2001:db8::1]:443"})
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string][]string{
		"api.github.com":      {"140.82.112.6"},
		"a.example.org":       {"93.184.215.14"},
		"b.c.example.org":     {"2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"rebind.example.org":  {"127.0.0.1"},
		"mixed.example.org":   {"127.0.0.1", "93.184.215.15"},
		"meta.example.org":    {"169.254.169.254"},
		"zero.example.org":    {"0.0.0.0"},
		"mapped.example.org":  {"::ffff:127.0.0.1"},
		"self.example.org":    {"192.0.2.2"},
		"local.example.net":   {"127.0.0.1"},
		"private.example.org": {"10.1.2.3"},
	}
	p := &proxy{dests: ds, net: netHooks{
		resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			var out []netip.Addr
			for _, a := range addrs[host] {
				out = append(out, netip.MustParseAddr(a))
			}
			if out == nil {
				return nil, errors.New("no such host")
			}
			return out, nil
		},
		own: func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("192.0.2.2")} },
	}}
	for _, tc := range []struct {
		target string
		want   string // the addresses dialed, or the start of why it is refused
	}{
		{"api.github.com:443", "140.82.112.6"},
		{"API.GitHub.com.:443", "140.82.112.6"},
		{"a.example.org:443", "93.184.215.14"},
		{"b.c.example.org:443", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		{"private.example.org:443", "10.1.2.3"},
		{"mixed.example.org:443", "93.184.215.15"},
		{"10.0.0.7:5432", "10.0.0.7"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"local.example.net:8080", "127.0.0.1"}, // resolves to an address that is listed with its port
		{"127.0.0.1:8080", "127.0.0.1"},         // listed as such
		{"[::ffff:10.0.0.7]:5432", "10.0.0.7"},  // the same address
		{"api.github.com:80", "the server's network does not list it"},
		{"example.org:443", "the server's network does not list it"},
		{"evil.com:443", "the server's network does not list it"},
		{"api.github.com.evil.com:443", "the server's network does not list it"},
		{"10.0.0.7:22", "the server's network does not list it"},
		{"127.0.0.1:443", "the server's network does not list it"},
		{"[::1]:8080", "the server's network does not list it"},
		{"0.0.0.0:8080", "the server's network does not list it"},
		{"rebind.example.org:443", "it resolves to 127.0.0.1 (loopback)"},
		{"mapped.example.org:443", "it resolves to 127.0.0.1 (loopback)"},
		{"meta.example.org:443", "it resolves to 169.254.169.254 (link-local)"},
		{"zero.example.org:443", "it resolves to 0.0.0.0 (unspecified)"},
		{"self.example.org:443", "it resolves to 192.0.2.2 (an address of this machine)"},
		{"nowhere.example.org:443", "it cannot be resolved"},
		{"a.example.org:0", "not a port"},
		{"a.example.org", "not host:port"},
	} {
		got, port, why := p.check(context.Background(), tc.target)
		if why != "" {
			if !strings.HasPrefix(why, tc.want) {
				t.Errorf("%s refused: %s; want %s", tc.target, why, tc.want)
			}
			continue
		}
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if strings.Join(s, ",") != tc.want || port == 0 {
			t.Errorf("%s: dial %v port %d; want %s", tc.target, s, port, tc.want)
		}
	}
}
