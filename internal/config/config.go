// Package config reads hive.toml: the models Hive may call (provider, base
// URL, the environment variable holding the API key, tier, price override,
// limits) and the defaults of a run.
//
// Secrets never live in the file: a model names the environment variable
// that holds its key (api_key_env), and the key is read from the
// environment only when a client is built. Without a file, the names
// "anthropic:MODEL" and "openai:MODEL" work from the standard variables
// (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, OPENAI_API_KEY, OPENAI_BASE_URL),
// as the official SDKs and CLIs do.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/bmatcuk/doublestar/v4"

	"github.com/hive-swarm/hive/internal/hedge"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/screen"
)

// Providers Hive can talk to.
const (
	ProviderAnthropic = "anthropic"
	ProviderOpenAI    = "openai" // also every OpenAI-compatible server
)

// Config is a parsed hive.toml.
type Config struct {
	// Path is the file it was read from, empty for the built-in defaults.
	Path     string            `toml:"-"`
	Defaults Defaults          `toml:"defaults"`
	Models   map[string]*Model `toml:"models"`
	// Swarms are named swarm configurations: what a client of the
	// OpenAI-compatible endpoint of hive serve names as its "model".
	Swarms map[string]*Swarm `toml:"swarms"`
	Serve  Serve             `toml:"serve"`
	// Checks are the commands a task's verify may run, by name: a model
	// chooses among them ({kind: command, check: NAME}) but can never
	// give a command of its own.
	Checks map[string]*Check `toml:"checks"`
	// Secrets names more environment variables whose values must never
	// be journaled, logged or printed (besides the API keys and the
	// token, and every variable named like a secret).
	Secrets Secrets `toml:"secrets"`
	// Sandbox bounds the code models write ([sandbox]).
	Sandbox Sandbox `toml:"sandbox"`
	// MCP are the MCP servers whose tools a run's models may call
	// ([mcp.NAME]), with which tools (allow) and for whom (roles, tiers).
	MCP map[string]*mcp.ServerConfig `toml:"mcp"`
	// Workspace says what of a run's workspace workers may not see, or
	// may see although .gitignore ignores it ([workspace]).
	Workspace Workspace `toml:"workspace"`
	// Audit is how each run's audit head is signed and anchored ([audit]).
	Audit Audit `toml:"audit"`
	// Policy is what the operator allows ([policy]): for now, how tasks
	// and reports are screened ([policy.screen]).
	Policy Policy `toml:"policy"`

	budgetSet bool // defaults.budget_usd is in the file (0 then means none)
}

// Policy is the [policy] table.
type Policy struct {
	// Screen screens each run's task and each worker's report: built-in
	// credential detectors, the operator's rules and sizes (see package
	// screen).
	Screen screen.Config `toml:"screen"`
	// Approval is what waits for a person ([policy.approval]).
	Approval Approval `toml:"approval"`

	// Models, when set, are the only models runs may use (lead, tiers,
	// judges and voters); LeadModels the only ones that may lead.
	Models     []string `toml:"models"`
	LeadModels []string `toml:"lead_models"`
	// MCPServers, when set, are the only [mcp.NAME] servers runs may use
	// ([] for none).
	MCPServers []string `toml:"mcp_servers"`
	// MCPNetwork, when set, is what every [mcp.NAME] server's network
	// must be: "none" (network = "none"), or "allowlist" (network =
	// "none" or a list of destinations, never the host's network).
	MCPNetwork string `toml:"mcp_network"`
	// MaxBudgetUSD bounds each run's budget (and a run without one gets
	// it); DailyBudgetUSD bounds all runs started on one day (UTC)
	// together, across every process sharing the journal.
	MaxBudgetUSD   float64 `toml:"max_budget_usd"`
	DailyBudgetUSD float64 `toml:"daily_budget_usd"`
	// MaxWorkers, MaxDepth and MaxWall bound each run's knobs.
	MaxWorkers int      `toml:"max_workers"`
	MaxDepth   int      `toml:"max_depth"`
	MaxWall    Duration `toml:"max_wall"`

	// Workers bounds what every worker may use ([policy.workers]); Tiers
	// what the workers of one tier's model may, instead
	// ([policy.tiers.MODEL]); Lead what the lead may ([policy.lead]:
	// mcp_servers only, its protocol tools are the run's own).
	Workers *PolicyRule            `toml:"workers"`
	Tiers   map[string]*PolicyRule `toml:"tiers"`
	Lead    *PolicyRule            `toml:"lead"`
}

// PolicyRule is what the models of one role or tier may use; a list left
// out bounds nothing.
type PolicyRule struct {
	// Tools are the built-in tools offered: run_code, delegate,
	// list_files, read_file, grep, write_file, edit_file (submit always).
	Tools []string `toml:"tools"`
	// Write are the workspace paths write_file and edit_file may change:
	// globs relative to the workspace root, ** for any depth ("src/**").
	Write []string `toml:"write"`
	// Read are the workspace paths read_file reads, grep searches and
	// list_files lists (directories by name); code a worker runs sees the
	// whole workspace, so a rule with read must leave run_code out of
	// tools.
	Read []string `toml:"read"`
	// MCPServers are the [mcp.NAME] servers whose tools are offered.
	MCPServers []string `toml:"mcp_servers"`
}

// builtinTools are the tools a [PolicyRule] may name.
var builtinTools = []string{"run_code", "delegate", "list_files", "read_file", "grep", "write_file", "edit_file"}

// check checks the rule, found at key.
func (r *PolicyRule) check(key string, lead bool) error {
	if r == nil {
		return nil
	}
	if lead && (r.Tools != nil || r.Write != nil || r.Read != nil) {
		return fmt.Errorf("%s takes only mcp_servers: the lead's tools are the protocol's, and it reads and writes no files", key)
	}
	if r.Read != nil && (r.Tools == nil || slices.Contains(r.Tools, "run_code")) {
		return fmt.Errorf("%s.read bounds what the file tools read, but code a worker runs sees the whole workspace: give tools without run_code", key)
	}
	for _, t := range r.Tools {
		if !slices.Contains(builtinTools, t) {
			return fmt.Errorf("%s.tools: %q is not a built-in tool (%s; submit is always offered; MCP tools go by mcp_servers)", key, t, strings.Join(builtinTools, ", "))
		}
	}
	for k, globs := range map[string][]string{"write": r.Write, "read": r.Read} {
		for _, g := range globs {
			if g == "" || strings.HasPrefix(g, "/") || !doublestar.ValidatePattern(g) {
				return fmt.Errorf("%s.%s: %q is not a glob relative to the workspace root (\"src/**\", \"docs/*.md\")", key, k, g)
			}
		}
	}
	return nil
}

// Approval is the [policy.approval] table. What the screen holds (rules
// with action = "hold") waits for a person too.
type Approval struct {
	// Tools are the MCP tools each call of which waits for a person, by
	// the name models see (SERVER__tool); "*" matches any run of
	// characters: ["github__create_*", "db__*"].
	Tools []string `toml:"tools"`
	// Timeout is how long a request waits before it is denied as
	// expired; default 24h.
	Timeout Duration `toml:"timeout"`
}

// Screen builds the policy's screen.
func (c *Config) Screen() (*screen.Screen, error) {
	s, err := screen.New(c.Policy.Screen)
	if err != nil {
		return nil, fmt.Errorf("policy.screen: %w", err)
	}
	return s, nil
}

// Audit is the [audit] table. Every event of every run is chained (see
// package audit); with a signing key, each run's head is signed with it,
// so that rewriting the journal shows even to someone who can recompute
// every hash.
type Audit struct {
	// SigningKey is an Ed25519 private key file in PKCS #8 PEM (hive audit
	// keygen makes one), not readable by others; relative to hive.toml's
	// directory.
	SigningKey string `toml:"signing_key"`
	// PublicKey is the key hive audit verify checks heads with; default
	// the public half of SigningKey. Relative to hive.toml's directory.
	PublicKey string `toml:"public_key"`
	// AnchorFile, when set, is a file every sealed head is appended to,
	// one JSON line each (see audit.AnchorFile), and that hive audit verify
	// checks each run's stored head against: a head put back from earlier
	// shows there even if the run's status was rewritten too. It is only
	// as good as where it is kept: out of reach of whoever can write the
	// database (another volume or machine, an append-only file). Relative
	// to hive.toml's directory.
	AnchorFile string `toml:"anchor_file"`
}

// Sandbox is the [sandbox] table: how each run of model code (run_code,
// tests, checks) is bounded. Zero fields take the sandbox's defaults.
type Sandbox struct {
	// Cgroups is "auto" (Hive makes its own cgroup when it may: as root,
	// or in a delegated subtree) or "off" (memory is sampled instead).
	Cgroups string `toml:"cgroups"`
	// MemoryCeiling bounds the memory limits of all runs at once ("8G");
	// default half of the machine's memory.
	MemoryCeiling ByteSize `toml:"memory_ceiling"`
	Wall          Duration `toml:"wall"`   // wall time of a run; default 10s
	CPU           Duration `toml:"cpu"`    // CPU time of a run; default 10s
	Memory        ByteSize `toml:"memory"` // memory of a run; default 1G
	Procs         int      `toml:"procs"`  // processes of a run; default 64
	// Warm is how many sandboxes are kept started ahead of the runs of
	// each kind; default 2, 0 for none.
	Warm *int `toml:"warm"`
}

// ByteSize is a number of bytes written as "512M", "1G", "64KiB" or a
// plain number.
type ByteSize int64

// UnmarshalText parses a size.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseBytes(string(text))
	*b = ByteSize(v)
	return err
}

// ParseBytes parses "512M", "1G", "64KiB" or a number of bytes.
func ParseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
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
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("bad size %q (want e.g. 512M or 1G)", s)
	}
	return int64(v * float64(mult)), nil
}

// Check is one [checks.NAME] table: a trusted command that verifies a
// worker's result. It runs in the sandbox (network off, read-only system
// directories, the report in /box/report.txt and on stdin) with an
// environment of its own, never Hive's.
type Check struct {
	Name    string   `toml:"-"`
	Command []string `toml:"command"`
	// Timeout bounds a run ("90s", "5m"); default 30s.
	Timeout Duration `toml:"timeout"`
	// Env names host environment variables passed to the command; no
	// others reach it.
	Env []string `toml:"env"`
	// OnHost runs the command on the host, outside the sandbox, as Hive's
	// user: for commands that need what the sandbox hides. Logged at every
	// run. Its environment is still only PATH, HOME, LANG and Env.
	OnHost bool `toml:"on_host"`
}

// Workspace is the [workspace] table: what of a run's workspace (hive run
// --workspace DIR) workers are shown. .git, the paths .gitignore ignores
// and secrets (.env, keys, credentials) are hidden by default.
type Workspace struct {
	// Hide lists globs of more paths to hide as secrets ("config/prod/**").
	Hide []string `toml:"hide"`
	// Show lists globs of ignored paths to show all the same; a secret is
	// shown only when named literally, and .git never. It also says what
	// the copy of the workspace that run_code and the checks run in
	// holds: what workers see, and so what .gitignore ignores only when
	// Show shows it (a build that needs generated or installed files
	// names them here).
	Show []string `toml:"show"`
	// Roots are the directories under which an MCP client's run_swarm
	// may name a workspace (relative to hive.toml's directory). A
	// client's arguments are chosen by its model, so none may by
	// default; hive mcp --workspace-root DIR adds more.
	Roots []string `toml:"roots"`
}

// Secrets is the [secrets] table.
type Secrets struct {
	Env []string `toml:"env"`
}

// Duration is a time.Duration written as a string ("90s").
type Duration struct{ time.Duration }

// MarshalText writes the duration as hive.toml takes it ("2h0m0s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like \"90s\" or \"5m\")", b)
	}
	d.Duration = v
	return nil
}

// Swarm is one [swarms.NAME] table. Zero fields take the defaults, but
// for budget_usd, whose 0 means no dollar budget.
type Swarm struct {
	Lead      string   `toml:"lead"`
	Tiers     []string `toml:"tiers"`
	BudgetUSD *float64 `toml:"budget_usd"`
	// BudgetTokens bounds a run's tokens (input and output of every
	// call), with or without a dollar budget; 0 takes the defaults'.
	BudgetTokens int64 `toml:"budget_tokens"`
	MaxWorkers   int   `toml:"max_workers"`
	MaxDepth     int   `toml:"max_depth"`
	// Workspace is the directory the swarm's workers read and propose
	// changes to; relative to hive.toml's directory. Empty: none.
	Workspace string `toml:"workspace"`
	// Urgency "batch" sends the workers' calls (on the tiers BatchTiers
	// names, indexes into Tiers; all when empty) through the providers'
	// batch APIs at batch prices.
	Urgency    string `toml:"urgency"`
	BatchTiers []int  `toml:"batch_tiers"`
}

// Serve configures hive serve.
type Serve struct {
	// Addr is where it listens; default 127.0.0.1:7070.
	Addr string `toml:"addr"`
	// TokenEnv names the environment variable holding the API token;
	// default HIVE_TOKEN. Without it, a token is generated at the first
	// start and kept in a file readable by its owner only.
	TokenEnv string `toml:"token_env"`
	// Tokens are more API tokens, by name ([serve.tokens.NAME]), for
	// clients that should see only their own runs and spend within their
	// own caps; the main token sees every run.
	Tokens map[string]*ServeToken `toml:"tokens"`
}

// tokenName is what a [serve.tokens.NAME] may be called.
var tokenName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ServeToken is one [serve.tokens.NAME] table.
type ServeToken struct {
	// Env names the environment variable holding the token (required:
	// tokens are secrets, never in the file).
	Env string `toml:"env"`
	// MaxBudgetUSD bounds each run's budget (a run without one gets it);
	// DailyBudgetUSD what all the token's runs admitted on one day (UTC)
	// may spend together, across every process sharing the journal.
	// Zero: no bound beyond the policy's.
	MaxBudgetUSD   float64 `toml:"max_budget_usd"`
	DailyBudgetUSD float64 `toml:"daily_budget_usd"`
	// Approve lets the token decide approvals of its runs.
	Approve bool `toml:"approve"`
}

// Defaults are the settings of a run unless a flag overrides them.
type Defaults struct {
	Lead      string   `toml:"lead"`
	Tiers     []string `toml:"tiers"`
	BudgetUSD float64  `toml:"budget_usd"`
	// BudgetTokens bounds a run's tokens; 0 for none. It is the budget
	// for unpriced (local) models, whose dollar budget must be 0.
	BudgetTokens int64  `toml:"budget_tokens"`
	MaxWorkers   int    `toml:"max_workers"`
	MaxDepth     int    `toml:"max_depth"`
	DB           string `toml:"db"`
	// Sandbox is "auto" (isolate, fail when isolation is unavailable) or
	// "none" (run model code unsandboxed: an explicit, logged opt-in).
	Sandbox string `toml:"sandbox"`
}

// Model is one [models.NAME] table.
type Model struct {
	// Name is the table's key; it is how commands refer to the model.
	Name     string `toml:"-"`
	Provider string `toml:"provider"`
	// ID is the provider's model id; it defaults to Name.
	ID        string `toml:"model"`
	BaseURL   string `toml:"base_url"`
	APIKeyEnv string `toml:"api_key_env"`
	// Tier orders models from cheap (0) to strong.
	Tier      int    `toml:"tier"`
	MaxTokens int    `toml:"max_tokens"`
	Price     *Price `toml:"price"`
	Limits    Limits `toml:"limits"`
	// Dialect is an OpenAI-compatible server's kind, for what cannot be
	// negotiated: "openai", "llama.cpp", "vllm" or "ollama"; empty asks
	// the server once.
	Dialect string `toml:"dialect"`
	// Batch says whether the model's server has its provider's batch API
	// (Anthropic Message Batches, OpenAI Batch); unset, Anthropic's
	// provider has, and of OpenAI-compatible servers only OpenAI's own
	// (api.openai.com) does. See [Model.HasBatchAPI].
	Batch *bool `toml:"batch"`
	// Hedge, when set, sends a second copy of a call that is slower than
	// most and takes the first answer (package hedge). Off by default:
	// every hedge is a call billed in full.
	Hedge *Hedge `toml:"hedge"`
}

// HasBatchAPI reports whether calls to m may go through its provider's
// batch API: its batch setting, or by default every Anthropic model and
// the OpenAI models served by OpenAI itself. Local and other
// OpenAI-compatible servers (llama.cpp, vLLM, Ollama, gateways) serve no
// /v1/batches.
func (m *Model) HasBatchAPI() bool {
	if m.Batch != nil {
		return *m.Batch
	}
	switch m.Provider {
	case ProviderAnthropic:
		return true
	case ProviderOpenAI:
		if m.Dialect != "" && m.Dialect != "openai" {
			return false
		}
		u, err := url.Parse(m.BaseURL)
		return m.BaseURL == "" || err == nil && strings.EqualFold(u.Hostname(), "api.openai.com")
	}
	return false
}

// Hedge is a model's [models.NAME.hedge] table.
type Hedge struct {
	// After is when a call is hedged: a quantile of the model's recent
	// latencies ("p95", "p99") or a duration ("2s").
	After string `toml:"after"`
	// To names the model that receives the hedge (another endpoint of the
	// same model, say); empty sends it to this one.
	To string `toml:"to"`
	// MinSamples is how many calls are timed before a quantile is trusted
	// (default 20); MaxShare caps the share of calls hedged (default 0.1).
	MinSamples int     `toml:"min_samples"`
	MaxShare   float64 `toml:"max_share"`
}

// Price overrides the built-in price table, in USD per million tokens.
type Price struct {
	Input      *float64 `toml:"input"`
	Output     *float64 `toml:"output"`
	CacheWrite *float64 `toml:"cache_write"`
	CacheRead  *float64 `toml:"cache_read"`
	// BatchDiscount is the percent off every rate for calls sent through
	// a batch API; unset, the built-in table's for the model (50 for
	// Anthropic's and OpenAI's), else none.
	BatchDiscount *int   `toml:"batch_discount"`
	Source        string `toml:"source"`
}

// Limits bound a model's admission (package limit). Zero means the default.
type Limits struct {
	Concurrency int `toml:"concurrency"`
	RPM         int `toml:"rpm"`
	TPM         int `toml:"tpm"`
	MaxAttempts int `toml:"max_attempts"`
}

// Default returns the configuration used when there is no hive.toml.
func Default() *Config {
	c := &Config{Models: map[string]*Model{}}
	c.fill()
	return c
}

// Find returns the path of the config file to read: explicit when given,
// else $HIVE_CONFIG, else ./hive.toml, else the user config dir's
// hive/hive.toml; "" when none exists (not an error: zero config).
func Find(explicit string, getenv func(string) string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("config file %s: %w", explicit, errors.Unwrap(err))
		}
		return explicit, nil
	}
	if p := getenv("HIVE_CONFIG"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("HIVE_CONFIG names %s, which cannot be read: %w", p, errors.Unwrap(err))
		}
		return p, nil
	}
	candidates := []string{"hive.toml"}
	if dir, err := os.UserConfigDir(); err == nil {
		candidates = append(candidates, filepath.Join(dir, "hive", "hive.toml"))
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", nil
}

// Load reads the config at path; an empty path gives [Default].
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Path = path
	for i, r := range c.Workspace.Roots {
		if r != "" && !filepath.IsAbs(r) {
			c.Workspace.Roots[i] = filepath.Join(filepath.Dir(path), r)
		}
	}
	for _, p := range []*string{&c.Audit.SigningKey, &c.Audit.PublicKey, &c.Audit.AnchorFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(path), *p)
		}
	}
	for _, sw := range c.Swarms {
		if sw != nil && sw.Workspace != "" && !filepath.IsAbs(sw.Workspace) {
			sw.Workspace = filepath.Join(filepath.Dir(path), sw.Workspace)
		}
	}
	return c, nil
}

var (
	keyError  = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]+)"\): (.*)$`)
	typeError = regexp.MustCompile(`TOML value has type (\w+); destination has type (\w+)|expected (\w+) but found (\S+)`)
)

// DecodeError says what is wrong with a TOML file in the user's words: the
// line, the key, and what the key takes, not the decoder's Go types.
func DecodeError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
	}
	m := keyError.FindStringSubmatch(err.Error())
	if m == nil {
		return errors.New(strings.TrimPrefix(err.Error(), "toml: "))
	}
	if t := typeError.FindStringSubmatch(m[3]); t != nil {
		want, got := t[2], t[1]
		if want == "" {
			want, got = t[3], t[4]
		}
		return fmt.Errorf("line %s: %s takes %s, not %s", m[1], m[2], tomlType(want), tomlType(got))
	}
	return fmt.Errorf("line %s: %s: %s", m[1], m[2], m[3])
}

// tomlType names a decoder's type as a TOML value.
func tomlType(t string) string {
	switch t {
	case "slice", "[]any":
		return "a list"
	case "table", "map", "struct", "map[string]any":
		return "a table"
	case "integer", "int", "int64", "float", "float64":
		return "a number"
	case "bool", "boolean":
		return "true or false"
	case "string":
		return "a string"
	}
	return t
}

// keyLine returns the line of data that defines key, as a table header or
// as a key = value line under one, or 0 when it cannot tell (a key inside
// an inline table, say). The decoder knows the positions but does not
// export them; this reads the few shapes hive.toml is written in.
func keyLine(data []byte, key toml.Key) int {
	want := strings.Join(key, ".")
	var table []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			h := strings.Trim(line, "[] \t")
			if j := strings.IndexByte(h, ']'); j >= 0 {
				h = h[:j]
			}
			table = splitKey(h)
			if strings.Join(table, ".") == want {
				return i + 1
			}
			continue
		}
		lhs, _, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Join(append(table[:len(table):len(table)], splitKey(lhs)...), ".") == want {
			return i + 1
		}
	}
	return 0
}

// splitKey splits a dotted TOML key into its parts, unquoted.
func splitKey(s string) []string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return parts
}

// Parse parses hive.toml text. Errors name the line, and unknown keys are
// errors (a misspelt key must not be silently ignored).
func Parse(data []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return nil, DecodeError(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
			if n := keyLine(data, k); n > 0 {
				keys[i] += fmt.Sprintf(" (line %d)", n)
			}
		}
		return nil, fmt.Errorf("unknown key %s (see the README for the keys hive.toml takes)", strings.Join(keys, ", "))
	}
	if c.Models == nil {
		c.Models = map[string]*Model{}
	}
	// budget_usd = 0 means no dollar budget (for unpriced local models);
	// only a budget left unsaid takes the default.
	c.budgetSet = md.IsDefined("defaults", "budget_usd")
	for name, m := range c.Models {
		// 0 reads as "never", but an unset share is 0 too and takes the
		// default: say so rather than hedge 10% of the calls.
		if m != nil && m.Hedge != nil && m.Hedge.MaxShare == 0 && md.IsDefined("models", name, "hedge", "max_share") {
			return nil, fmt.Errorf("models.%s.hedge.max_share is 0: to turn hedging off, remove the [models.%s.hedge] table; a share takes more than 0, up to 1 (default 0.1)", name, name)
		}
	}
	c.fill()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) fill() {
	for name, ch := range c.Checks {
		ch.Name = name
	}
	for name, s := range c.MCP {
		if s != nil {
			s.Name = name
		}
	}
	for name, m := range c.Models {
		m.Name = name
		if m.ID == "" {
			m.ID = name
		}
		if m.APIKeyEnv == "" && m.BaseURL == "" {
			m.APIKeyEnv = defaultKeyEnv(m.Provider)
		}
	}
	if c.Serve.Addr == "" {
		c.Serve.Addr = "127.0.0.1:7070"
	}
	if c.Serve.TokenEnv == "" {
		c.Serve.TokenEnv = "HIVE_TOKEN"
	}
	// Defaults the file leaves unset, within what the policy allows.
	d, p := &c.Defaults, &c.Policy
	if d.BudgetUSD == 0 && !c.budgetSet {
		d.BudgetUSD = 1
		if p.MaxBudgetUSD > 0 {
			d.BudgetUSD = min(1, p.MaxBudgetUSD)
		}
	}
	if d.MaxWorkers == 0 {
		d.MaxWorkers = 100
		if p.MaxWorkers > 0 {
			d.MaxWorkers = min(100, p.MaxWorkers)
		}
	}
	if d.MaxDepth == 0 {
		d.MaxDepth = 2
		if p.MaxDepth > 0 {
			d.MaxDepth = min(2, p.MaxDepth)
		}
	}
	if d.Sandbox == "" {
		d.Sandbox = "auto"
	}
}

func validateHedge(name string, h *Hedge, c *Config) error {
	if strings.TrimSpace(h.After) == "" {
		return fmt.Errorf("models.%s.hedge.after is missing: say when a call is hedged, as a quantile of the model's latencies (\"p95\") or a duration (\"2s\")", name)
	}
	if _, err := hedge.Parse(h.After); err != nil {
		return fmt.Errorf("models.%s.%v", name, err)
	}
	if h.To != "" {
		if _, ok := c.Models[h.To]; !ok {
			return fmt.Errorf("models.%s.hedge.to names %q, which is not a model of this file", name, h.To)
		}
	}
	if h.MinSamples < 0 {
		return fmt.Errorf("models.%s.hedge.min_samples is %d: give how many calls to time before a quantile is trusted (default 20)", name, h.MinSamples)
	}
	if h.MaxShare < 0 || h.MaxShare > 1 {
		return fmt.Errorf("models.%s.hedge.max_share is %g: give the share of calls that may be hedged, between 0 and 1 (default 0.1)", name, h.MaxShare)
	}
	return nil
}

func (c *Config) validate() error {
	if _, err := c.Screen(); err != nil {
		return err
	}
	if cl := c.Policy.Screen.Classifier; cl != nil && !strings.Contains(cl.Model, ":") {
		if _, ok := c.Models[cl.Model]; !ok {
			return fmt.Errorf("policy.screen.classifier.model is %q, which no [models.%s] configures", cl.Model, cl.Model)
		}
	}
	for _, pat := range c.Policy.Approval.Tools {
		if _, err := path.Match(pat, ""); err != nil || pat == "" {
			return fmt.Errorf("policy.approval.tools: %q is not a pattern (SERVER__tool, with * for any characters)", pat)
		}
	}
	if c.Policy.Approval.Timeout.Duration < 0 {
		return errors.New("policy.approval.timeout is negative")
	}
	p := c.Policy
	if p.MaxBudgetUSD < 0 || p.DailyBudgetUSD < 0 || p.MaxWorkers < 0 || p.MaxDepth < 0 || p.MaxWall.Duration < 0 {
		return errors.New("policy: max_budget_usd, daily_budget_usd, max_workers, max_depth and max_wall take a bound ≥ 0 (0: none)")
	}
	switch p.MCPNetwork {
	case "", mcp.RequireNone, mcp.RequireAllowlist:
	default:
		return fmt.Errorf(`policy.mcp_network is %q: write "none" (every MCP server runs with network = "none") or "allowlist" (every one with network = "none" or a list of destinations), or leave it out`, p.MCPNetwork)
	}
	if err := p.Workers.check("policy.workers", false); err != nil {
		return err
	}
	if err := p.Lead.check("policy.lead", true); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(p.Tiers)) {
		if err := p.Tiers[name].check("policy.tiers."+name, false); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Serve.Tokens)) {
		t := c.Serve.Tokens[name]
		key := "serve.tokens." + name
		switch {
		case t == nil || strings.TrimSpace(t.Env) == "":
			return fmt.Errorf("%s.env is missing: name the environment variable that holds the token (env = \"HIVE_TOKEN_%s\")", key, strings.ToUpper(name))
		case !tokenName.MatchString(name):
			return fmt.Errorf("%s: a token's name is letters, digits, '-' and '_' (it names the token's runs and appears in the audit)", key)
		case t.Env == c.Serve.TokenEnv:
			return fmt.Errorf("%s.env is %s, the main token's variable (serve.token_env): give each token its own", key, t.Env)
		case t.MaxBudgetUSD < 0 || t.DailyBudgetUSD < 0:
			return fmt.Errorf("%s: max_budget_usd and daily_budget_usd take a bound ≥ 0 (0: none)", key)
		case t.DailyBudgetUSD > 0 && t.MaxBudgetUSD > t.DailyBudgetUSD:
			return fmt.Errorf("%s.max_budget_usd (%g) is more than its daily_budget_usd (%g): no run of that budget could start", key, t.MaxBudgetUSD, t.DailyBudgetUSD)
		}
	}
	if p.DailyBudgetUSD > 0 && p.MaxBudgetUSD > p.DailyBudgetUSD {
		return fmt.Errorf("policy.max_budget_usd (%g) is more than policy.daily_budget_usd (%g): no run of that budget could start", p.MaxBudgetUSD, p.DailyBudgetUSD)
	}
	for _, name := range c.ModelNames() {
		m := c.Models[name]
		switch m.Provider {
		case ProviderAnthropic, ProviderOpenAI:
		case "":
			return fmt.Errorf("models.%s: provider is missing (anthropic or openai)", name)
		default:
			return fmt.Errorf("models.%s: unknown provider %q (anthropic or openai; openai also serves vLLM, Ollama, llama.cpp and other compatible servers)", name, m.Provider)
		}
		switch m.Dialect {
		case "", "openai", "llama.cpp", "vllm", "ollama":
		default:
			return fmt.Errorf("models.%s.dialect is %q: it takes openai, llama.cpp, vllm or ollama (or leave it out: Hive asks the server)", name, m.Dialect)
		}
		if m.Dialect != "" && m.Provider != ProviderOpenAI {
			return fmt.Errorf("models.%s.dialect is for provider openai (OpenAI-compatible servers)", name)
		}
		if strings.Contains(name, ":") {
			return fmt.Errorf("models.%s: a model name may not contain ':' (it is reserved for provider:model)", name)
		}
		if h := m.Hedge; h != nil {
			if err := validateHedge(name, h, c); err != nil {
				return err
			}
		}
		if m.Price != nil {
			for k, v := range map[string]*float64{"input": m.Price.Input, "output": m.Price.Output, "cache_write": m.Price.CacheWrite, "cache_read": m.Price.CacheRead} {
				if v != nil && *v < 0 {
					return fmt.Errorf("models.%s.price.%s is negative", name, k)
				}
			}
			if m.Price.Input == nil || m.Price.Output == nil {
				return fmt.Errorf("models.%s.price: input and output are both required (USD per million tokens)", name)
			}
		}
	}
	if err := ValidateChecks(c.Checks, "checks"); err != nil {
		return err
	}
	if err := ValidateMCP(c.MCP, c); err != nil {
		return err
	}
	for _, g := range append(append([]string(nil), c.Workspace.Hide...), c.Workspace.Show...) {
		if strings.TrimSpace(g) == "" {
			return fmt.Errorf("workspace: hide and show take globs (like \"config/prod/**\"), not an empty string")
		}
	}
	for _, r := range c.Workspace.Roots {
		switch {
		case strings.TrimSpace(r) == "":
			return errors.New("workspace.roots takes directories under which MCP clients may name a workspace (like \"/home/me/src\"), not an empty string")
		case filepath.Clean(r) == "/":
			return errors.New("workspace.roots holds \"/\", which would let a client's model name any directory of this machine: name the directories that hold your projects")
		}
	}
	for _, e := range c.Secrets.Env {
		if !validEnvName(e) {
			return fmt.Errorf("secrets.env takes variable names, not %q (the value stays in the environment, never in this file)", e)
		}
	}
	switch sb := c.Sandbox; {
	case sb.Memory != 0 && sb.Memory < 16<<20:
		return fmt.Errorf("sandbox.memory is %d bytes: give at least 16M (a size takes a unit: 512M, 1G)", sb.Memory)
	case sb.MemoryCeiling != 0 && sb.MemoryCeiling < max(sb.Memory, 16<<20):
		return fmt.Errorf("sandbox.memory_ceiling (%d MiB) is below one run's memory (%d MiB): no run could start", sb.MemoryCeiling>>20, max(sb.Memory, 16<<20)>>20)
	case sb.Cgroups != "" && sb.Cgroups != "auto" && sb.Cgroups != "off":
		return fmt.Errorf("sandbox.cgroups is %q: it takes \"auto\" or \"off\"", sb.Cgroups)
	case sb.Wall.Duration < 0 || sb.CPU.Duration < 0 || sb.Procs < 0:
		return fmt.Errorf("sandbox: wall, cpu and procs take positive values")
	case sb.Warm != nil && (*sb.Warm < 0 || *sb.Warm > 64):
		return fmt.Errorf("sandbox.warm is %d: it takes 0 (none kept started) to 64", *sb.Warm)
	}
	d := c.Defaults
	for name, sw := range c.Swarms {
		if sw != nil && (sw.BudgetUSD != nil && *sw.BudgetUSD < 0 || sw.BudgetTokens < 0) {
			return fmt.Errorf("swarms.%s: budget_usd and budget_tokens take 0 or more", name)
		}
		if sw == nil {
			continue
		}
		switch sw.Urgency {
		case "", "now", "batch":
		default:
			return fmt.Errorf("swarms.%s.urgency is %q: it takes \"now\" (the default) or \"batch\"", name, sw.Urgency)
		}
		if len(sw.BatchTiers) > 0 && sw.Urgency != "batch" {
			return fmt.Errorf("swarms.%s.batch_tiers is set but urgency is not \"batch\": set urgency = \"batch\" too", name)
		}
	}
	if d.BudgetTokens < 0 {
		return fmt.Errorf("defaults.budget_tokens is negative")
	}
	if d.BudgetUSD < 0 {
		return fmt.Errorf("defaults.budget_usd is negative")
	}
	if d.Sandbox != "auto" && d.Sandbox != "none" {
		return fmt.Errorf("defaults.sandbox is %q: it takes \"auto\" or \"none\"", d.Sandbox)
	}
	return nil
}

// ValidateChecks checks [checks.NAME] tables (of hive.toml or a task file,
// whose keys start with prefix).
func ValidateChecks(checks map[string]*Check, prefix string) error {
	for name, ch := range checks {
		if len(ch.Command) == 0 || strings.TrimSpace(ch.Command[0]) == "" {
			return fmt.Errorf("%s.%s: command is missing (an argv list, like [\"pytest\", \"-q\"])", prefix, name)
		}
		if ch.Timeout.Duration < 0 {
			return fmt.Errorf("%s.%s: timeout is negative", prefix, name)
		}
		for _, e := range ch.Env {
			if !validEnvName(e) {
				return fmt.Errorf("%s.%s: env takes variable names, not %q", prefix, name, e)
			}
		}
	}
	return nil
}

// ValidateMCP checks [mcp.NAME] tables (of hive.toml or a task file): each
// one as [mcp.ServerConfig.Validate] does, and, when cfg is not nil, the
// models its tiers name against cfg's.
func ValidateMCP(servers map[string]*mcp.ServerConfig, cfg *Config) error {
	names := make([]string, 0, len(servers))
	for n := range servers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		s := servers[name]
		if s == nil {
			return fmt.Errorf("mcp.%s: the table is empty: give command (a server Hive starts) or url, and allow", name)
		}
		s.Name = name
		if err := s.Validate(); err != nil {
			return err
		}
		for _, t := range s.Tiers {
			if cfg == nil {
				break
			}
			if _, ok := cfg.Models[t]; !ok && !strings.Contains(t, ":") {
				return fmt.Errorf("mcp.%s: tiers names %q, which is not a model of hive.toml ([models.NAME]) nor provider:model", name, t)
			}
		}
	}
	return nil
}

// SecretEnv returns the environment variables whose values must never be
// journaled, logged or sent to a model, besides the models' keys and the
// token: [secrets] env, and the variables the MCP servers of the file
// read (env, bearer_env, headers_env).
func (c *Config) SecretEnv() []string {
	names := append([]string(nil), c.Secrets.Env...)
	return append(names, MCPSecretEnv(c.MCP)...)
}

// MCPSecretEnv returns the variables that servers read from Hive's
// environment: their values are secrets.
func MCPSecretEnv(servers map[string]*mcp.ServerConfig) []string {
	var names []string
	for _, s := range servers {
		if s == nil {
			continue
		}
		names = append(names, s.Env...)
		if s.BearerEnv != "" {
			names = append(names, s.BearerEnv)
		}
		for _, v := range s.HeadersEnv {
			names = append(names, v)
		}
	}
	sort.Strings(names)
	return names
}

// ModelNames returns the configured model names, cheapest tier first.
func (c *Config) ModelNames() []string {
	names := make([]string, 0, len(c.Models))
	for n := range c.Models {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := c.Models[names[i]], c.Models[names[j]]
		if a.Tier != b.Tier {
			return a.Tier < b.Tier
		}
		return names[i] < names[j]
	})
	return names
}

// ErrUnknownModel is returned by [Config.Model] for a name that is neither
// configured nor provider:model.
var ErrUnknownModel = errors.New("unknown model")

// Model resolves a model name: a configured [models.NAME], or
// "anthropic:ID" / "openai:ID" from the standard environment variables.
func (c *Config) Model(name string, getenv func(string) string) (*Model, error) {
	if m, ok := c.Models[name]; ok {
		return m, nil
	}
	provider, id, ok := strings.Cut(name, ":")
	if ok && id != "" && (provider == ProviderAnthropic || provider == ProviderOpenAI) {
		m := &Model{Name: name, Provider: provider, ID: id, APIKeyEnv: defaultKeyEnv(provider)}
		m.BaseURL = getenv(strings.ToUpper(provider) + "_BASE_URL")
		return m, nil
	}
	known := c.ModelNames()
	hint := "use anthropic:MODEL or openai:MODEL, or add it to hive.toml"
	if len(known) > 0 {
		hint = "configured: " + strings.Join(known, ", ") + "; or use anthropic:MODEL or openai:MODEL"
	}
	return nil, fmt.Errorf("%w %q (%s)", ErrUnknownModel, name, hint)
}

func defaultKeyEnv(provider string) string {
	switch provider {
	case ProviderAnthropic:
		return "ANTHROPIC_API_KEY"
	case ProviderOpenAI:
		return "OPENAI_API_KEY"
	}
	return ""
}

// APIKey reads m's key from the environment. A model with a base URL and no
// api_key_env needs no key (local OpenAI-compatible servers).
func (m *Model) APIKey(getenv func(string) string) (string, error) {
	if m.APIKeyEnv == "" {
		return "", nil
	}
	key := getenv(m.APIKeyEnv)
	if key == "" {
		if m.BaseURL != "" && m.Provider == ProviderOpenAI && m.APIKeyEnv == "OPENAI_API_KEY" {
			return "", nil // a local OpenAI-compatible server usually takes no key
		}
		return "", fmt.Errorf("model %s needs an API key: %s is not set (export it, or set api_key_env in hive.toml)", m.Name, m.APIKeyEnv)
	}
	return key, nil
}

// formatUSD renders a float read from TOML as the decimal literal it was
// written as, for exact parsing by package price.
func formatUSD(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

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
