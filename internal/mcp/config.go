package mcp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of a [ServerConfig]'s zero fields.
const (
	DefaultTimeout   = 60 * time.Second
	DefaultMaxOutput = 64 << 10
)

// maxServerName bounds a server's name, so that SERVER__tool leaves most of
// a model API's 64 characters to the tool.
const maxServerName = 24

// serverName is what a server may be called: letters, digits, '-' and
// single '_' between them, starting with a letter. No "__", which separates
// the server from the tool in a tool's name, and no trailing '_'.
var serverName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*(?:_[A-Za-z0-9-]+)*$`)

// ServerConfig is one mcp.NAME table of hive.toml: an MCP server Hive
// starts (stdio: command, args, env, set) or reaches (streamable HTTP: url,
// headers_env, bearer_env), and which of its tools models may call.
//
//	[mcp.github]
//	url = "https://api.githubcopilot.com/mcp/"
//	bearer_env = "GITHUB_TOKEN"
//	allow = ["search_code", "get_file_contents"]
//
//	[mcp.fs]
//	command = "npx"
//	args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/data"]
//	allow = ["*"]
//	timeout = "20s"
//	roles = ["worker", "lead"]   # default ["worker"]
//	tiers = ["sonnet"]           # default every tier
//	network = "none"             # default "host"; or ["api.github.com:443"]
//
// Secrets never live in the file: env, headers_env and bearer_env name
// variables of Hive's environment, read when the server is started.
type ServerConfig struct {
	// Name is the table's key, the NAME of mcp.NAME, and the prefix of
	// its tools' names (NAME__tool). Whoever decodes the file sets it;
	// New sets it from its map's key.
	Name string `toml:"-" json:"name,omitempty"`

	// Command runs a stdio server: the program (looked up in PATH) and
	// its arguments.
	Command string   `toml:"command" json:"command,omitempty"`
	Args    []string `toml:"args" json:"args,omitempty"`
	// Env names the variables of Hive's environment the server gets.
	// Nothing else of Hive's environment reaches it but PATH, HOME, LANG,
	// LC_ALL and TMPDIR: no API key, no token, unless named here.
	Env []string `toml:"env" json:"env,omitempty"`
	// Set gives the server more variables, by value (not secrets: they
	// are in the file).
	Set map[string]string `toml:"set" json:"set,omitempty"`
	// Network is where a stdio server may connect: "host" (the default),
	// "none", or a list of host:port destinations it reaches through a
	// proxy Hive runs for it ([Network]). For a server over HTTP it is
	// "host" or a list holding its url's destination.
	Network Network `toml:"network" json:"network,omitzero"`

	// URL reaches a server over streamable HTTP instead.
	URL string `toml:"url" json:"url,omitempty"`
	// HeadersEnv maps a header sent with every request to the variable of
	// Hive's environment that holds its value:
	// headers_env = {X-Api-Key = "SEARCH_API_KEY"}.
	HeadersEnv map[string]string `toml:"headers_env" json:"headers_env,omitempty"`
	// BearerEnv names the variable holding a token sent as
	// "Authorization: Bearer TOKEN".
	BearerEnv string `toml:"bearer_env" json:"bearer_env,omitempty"`

	// Allow lists the tools (by their name on the server) that models may
	// see and call; ["*"] allows every tool the server offers. It is
	// required: a server's tools are actions on the world, and each one a
	// model may take is the user's choice, not the server's.
	Allow []string `toml:"allow" json:"allow,omitempty"`
	// Timeout bounds each call ("30s"), and the server's start (with
	// the listing of its tools); default 60s.
	Timeout time.Duration `toml:"timeout" json:"timeout,omitempty"`
	// MaxOutput bounds the text of a result a model is shown ("64K", or
	// a number of bytes); default 64 KiB. The whole output is kept apart
	// ([Result.Full]).
	MaxOutput Size `toml:"max_output" json:"max_output,omitempty"`

	// Roles are the roles of a run whose models are offered the server's
	// tools: "worker" (the default) and "lead".
	Roles []string `toml:"roles" json:"roles,omitempty"`
	// Tiers, when set, offers the tools only to workers of these models
	// (the names of a run's tiers); default every tier. The lead is
	// offered them when Roles names it, whatever Tiers says.
	Tiers []string `toml:"tiers" json:"tiers,omitempty"`
}

// Roles of a run's models that a server's tools may be offered to
// ([ServerConfig.Roles]).
const (
	RoleWorker = "worker"
	RoleLead   = "lead"
)

// Offers reports whether the server's tools are offered to a model of
// role (RoleWorker or RoleLead) that is model (a worker's tier).
func (c *ServerConfig) Offers(role, model string) bool {
	roles := c.Roles
	if len(roles) == 0 {
		roles = []string{RoleWorker}
	}
	if !slices.Contains(roles, role) {
		return false
	}
	return role == RoleLead || len(c.Tiers) == 0 || slices.Contains(c.Tiers, model)
}

// Validate reports the first mistake in c, naming the table and the key.
func (c *ServerConfig) Validate() error {
	name := c.Name
	switch {
	case name == "":
		return errors.New("mcp: a server has no name (it is the NAME of its [mcp.NAME] table)")
	case len(name) > maxServerName || !serverName.MatchString(name):
		return fmt.Errorf("mcp.%s: a server's name takes letters, digits, '-' and single '_' between them, starts with a letter, and has at most %d characters (it prefixes its tools' names: NAME__tool)", name, maxServerName)
	}
	p := "mcp." + name
	stdio, remote := c.Command != "", c.URL != ""
	switch {
	case stdio && remote:
		return fmt.Errorf("%s: give command (a server Hive starts) or url (a server over HTTP), not both", p)
	case !stdio && !remote:
		if len(c.Args) > 0 {
			return fmt.Errorf("%s: args without a command (command is the program, args its arguments)", p)
		}
		return fmt.Errorf("%s: give command (a server Hive starts, with args) or url (a server over streamable HTTP)", p)
	case stdio && (strings.TrimSpace(c.Command) != c.Command || strings.Contains(c.Command, " ") && !strings.Contains(c.Command, "/")):
		return fmt.Errorf("%s: command %q is one program, and its arguments go in args: command = \"npx\", args = [\"-y\", \"server\"]", p, c.Command)
	case stdio && (len(c.HeadersEnv) > 0 || c.BearerEnv != ""):
		return fmt.Errorf("%s: headers_env and bearer_env are for a server over HTTP (url); a command's server takes env", p)
	case remote && (len(c.Args) > 0 || len(c.Env) > 0 || len(c.Set) > 0):
		return fmt.Errorf("%s: args, env and set are for a server Hive starts (command); a server over HTTP takes headers_env or bearer_env", p)
	}
	for _, e := range c.Env {
		if !validEnvName(e) {
			return fmt.Errorf("%s: env takes names of variables, not %q (the value stays in Hive's environment)", p, e)
		}
		if _, ok := c.Set[e]; ok {
			return fmt.Errorf("%s: %s is both in env (from Hive's environment) and in set (a value in the file): keep one", p, e)
		}
	}
	for k := range c.Set {
		if !validEnvName(k) {
			return fmt.Errorf("%s: set takes variable names as keys, not %q", p, k)
		}
	}
	if remote {
		if err := c.validateRemote(p); err != nil {
			return err
		}
	}
	if err := c.Network.validate(p+".network", c); err != nil {
		return err
	}
	if len(c.Allow) == 0 {
		return fmt.Errorf("%s: allow is empty: list the tools models may call (allow = [\"search\", \"fetch\"]), or allow = [\"*\"] for every tool the server offers", p)
	}
	for _, a := range c.Allow {
		switch {
		case a == "*" && len(c.Allow) > 1:
			return fmt.Errorf("%s: allow has \"*\" and names: \"*\" alone allows every tool", p)
		case strings.TrimSpace(a) == "" || strings.ContainsFunc(a, func(r rune) bool { return r < ' ' }):
			return fmt.Errorf("%s: allow has %q, which cannot be a tool's name", p, a)
		}
	}
	for _, r := range c.Roles {
		if r != RoleWorker && r != RoleLead {
			return fmt.Errorf("%s: roles has %q: it takes \"worker\" and \"lead\" (default [\"worker\"])", p, r)
		}
	}
	for _, t := range c.Tiers {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("%s: tiers has an empty name: list the models of the tiers whose workers may use the server", p)
		}
	}
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("%s: timeout is negative", p)
	case c.Timeout > 0 && c.Timeout < time.Millisecond:
		return fmt.Errorf("%s: timeout is %s: write it with a unit, like \"60s\"", p, c.Timeout)
	case c.MaxOutput < 0:
		return fmt.Errorf("%s: max_output is negative", p)
	}
	return nil
}

func (c *ServerConfig) validateRemote(p string) error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: url %q is not an http:// or https:// address", p, c.URL)
	}
	if u.User != nil {
		return fmt.Errorf("%s: url holds a user or password; put the secret in a variable and name it in bearer_env or headers_env", p)
	}
	secret := c.BearerEnv != "" || len(c.HeadersEnv) > 0
	if secret && u.Scheme == "http" && !loopback(u.Hostname()) {
		return fmt.Errorf("%s: url is http:// to another machine, and the headers would carry secrets in clear text: use https://", p)
	}
	if c.BearerEnv != "" && !validEnvName(c.BearerEnv) {
		return fmt.Errorf("%s: bearer_env takes the name of a variable, not %q", p, c.BearerEnv)
	}
	for h, e := range c.HeadersEnv {
		switch {
		case !validHeaderName(h):
			return fmt.Errorf("%s: headers_env has %q, which is not a header's name", p, h)
		case reservedHeader(h):
			return fmt.Errorf("%s: headers_env sets %s, which the MCP transport sets itself", p, h)
		case strings.EqualFold(h, "Authorization") && c.BearerEnv != "":
			return fmt.Errorf("%s: both bearer_env and headers_env set Authorization: keep one", p)
		case !validEnvName(e):
			return fmt.Errorf("%s: headers_env maps %s to %q, which is not a variable's name (the value stays in Hive's environment)", p, h, e)
		}
	}
	return nil
}

// withDefaults returns a copy of c with its zero fields filled in.
func (c ServerConfig) withDefaults() ServerConfig {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxOutput == 0 {
		c.MaxOutput = DefaultMaxOutput
	}
	return c
}

// allows reports whether the allow list names tool.
func (c *ServerConfig) allows(tool string) bool {
	return slices.Contains(c.Allow, "*") || slices.Contains(c.Allow, tool)
}

// Size is a number of bytes, written "64K", "1M", "64KiB" or as a number.
type Size int64

// MarshalText writes a size as its number of bytes, which UnmarshalText
// reads back (a run's spec is journaled as JSON).
func (s Size) MarshalText() ([]byte, error) { return strconv.AppendInt(nil, int64(s), 10), nil }

// UnmarshalText parses a size; TOML integers arrive here as their digits.
func (s *Size) UnmarshalText(text []byte) error {
	t := strings.ToUpper(strings.TrimSpace(string(text)))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || v < 0 || v > (1<<40)/mult {
		return fmt.Errorf("bad size %q (write it like \"64K\", \"1M\" or a number of bytes)", text)
	}
	*s = Size(v * mult)
	return nil
}

// validEnvName reports whether s can name an environment variable: letters,
// digits and '_', not starting with a digit.
func validEnvName(s string) bool {
	for i, c := range s {
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// validHeaderName reports whether s is an HTTP header's name (an RFC 9110
// token).
func validHeaderName(s string) bool {
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return s != ""
}

// reservedHeader reports whether the transport sets header h itself.
func reservedHeader(h string) bool {
	h = strings.ToLower(h)
	return strings.HasPrefix(h, "mcp-") || slices.Contains([]string{"host", "content-type", "content-length", "accept", "connection", "transfer-encoding", "last-event-id"}, h)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
