package mcp

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// TestDecode reads [mcp.NAME] tables as hive.toml will, with unknown keys
// refused.
func TestDecode(t *testing.T) {
	const file = `
[mcp.github]
url = "https://api.githubcopilot.com/mcp/"
bearer_env = "GITHUB_TOKEN"
headers_env = {X-MCP-Toolsets = "GITHUB_TOOLSETS"}
allow = ["search_code", "get_file_contents"]
timeout = "30s"
max_output = "128K"

[mcp.fs]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/data"]
env = ["NODE_OPTIONS"]
set = {LOG_LEVEL = "warn"}
allow = ["*"]
max_output = 4096
roles = ["worker", "lead"]
tiers = ["strong"]
`
	var cfg struct {
		MCP map[string]*ServerConfig `toml:"mcp"`
	}
	md, err := toml.Decode(file, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Fatalf("undecoded keys %v", und)
	}
	gh, fs := cfg.MCP["github"], cfg.MCP["fs"]
	if gh.URL != "https://api.githubcopilot.com/mcp/" || gh.BearerEnv != "GITHUB_TOKEN" || gh.HeadersEnv["X-MCP-Toolsets"] != "GITHUB_TOOLSETS" ||
		gh.Timeout != 30*time.Second || gh.MaxOutput != 128<<10 || len(gh.Allow) != 2 {
		t.Errorf("github: %+v", gh)
	}
	if fs.Command != "npx" || len(fs.Args) != 3 || fs.Env[0] != "NODE_OPTIONS" || fs.Set["LOG_LEVEL"] != "warn" || fs.MaxOutput != 4096 ||
		len(fs.Roles) != 2 || fs.Tiers[0] != "strong" {
		t.Errorf("fs: %+v", fs)
	}
	for name, c := range cfg.MCP {
		c.Name = name
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	}

	md, err = toml.Decode("[mcp.x]\ncommand = \"x\"\nallow = [\"*\"]\nalow = [\"y\"]\n", &cfg)
	if err != nil || len(md.Undecoded()) != 1 {
		t.Errorf("a misspelt key: %v, undecoded %v", err, md.Undecoded())
	}
	if _, err := toml.Decode("[mcp.x]\nmax_output = \"lots\"\n", &cfg); err == nil || !strings.Contains(err.Error(), "64K") {
		t.Errorf("a bad size: %v", err)
	}
}

func TestValidate(t *testing.T) {
	stdio := func(f func(*ServerConfig)) *ServerConfig {
		c := &ServerConfig{Name: "srv", Command: "server", Allow: []string{"*"}}
		f(c)
		return c
	}
	remote := func(f func(*ServerConfig)) *ServerConfig {
		c := &ServerConfig{Name: "srv", URL: "https://mcp.example/mcp", Allow: []string{"search"}}
		f(c)
		return c
	}
	for _, c := range []*ServerConfig{
		stdio(func(*ServerConfig) {}),
		stdio(func(c *ServerConfig) {
			c.Name, c.Env, c.Set = "my_files-2", []string{"TOKEN"}, map[string]string{"MODE": "ro"}
		}),
		remote(func(*ServerConfig) {}),
		remote(func(c *ServerConfig) { c.BearerEnv, c.HeadersEnv = "TOKEN", map[string]string{"X-Key": "KEY"} }),
		remote(func(c *ServerConfig) { c.URL, c.BearerEnv = "http://127.0.0.1:8080/mcp", "TOKEN" }),
		remote(func(c *ServerConfig) { c.URL, c.BearerEnv = "http://localhost/mcp", "TOKEN" }),
		remote(func(c *ServerConfig) { c.URL = "http://mcp.example/mcp" }), // no secret to leak
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for want, c := range map[string]*ServerConfig{
		"has no name":                    stdio(func(c *ServerConfig) { c.Name = "" }),
		"mcp.a__b: a server's name":      stdio(func(c *ServerConfig) { c.Name = "a__b" }),
		"mcp._a: a server's name":        stdio(func(c *ServerConfig) { c.Name = "_a" }),
		"mcp.a_: a server's name":        stdio(func(c *ServerConfig) { c.Name = "a_" }),
		"mcp.1a: a server's name":        stdio(func(c *ServerConfig) { c.Name = "1a" }),
		"mcp.a.b: a server's name":       stdio(func(c *ServerConfig) { c.Name = "a.b" }),
		"at most 24 characters":          stdio(func(c *ServerConfig) { c.Name = strings.Repeat("a", 25) }),
		"not both":                       stdio(func(c *ServerConfig) { c.URL = "https://x" }),
		"give command":                   stdio(func(c *ServerConfig) { c.Command = "" }),
		"args without a command":         stdio(func(c *ServerConfig) { c.Command, c.Args = "", []string{"-v"} }),
		"arguments go in args":           stdio(func(c *ServerConfig) { c.Command = "npx -y server" }),
		"is one program":                 stdio(func(c *ServerConfig) { c.Command = " server" }),
		"env takes names":                stdio(func(c *ServerConfig) { c.Env = []string{"TOKEN=abc"} }),
		"both in env":                    stdio(func(c *ServerConfig) { c.Env, c.Set = []string{"A"}, map[string]string{"A": "1"} }),
		"set takes variable names":       stdio(func(c *ServerConfig) { c.Set = map[string]string{"A B": "1"} }),
		"are for a server over HTTP":     stdio(func(c *ServerConfig) { c.BearerEnv = "TOKEN" }),
		"allow is empty":                 stdio(func(c *ServerConfig) { c.Allow = nil }),
		`"*" alone`:                      stdio(func(c *ServerConfig) { c.Allow = []string{"*", "echo"} }),
		"cannot be a tool's name":        stdio(func(c *ServerConfig) { c.Allow = []string{" "} }),
		"timeout is negative":            stdio(func(c *ServerConfig) { c.Timeout = -time.Second }),
		`write it with a unit`:           stdio(func(c *ServerConfig) { c.Timeout = 60 }),
		"max_output is negative":         stdio(func(c *ServerConfig) { c.MaxOutput = -1 }),
		"are for a server Hive starts":   remote(func(c *ServerConfig) { c.Env = []string{"A"} }),
		"not an http:// or https://":     remote(func(c *ServerConfig) { c.URL = "ftp://x/mcp" }),
		"holds a user or password":       remote(func(c *ServerConfig) { c.URL = "https://me:pw@x/mcp" }),
		"in clear text":                  remote(func(c *ServerConfig) { c.URL, c.BearerEnv = "http://mcp.example/mcp", "TOKEN" }),
		"bearer_env takes the name":      remote(func(c *ServerConfig) { c.BearerEnv = "$TOKEN" }),
		"not a header's name":            remote(func(c *ServerConfig) { c.HeadersEnv = map[string]string{"X Key": "K"} }),
		"which the MCP transport sets":   remote(func(c *ServerConfig) { c.HeadersEnv = map[string]string{"Mcp-Session-Id": "K"} }),
		"both bearer_env and headers":    remote(func(c *ServerConfig) { c.BearerEnv, c.HeadersEnv = "T", map[string]string{"authorization": "K"} }),
		"which is not a variable's name": remote(func(c *ServerConfig) { c.HeadersEnv = map[string]string{"X-Key": "ghp_abc-123"} }),
		`roles has "admin"`:              stdio(func(c *ServerConfig) { c.Roles = []string{"worker", "admin"} }),
		"tiers has an empty name":        stdio(func(c *ServerConfig) { c.Tiers = []string{""} }),
	} {
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want it to say %q", c, err, want)
		}
	}
	if _, err := New(map[string]*ServerConfig{"ok": stdio(func(*ServerConfig) {}), "bad": stdio(func(c *ServerConfig) { c.Allow = nil })}, nil, Options{}); err == nil || !strings.Contains(err.Error(), "mcp.bad: allow is empty") {
		t.Errorf("New with a bad table: %v", err)
	}
}

// TestOffers: a server's tools go to workers by default, of every tier
// unless tiers names some, and to the lead only when roles names it.
func TestOffers(t *testing.T) {
	for _, c := range []struct {
		roles, tiers []string
		role, model  string
		want         bool
	}{
		{nil, nil, RoleWorker, "cheap", true},
		{nil, nil, RoleLead, "sonnet", false},
		{[]string{"lead"}, nil, RoleWorker, "cheap", false},
		{[]string{"lead"}, nil, RoleLead, "sonnet", true},
		{[]string{"worker", "lead"}, []string{"strong"}, RoleWorker, "cheap", false},
		{[]string{"worker", "lead"}, []string{"strong"}, RoleWorker, "strong", true},
		{[]string{"worker", "lead"}, []string{"strong"}, RoleLead, "sonnet", true},
	} {
		sc := ServerConfig{Roles: c.roles, Tiers: c.tiers}
		if got := sc.Offers(c.role, c.model); got != c.want {
			t.Errorf("roles %v tiers %v: offers %s %s: %v, want %v", c.roles, c.tiers, c.role, c.model, got, c.want)
		}
	}
}

// TestJSON: a run's spec journals its servers as JSON, and reads them back
// the same.
func TestJSON(t *testing.T) {
	in := ServerConfig{Name: "fs", Command: "npx", Args: []string{"-y", "x"}, Allow: []string{"*"}, Timeout: 20 * time.Second, MaxOutput: 4 << 10, Roles: []string{"lead"}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out ServerConfig
	if err := json.Unmarshal(b, &out); err != nil || !reflect.DeepEqual(in, out) {
		t.Errorf("%s read back as %+v: %v", b, out, err)
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]Size{"0": 0, "4096": 4096, "64K": 64 << 10, "64KiB": 64 << 10, "64kb": 64 << 10, "1M": 1 << 20, " 2G ": 2 << 30} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || s != want {
			t.Errorf("%q: %d, %v; want %d", in, s, err, want)
		}
	}
	for _, in := range []string{"", "K", "-1", "1.5M", "lots", "99999999999G"} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("%q: %d, want an error", in, s)
		}
	}
}

func TestToolName(t *testing.T) {
	long := strings.Repeat("x", 70)
	for _, c := range []struct{ server, tool, want string }{
		{"gh", "search_code", "gh__search_code"},
		{"gh", "get-file", "gh__get-file"},
		{"gh", "admin.tools.list", "gh__admin_tools_list_"},
		{"gh", "repo/read", "gh__repo_read_"},
		{"gh", "ünï", "gh___n__"},
		{"gh", long, "gh__" + long[:51] + "_"},
	} {
		got := toolName(c.server, c.tool)
		if !strings.HasPrefix(got, c.want) || !modelToolName.MatchString(got) {
			t.Errorf("toolName(%q, %q) = %q, want %q…", c.server, c.tool, got, c.want)
		}
		if got != toolName(c.server, c.tool) {
			t.Errorf("toolName(%q, %q) changes", c.server, c.tool)
		}
		if s, ok := splitName(got); !ok || s != c.server {
			t.Errorf("splitName(%q) = %q", got, s)
		}
	}
	if len(toolName("gh", long)) != 64 {
		t.Errorf("a long name has %d characters", len(toolName("gh", long)))
	}
	if toolName("gh", long) == toolName("gh", long+"y") {
		t.Error("two long names that differ past the cut have one name")
	}
	// A server's name may hold single '_'; the first "__" still ends it.
	if s, _ := splitName(toolName("my_files", "_hidden")); s != "my_files" {
		t.Errorf("server %q", s)
	}
}
