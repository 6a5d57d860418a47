package mcp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestNetworkConfig: network is "host", "none" or a list of host:port
// destinations; every other value is refused, naming mcp.NAME.network
// and what to write instead.
func TestNetworkConfig(t *testing.T) {
	for _, tc := range []struct {
		name, toml string
		want       Network
		err        []string // in the error of Validate; none: valid
	}{
		{"default", ``, Network{}, nil},
		{"host", `network = "host"`, Network{}, nil},
		{"none", `network = "none"`, Network{Mode: NetworkNone}, nil},
		{"list", `network = ["api.github.com:443", "*.Example.org.:443", "10.0.0.7:5432", "[2001:db8::1]:443"]`,
			Network{Mode: NetworkAllow, Allow: []string{"api.github.com:443", "*.Example.org.:443", "10.0.0.7:5432", "[2001:db8::1]:443"}}, nil},
		{"off", `network = "off"`, Network{}, []string{`mcp.kid.network is "off"`, `write "host"`, `"none"`, `["api.github.com:443"`}},
		{"number", `network = 3`, Network{}, []string{`mcp.kid.network is 3`, `write "host"`}},
		{"list of numbers", `network = [443]`, Network{}, []string{`mcp.kid.network is a list holding 443`}},
		{"empty", `network = []`, Network{}, []string{`mcp.kid.network is an empty list`, `write "none"`}},
		{"no port", `network = ["api.github.com"]`, Network{}, []string{`mcp.kid.network has "api.github.com": it is not host:port`, `like "api.github.com:443"`}},
		{"port zero", `network = ["api.github.com:0"]`, Network{}, []string{`port "0" is not a number from 1 to 65535`}},
		{"any port", `network = ["api.github.com:*"]`, Network{}, []string{`port "*"`, `list each port`}},
		{"star inside", `network = ["api.*.com:443"]`, Network{}, []string{`"*" may only begin a name`}},
		{"star alone", `network = ["*:443"]`, Network{}, []string{`"*" may only begin a name`}},
		{"url", `network = ["https://api.github.com:443"]`, Network{}, []string{`not host:port`}},
		{"v6 bare", `network = ["2001:db8::1:443"]`, Network{}, []string{`not host:port`}},
		{"numeric name", `network = ["127.1:80"]`, Network{}, []string{`not a host name`}},
		{"zone", `network = ["[fe80::1%eth0]:80"]`, Network{}, []string{`zone`}},
		{"proxy in set", "network = [\"a.org:443\"]\nset = {https_proxy = \"http://elsewhere:3128\"}", Network{}, []string{`mcp.kid.network: env or set gives https_proxy, which Hive sets itself`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c ServerConfig
			if _, err := toml.Decode("command = \"srv\"\nallow = [\"*\"]\n"+tc.toml, &c); err != nil {
				t.Fatalf("decode: %v", err)
			}
			c.Name = "kid"
			err := c.Validate()
			if tc.err == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if c.Network.Mode != tc.want.Mode || strings.Join(c.Network.Allow, ",") != strings.Join(tc.want.Allow, ",") {
					t.Errorf("network %+v, want %+v", c.Network, tc.want)
				}
				// A run's spec is journaled as JSON, and read back.
				b, err := json.Marshal(&c)
				if err != nil {
					t.Fatal(err)
				}
				var back ServerConfig
				if err := json.Unmarshal(b, &back); err != nil {
					t.Fatalf("%s: %v", b, err)
				}
				if back.Network.String() != c.Network.String() {
					t.Errorf("%s read back as %s", b, back.Network)
				}
				if c.Network.Mode == NetworkHost && strings.Contains(string(b), "network") {
					t.Errorf("the default network is journaled: %s", b)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %s", tc.toml)
			}
			for _, w := range tc.err {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nlacks %q", err, w)
				}
			}
		})
	}
}

// TestNetworkURL: a server over HTTP takes "host", or a list that holds
// its url's destination; never "none".
func TestNetworkURL(t *testing.T) {
	for _, tc := range []struct {
		url, network string
		err          string
	}{
		{"https://mcp.example.org/mcp", `"host"`, ""},
		{"https://mcp.example.org/mcp", `["mcp.example.org:443"]`, ""},
		{"https://mcp.example.org/mcp", `["*.example.org:443"]`, ""},
		{"http://10.0.0.7:8080/mcp", `["10.0.0.7:8080"]`, ""},
		{"https://mcp.example.org/mcp", `"none"`, `mcp.web.network is "none", but Hive itself reaches a server over HTTP (url): write "host", or a list that holds its url's destination, like ["mcp.example.org:443"]`},
		{"https://mcp.example.org/mcp", `["mcp.example.org:80"]`, `mcp.web.network does not list mcp.example.org:443, the destination of its url: add "mcp.example.org:443" to the list, or write "host"`},
		{"https://mcp.example.org/mcp", `["example.org:443"]`, `does not list mcp.example.org:443`},
	} {
		var c ServerConfig
		if _, err := toml.Decode("url = \""+tc.url+"\"\nallow = [\"*\"]\nnetwork = "+tc.network, &c); err != nil {
			t.Fatal(err)
		}
		c.Name = "web"
		err := c.Validate()
		if got := ""; err != nil {
			got = err.Error()
			if tc.err == "" || !strings.Contains(got, tc.err) {
				t.Errorf("%s with network %s: %v\nwant %q", tc.url, tc.network, err, tc.err)
			}
		} else if tc.err != "" {
			t.Errorf("%s with network %s: accepted", tc.url, tc.network)
		}
	}
}

func TestNetworkMeets(t *testing.T) {
	host, none, list := Network{}, Network{Mode: NetworkNone}, Network{Mode: NetworkAllow, Allow: []string{"a.org:443"}}
	for _, tc := range []struct {
		n    Network
		req  string
		want bool
	}{
		{host, "", true}, {none, "", true}, {list, "", true},
		{host, RequireNone, false}, {none, RequireNone, true}, {list, RequireNone, false},
		{host, RequireAllowlist, false}, {none, RequireAllowlist, true}, {list, RequireAllowlist, true},
	} {
		if got := tc.n.Meets(tc.req); got != tc.want {
			t.Errorf("%s meets %q: %v", tc.n, tc.req, got)
		}
	}
}

// TestAllowTransport: Hive sends the requests of a server over HTTP with a
// list only to listed destinations.
func TestAllowTransport(t *testing.T) {
	ds, _ := parseDests([]string{"mcp.example.org:443"})
	base := roundTripFunc(func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 200}, nil })
	tr := &allowTransport{base: base, dests: ds, server: "web"}
	for u, ok := range map[string]bool{
		"https://mcp.example.org/mcp":     true,
		"https://MCP.example.org:443/x":   true,
		"http://mcp.example.org/mcp":      false,
		"https://evil.example.org/mcp":    false,
		"https://mcp.example.org:8443/mc": false,
	} {
		req := &http.Request{Method: "GET", URL: must(url.Parse(u)), Header: http.Header{}}
		_, err := tr.RoundTrip(req)
		if (err == nil) != ok {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
