package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/mcp"
)

const sample = `
[defaults]
lead = "sonnet"
tiers = ["haiku", "sonnet"]
budget_usd = 2.5

[models.haiku]
provider = "anthropic"
model = "claude-haiku-4-5"
tier = 0
[models.haiku.limits]
concurrency = 20
rpm = 1000

[models.sonnet]
provider = "anthropic"
model = "claude-sonnet-4-5"
tier = 1

[models.local]
provider = "openai"
base_url = "http://127.0.0.1:8000/v1"
model = "qwen2.5-coder"
[models.local.price]
input = 0.1
output = 0.3
[models.local.hedge]
after = "p95"
to = "haiku"
max_share = 0.05
`

func TestParse(t *testing.T) {
	c, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if c.Defaults.Lead != "sonnet" || len(c.Defaults.Tiers) != 2 || c.Defaults.BudgetUSD != 2.5 {
		t.Fatalf("defaults: %+v", c.Defaults)
	}
	if c.Defaults.MaxDepth != 2 || c.Defaults.Sandbox != "auto" {
		t.Fatalf("defaults not filled: %+v", c.Defaults)
	}
	h := c.Models["haiku"]
	if h.Name != "haiku" || h.ID != "claude-haiku-4-5" || h.APIKeyEnv != "ANTHROPIC_API_KEY" || h.Limits.Concurrency != 20 {
		t.Fatalf("haiku: %+v", h)
	}
	l := c.Models["local"]
	if l.APIKeyEnv != "" || *l.Price.Input != 0.1 || formatUSD(*l.Price.Output) != "0.3" {
		t.Fatalf("local: %+v", l)
	}
	if l.Hedge == nil || l.Hedge.After != "p95" || l.Hedge.To != "haiku" || l.Hedge.MaxShare != 0.05 || h.Hedge != nil {
		t.Fatalf("hedges: local %+v, haiku %+v", l.Hedge, h.Hedge)
	}
	if got := strings.Join(c.ModelNames(), ","); got != "haiku,local,sonnet" {
		t.Fatalf("ModelNames = %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"[models.a]\nprovider = \"anthropic\"\nmodel = \n", "line 3"},
		{"[models.a]\nprovider = \"anthropic\"\nmodle = \"x\"\n", "unknown key models.a.modle (line 3)"},
		{"# a comment\n[defaults]\nbudget_usd = 1\n\n[models.\"a\"]\nprovider = \"anthropic\"\n  modle.x = 1\n", "unknown key models.a.modle.x (line 7)"},
		{"[defaults]\n[bogus]\nx = 1\n", "unknown key bogus (line 2)"},
		{"[models.a]\nprovider = \"anthropic\"\nprice = { input = 1, output = 2, inptu = 3 }\n", "unknown key models.a.price.inptu (see"},
		{"[models.a]\nprovider = \"cohere\"\n", `unknown provider "cohere"`},
		{"[models.a]\nmodel = \"x\"\n", "provider is missing"},
		{"[models.a]\nprovider = \"openai\"\n[models.a.price]\ninput = 1\n", "input and output are both required"},
		{"[defaults]\nsandbox = \"off\"\n", `"auto" or "none"`},
		{"[sandbox]\ncgroups = \"yes\"\n", `"auto" or "off"`},
		{"[sandbox]\nmemory = \"lots\"\n", `bad size "lots"`},
		{"[sandbox]\ncpu = \"10\"\n", `not a duration`},
		{"[checks.t]\ncommand = []\n", "checks.t: command is missing"},
		{"[checks.t]\ncommand = [\"pytest\"]\nenv = [\"A=1\"]\n", "env takes variable names"},
		{"[secrets]\nenv = 3\n", "line 2: secrets.env takes a list, not a number"},
		{"[models.a]\nprovider = \"openai\"\ndialect = \"lmstudio\"\n", `takes openai, llama.cpp, vllm or ollama`},
		{"[models.a]\nprovider = \"anthropic\"\ndialect = \"vllm\"\n", "dialect is for provider openai"},
		{"[models.a]\nprovider = \"openai\"\n[models.a.hedge]\nto = \"a\"\n", "hedge.after is missing"},
		{"[models.a]\nprovider = \"openai\"\n[models.a.hedge]\nafter = \"soon\"\n", "models.a.hedge after \"soon\""},
		{"[models.a]\nprovider = \"openai\"\n[models.a.hedge]\nafter = \"p95\"\nto = \"b\"\n", "hedge.to names \"b\""},
		{"[models.a]\nprovider = \"openai\"\n[models.a.hedge]\nafter = \"p95\"\nmax_share = 2\n", "hedge.max_share is 2: give the share"},
		{"[checks.pytest]\ncommand = \"pytest -q\"\n", "line 2: checks.pytest.command takes a list, not a string"},
		{"[checks]\npytest = [\"a\"]\n", "line 2: checks.pytest takes a table, not a list"},
		{"[secrets]\nenv = [\"DATABASE_URL=postgres://u:pw@h/db\"]\n", "secrets.env takes variable names"},
		{"[secrets]\nenv = [\"\"]\n", "secrets.env takes variable names"},
		{"[sandbox]\nmemory = 128\n", "give at least 16M"},
		{"[sandbox]\nmemory = \"1G\"\nmemory_ceiling = \"512M\"\n", "below one run's memory"},
		{"[mcp.fs]\ncommand = \"npx\"\n", "mcp.fs: allow is empty"},
		{"[mcp.fs]\ncommand = \"npx\"\nallow = [\"*\"]\nroles = [\"boss\"]\n", `mcp.fs: roles has "boss"`},
		{"[mcp.fs]\ncommand = \"npx\"\nallow = [\"*\"]\ntiers = [\"nope\"]\n", `mcp.fs: tiers names "nope"`},
		{"[mcp.fs]\ncommand = \"npx\"\nallow = [\"*\"]\nalow = 1\n", "unknown key mcp.fs.alow (line 4)"},
		{"[mcp.fs]\ncommand = \"npx\"\nallow = [\"*\"]\ntimeout = 30\n", "write it with a unit"},
		{"[mcp.a__b]\ncommand = \"npx\"\nallow = [\"*\"]\n", "mcp.a__b: a server's name"},
		{"[workspace]\nhide = [\"\"]\n", "workspace: hide and show take globs"},
		{"[workspace]\nhidden = [\"x\"]\n", "unknown key workspace.hidden"},
		{"[sandbox]\nwarm = -1\n", "sandbox.warm is -1: it takes 0"},
		{"[mcp.fs]\ncommand = \"npx\"\nallow = [\"*\"]\nnetwork = \"off\"\n", `mcp.fs.network is "off": write "host"`},
		{"[mcp.fs]\ncommand = \"npx\"\nallow = [\"*\"]\nnetwork = []\n", `mcp.fs.network is an empty list: write "none"`},
		{"[mcp.fs]\ncommand = \"npx\"\nallow = [\"*\"]\nnetwork = [\"github.com\"]\n", `mcp.fs.network has "github.com": it is not host:port`},
		{"[mcp.gh]\nurl = \"https://api.example.org/mcp\"\nallow = [\"*\"]\nnetwork = \"none\"\n", `mcp.gh.network is "none", but Hive itself reaches a server over HTTP`},
		{"[mcp.gh]\nurl = \"https://api.example.org/mcp\"\nallow = [\"*\"]\nnetwork = [\"example.org:443\"]\n", `mcp.gh.network does not list api.example.org:443`},
		{"[policy]\nmcp_network = \"strict\"\n", `policy.mcp_network is "strict": write "none"`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", tt.in, err, tt.want)
		}
	}
}

func TestSandboxChecksSecrets(t *testing.T) {
	c, err := Parse([]byte(`
[sandbox]
cgroups = "off"
memory_ceiling = "4G"
memory = "256MiB"
cpu = "5s"
wall = "1m"
procs = 32

[checks.pytest]
command = ["pytest", "-q"]
timeout = "90s"
env = ["PYTHONHASHSEED"]

[secrets]
env = ["DATABASE_URL"]
`))
	if err != nil {
		t.Fatal(err)
	}
	sb := c.Sandbox
	if sb.Cgroups != "off" || sb.MemoryCeiling != 4<<30 || sb.Memory != 256<<20 || sb.CPU.Seconds() != 5 || sb.Wall.Minutes() != 1 || sb.Procs != 32 {
		t.Errorf("sandbox: %+v", sb)
	}
	ch := c.Checks["pytest"]
	if ch == nil || ch.Name != "pytest" || strings.Join(ch.Command, " ") != "pytest -q" || ch.Timeout.Seconds() != 90 || ch.Env[0] != "PYTHONHASHSEED" || ch.OnHost {
		t.Errorf("checks: %+v", ch)
	}
	if c.Secrets.Env[0] != "DATABASE_URL" {
		t.Errorf("secrets: %+v", c.Secrets)
	}
}

// TestMCPWorkspace: [mcp.NAME] tables are named by their key and checked;
// the variables they read are secrets; a swarm's workspace is relative to
// the file.
func TestMCPWorkspace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hive.toml")
	os.WriteFile(path, []byte(`
[models.strong]
provider = "openai"

[mcp.github]
url = "https://api.githubcopilot.com/mcp/"
bearer_env = "GITHUB_TOKEN"
headers_env = {X-Search-Key = "SEARCH_KEY"}
allow = ["search_code"]
roles = ["worker", "lead"]
tiers = ["strong", "anthropic:claude-sonnet-4-5"]

[mcp.fs]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]
env = ["FS_ROOT_PASSWORD"]
allow = ["*"]
timeout = "20s"

[workspace]
hide = ["config/prod/**"]
show = ["vendor/**"]
roots = ["src", "/srv/repos"]

[swarms.fix]
workspace = "repo"
[swarms.abs]
workspace = "/srv/repo"

[secrets]
env = ["DATABASE_URL"]
`), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	gh, fs := c.MCP["github"], c.MCP["fs"]
	if gh.Name != "github" || fs.Name != "fs" || fs.Timeout.Seconds() != 20 || !gh.Offers("lead", "x") || gh.Offers("worker", "cheap") {
		t.Errorf("mcp: %+v %+v", gh, fs)
	}
	if got := strings.Join(c.SecretEnv(), " "); got != "DATABASE_URL FS_ROOT_PASSWORD GITHUB_TOKEN SEARCH_KEY" {
		t.Errorf("secret variables: %s", got)
	}
	if c.Workspace.Hide[0] != "config/prod/**" || c.Workspace.Show[0] != "vendor/**" {
		t.Errorf("workspace: %+v", c.Workspace)
	}
	if got := c.Workspace.Roots; len(got) != 2 || got[0] != filepath.Join(dir, "src") || got[1] != "/srv/repos" {
		t.Errorf("workspace roots: %q", got)
	}
	for _, bad := range []string{`roots = ["/"]`, `roots = [""]`} {
		if _, err := Parse([]byte("[workspace]\n" + bad + "\n")); err == nil || !strings.Contains(err.Error(), "workspace.roots") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if c.Swarms["fix"].Workspace != filepath.Join(dir, "repo") || c.Swarms["abs"].Workspace != "/srv/repo" {
		t.Errorf("swarm workspaces: %q %q", c.Swarms["fix"].Workspace, c.Swarms["abs"].Workspace)
	}
}

// TestMCPNetworkPolicy: network decodes from a string or a list, and
// policy.mcp_network lists every server whose network it refuses.
func TestMCPNetworkPolicy(t *testing.T) {
	const servers = `
[mcp.host]
command = "srv"
allow = ["*"]

[mcp.none]
command = "srv"
allow = ["*"]
network = "none"

[mcp.list]
command = "srv"
allow = ["*"]
network = ["api.github.com:443", "*.example.org:443"]

[mcp.web]
url = "https://mcp.example.org/mcp"
allow = ["*"]
network = ["mcp.example.org:443"]
`
	for _, tc := range []struct {
		policy string
		want   []string
	}{
		{"", nil},
		{`mcp_network = "allowlist"`, []string{
			`mcp.host.network is "host", and policy.mcp_network = "allowlist" requires network = "none" or a list of destinations (never "host")`,
		}},
		{`mcp_network = "none"`, []string{
			`mcp.host.network is "host", and policy.mcp_network = "none" requires network = "none"`,
			`mcp.list.network is ["api.github.com:443", "*.example.org:443"], and policy.mcp_network = "none" requires network = "none"`,
			`mcp.web.network is ["mcp.example.org:443"], and policy.mcp_network = "none" requires network = "none"`,
		}},
	} {
		c, err := Parse([]byte(servers + "\n[policy]\n" + tc.policy + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.MCP["list"].Network; got.Mode != mcp.NetworkAllow || len(got.Allow) != 2 || c.MCP["none"].Network.Mode != mcp.NetworkNone || c.MCP["host"].Network.Mode != mcp.NetworkHost {
			t.Fatalf("networks: %+v", c.MCP)
		}
		if got := c.PolicyConflicts(); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: conflicts\n%s\nwant\n%s", tc.policy, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

// TestBudgetZero: budget_usd = 0 means no dollar budget (for unpriced
// local models), in [defaults] and in a swarm; left out, the default is $1.
func TestBudgetZero(t *testing.T) {
	c, err := Parse([]byte("[defaults]\nbudget_usd = 0\nbudget_tokens = 50000\n[swarms.local]\nbudget_usd = 0\n[swarms.other]\nlead = \"x\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Defaults.BudgetUSD != 0 || c.Defaults.BudgetTokens != 50000 {
		t.Errorf("defaults: %+v", c.Defaults)
	}
	if b := c.Swarms["local"].BudgetUSD; b == nil || *b != 0 {
		t.Errorf("swarms.local.budget_usd: %v", b)
	}
	if c.Swarms["other"].BudgetUSD != nil {
		t.Errorf("swarms.other.budget_usd: %v, want unset", *c.Swarms["other"].BudgetUSD)
	}
	for bad, want := range map[string]string{
		"[models.m]\nprovider = \"openai\"\n[models.m.hedge]\nafter = \"p95\"\nmax_share = 0\n": "models.m.hedge.max_share is 0",
		"[swarms.x]\nurgency = \"later\"\n":                                                     `swarms.x.urgency is "later"`,
		"[swarms.x]\nbatch_tiers = [0]\n":                                                       "swarms.x.batch_tiers is set",
	} {
		if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", bad, err, want)
		}
	}
	if c, err := Parse([]byte("[swarms.night]\nurgency = \"batch\"\nbatch_tiers = [0]\n")); err != nil || c.Swarms["night"].Urgency != "batch" || c.Swarms["night"].BatchTiers[0] != 0 {
		t.Errorf("swarms.night: %v", err)
	}
	if c, _ := Parse([]byte("[defaults]\nlead = \"x\"\n")); c.Defaults.BudgetUSD != 1 {
		t.Errorf("unset budget: %v, want the default 1", c.Defaults.BudgetUSD)
	}
}

func TestModelResolution(t *testing.T) {
	c, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "ANTHROPIC_API_KEY": "sk-secret"}
	getenv := func(k string) string { return env[k] }

	m, err := c.Model("openai:gpt-4o-mini", getenv)
	if err != nil || m.Provider != "openai" || m.ID != "gpt-4o-mini" || m.BaseURL != "http://127.0.0.1:9/v1" {
		t.Fatalf("openai:gpt-4o-mini = %+v, %v", m, err)
	}
	if key, err := m.APIKey(getenv); err != nil || key != "" {
		t.Fatalf("local base URL needs no key: %q %v", key, err)
	}
	m, _ = c.Model("anthropic:claude-x", getenv)
	if key, _ := m.APIKey(getenv); key != "sk-secret" {
		t.Fatal("anthropic key not read from ANTHROPIC_API_KEY")
	}
	delete(env, "ANTHROPIC_API_KEY")
	_, err = m.APIKey(getenv)
	if err == nil || !strings.Contains(err.Error(), "ANTHROPIC_API_KEY is not set") {
		t.Fatalf("missing key error = %v", err)
	}
	_, err = c.Model("gpt5", getenv)
	if !errors.Is(err, ErrUnknownModel) || !strings.Contains(err.Error(), "configured: haiku, local, sonnet") {
		t.Fatalf("unknown model error = %v", err)
	}
}

func TestFindAndLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hive.toml")
	if err := os.WriteFile(p, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Find("", func(k string) string {
		if k == "HIVE_CONFIG" {
			return p
		}
		return ""
	})
	if err != nil || got != p {
		t.Fatalf("Find via HIVE_CONFIG = %q, %v", got, err)
	}
	if _, err := Find(filepath.Join(dir, "nope.toml"), nil); err == nil {
		t.Fatal("Find of a missing explicit file succeeded")
	}
	c, err := Load(p)
	if err != nil || c.Path != p {
		t.Fatalf("Load = %v, %v", c, err)
	}
	if err := os.WriteFile(p, []byte("[models.x]\nprovider = \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(p)
	if err == nil || !strings.Contains(err.Error(), p+": line 2") {
		t.Fatalf("Load of bad file = %v", err)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"512M": 512 << 20, "1G": 1 << 30, "64KiB": 64 << 10, "1000": 1000, "1.5g": 3 << 29} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1G", "x"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) succeeded", in)
		}
	}
}

// TestHasBatchAPI: Anthropic's models and OpenAI's own have a batch API;
// other OpenAI-compatible servers do not, unless their table says so.
func TestHasBatchAPI(t *testing.T) {
	yes, no := true, false
	for _, c := range []struct {
		m    Model
		want bool
	}{
		{Model{Provider: ProviderAnthropic}, true},
		{Model{Provider: ProviderAnthropic, Batch: &no}, false},
		{Model{Provider: ProviderOpenAI}, true},
		{Model{Provider: ProviderOpenAI, BaseURL: "https://API.openai.com/v1"}, true},
		{Model{Provider: ProviderOpenAI, BaseURL: "https://api.openai.com.example/v1"}, false},
		{Model{Provider: ProviderOpenAI, BaseURL: "http://127.0.0.1:8080/v1"}, false},
		{Model{Provider: ProviderOpenAI, BaseURL: "http://127.0.0.1:8080/v1", Batch: &yes}, true},
		{Model{Provider: ProviderOpenAI, Dialect: "ollama"}, false},
	} {
		if got := c.m.HasBatchAPI(); got != c.want {
			t.Errorf("%+v: %v, want %v", c.m, got, c.want)
		}
	}
}
