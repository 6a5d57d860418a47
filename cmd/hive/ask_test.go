package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/price"
)

// secretKey is a distinctive API key: no output of hive may contain it.
const secretKey = "sk-test-SECRET-1234"

// hiveIn runs hive in-process with the variables in vars as its
// environment.
func hiveIn(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }}
	code = Main(ctx, env, args)
	t.Logf("hive %s → %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// noUserConfig keeps the user config dir of the machine out of a
// zero-config test.
func noUserConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	t.Chdir(dir) // no ./hive.toml either
}

func assertNoSecret(t *testing.T, what string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, secretKey) {
			t.Errorf("%s shows the API key: %q", what, s)
		}
	}
}

var askUsage = llm.Usage{InputTokens: 1200, OutputTokens: 300}

func greeter(*llmtest.Call) llmtest.Reply {
	return llmtest.Reply{Text: "Hello there, friend.", Usage: &askUsage}
}

// TestAskZeroConfig: with no hive.toml, provider:MODEL names read the
// standard variables; the answer streams to stdout and the usage and cost
// go to stderr.
func TestAskZeroConfig(t *testing.T) {
	noUserConfig(t)
	for _, c := range []struct {
		provider string
		model    string
		serve    func(llmtest.Handler) *llmtest.Server
		base     string
	}{
		{"openai", "gpt-4o-mini", llmtest.NewOpenAI, "/v1"},
		{"anthropic", "claude-haiku-4-5", llmtest.NewAnthropic, ""},
	} {
		t.Run(c.provider, func(t *testing.T) {
			srv := c.serve(greeter)
			srv.APIKey = secretKey // the key must reach the server
			defer srv.Close()
			up := strings.ToUpper(c.provider)
			vars := map[string]string{up + "_BASE_URL": srv.URL + c.base, up + "_API_KEY": secretKey}
			name := c.provider + ":" + c.model
			code, out, errOut := hiveIn(t, vars, "ask", "-m", name, "Greet me.")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if out != "Hello there, friend.\n" {
				t.Fatalf("stdout %q", out)
			}
			p, ok := price.Lookup(c.model)
			if !ok {
				t.Fatalf("no price for %s", c.model)
			}
			want := fmt.Sprintf("%s · 1200 in, 300 out tokens · cost %s\n", name, p.Cost(askUsage))
			if errOut != want {
				t.Fatalf("stderr %q, want %q", errOut, want)
			}
			if srv.Requests() != 1 || srv.Calls()[0].Model != c.model || srv.Calls()[0].LastUserText() != "Greet me." {
				t.Fatalf("%d requests; the server saw %+v", srv.Requests(), srv.Calls())
			}
			assertNoSecret(t, "ask", out, errOut)
		})
	}
}

// askWorld is a hive.toml naming models on local servers, some broken on
// purpose.
type askWorld struct {
	vars map[string]string
	dir  string
}

func newAskWorld(t *testing.T) *askWorld {
	t.Helper()
	// The handler answers by model id.
	srv := llmtest.NewOpenAI(func(c *llmtest.Call) llmtest.Reply {
		switch c.Model {
		case "html":
			return llmtest.Reply{HTML: true}
		case "truncated":
			return llmtest.Reply{Text: "one two three four five six seven eight", TruncateAfter: 3}
		case "gpt-nope":
			return llmtest.Reply{Status: 400, ErrorMessage: "The model `gpt-nope` does not exist"}
		}
		return greeter(c)
	})
	srv.APIKey = secretKey
	t.Cleanup(srv.Close)
	strict := llmtest.NewOpenAI(greeter)
	strict.APIKey = "sk-the-right-key"
	t.Cleanup(strict.Close)
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/v1"
	ln.Close()

	var b strings.Builder
	for _, m := range []struct{ name, id, base, keyEnv string }{
		{"good", "gpt-4o-mini", srv.URL + "/v1", "HIVE_TEST_KEY"},
		{"local", "my-local-llm", srv.URL + "/v1", "HIVE_TEST_KEY"},
		{"nokey", "gpt-4o-mini", srv.URL + "/v1", "HIVE_MISSING_KEY"},
		{"dead", "gpt-4o-mini", dead, "HIVE_TEST_KEY"},
		{"html", "html", srv.URL + "/v1", "HIVE_TEST_KEY"},
		{"truncated", "truncated", srv.URL + "/v1", "HIVE_TEST_KEY"},
		{"wrongmodel", "gpt-nope", srv.URL + "/v1", "HIVE_TEST_KEY"},
		{"denied", "gpt-4o-mini", strict.URL + "/v1", "HIVE_TEST_KEY"},
	} {
		fmt.Fprintf(&b, "[models.%s]\nprovider = \"openai\"\nmodel = %q\nbase_url = %q\napi_key_env = %q\n[models.%s.limits]\nmax_attempts = 2\n\n",
			m.name, m.id, m.base, m.keyEnv, m.name)
	}
	w := &askWorld{dir: t.TempDir()}
	cfg := filepath.Join(w.dir, "hive.toml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	w.vars = map[string]string{"HIVE_CONFIG": cfg, "HIVE_TEST_KEY": secretKey, "HOME": w.dir}
	return w
}

// TestAskJSON: --json prints one object with the text, usage and cost, the
// cost null when the price is unknown.
func TestAskJSON(t *testing.T) {
	w := newAskWorld(t)
	p, _ := price.Lookup("gpt-4o-mini")
	for _, c := range []struct {
		model string
		cost  any
	}{
		{"good", p.Cost(askUsage).Dollars()},
		{"local", nil},
	} {
		code, out, errOut := hiveIn(t, w.vars, "ask", "--json", "-m", c.model, "Greet me.")
		if code != 0 || errOut != "" {
			t.Fatalf("%s: exit %d, stderr %q", c.model, code, errOut)
		}
		dec := json.NewDecoder(strings.NewReader(out))
		var got map[string]any
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%s: %v\n%s", c.model, err, out)
		}
		if dec.More() {
			t.Fatalf("%s: more than one JSON value:\n%s", c.model, out)
		}
		usage, _ := got["usage"].(map[string]any)
		if got["text"] != "Hello there, friend." || usage["input_tokens"] != 1200.0 || usage["output_tokens"] != 300.0 {
			t.Fatalf("%s: %v", c.model, got)
		}
		cost, present := got["cost_usd"]
		if !present || cost != c.cost {
			t.Fatalf("%s: cost_usd %v (present %v), want %v", c.model, cost, present, c.cost)
		}
		assertNoSecret(t, "ask --json", out, errOut)
	}
	// Without --json an unknown price says so and how to fix it.
	code, _, errOut := hiveIn(t, w.vars, "ask", "-m", "local", "Greet me.")
	if code != 0 || !strings.Contains(errOut, "cost unknown") || !strings.Contains(errOut, "[models.NAME.price]") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// TestAskErrors: each mistake a user can make ends with one line on stderr
// that says what to do, a non-zero exit, and no key.
func TestAskErrors(t *testing.T) {
	w := newAskWorld(t)
	bad := filepath.Join(w.dir, "bad.toml")
	os.WriteFile(bad, []byte("[models.x]\nprovider = \"openai\"\nmodel = \n"), 0o600)
	for _, c := range []struct {
		name  string
		args  []string
		want  []string
		calls bool // whether a model may be called
	}{
		{"unknown model", []string{"-m", "nosuch"}, []string{`unknown model "nosuch"`, "configured: "}, false},
		{"missing key", []string{"-m", "nokey"}, []string{"HIVE_MISSING_KEY is not set", "export it"}, false},
		{"malformed config", []string{"--config", bad, "-m", "x"}, []string{"bad.toml: line 3", "fix the file"}, false},
		{"unreachable", []string{"-m", "dead"}, []string{"call dead", "connection refused", "check the base URL"}, false},
		{"html", []string{"-m", "html"}, []string{"call html", "did not answer JSON", "text/html", "check the base URL"}, true},
		{"truncated stream", []string{"-m", "truncated"}, []string{"call truncated", "transient"}, true},
		{"unauthorized", []string{"-m", "denied"}, []string{"call denied", "401", "check the API key in HIVE_TEST_KEY"}, true},
		{"provider error", []string{"-m", "wrongmodel"}, []string{"HTTP 400", "The model `gpt-nope` does not exist", "check the model id"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := hiveIn(t, w.vars, append([]string{"ask"}, append(c.args, "Greet me.")...)...)
			if code == 0 {
				t.Fatalf("exit 0")
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") || !strings.HasPrefix(errOut, "hive: ") {
				t.Errorf("stderr is not one line: %q", errOut)
			}
			for _, bad := range []string{"goroutine", "panic"} {
				if strings.Contains(errOut, bad) {
					t.Errorf("stderr mentions %q: %q", bad, errOut)
				}
			}
			for _, want := range c.want {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q: %q", want, errOut)
				}
			}
			assertNoSecret(t, c.name, out, errOut)
		})
	}
}
