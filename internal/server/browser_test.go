package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/verify"
)

// xssReport is a worker's report that would run script if the page ever
// inserted model output as HTML.
const xssReport = `<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`

// xssPatch is a patch that adds markup.
const xssPatch = "diff --git a/page.html b/page.html\n--- a/page.html\n+++ b/page.html\n@@ -1 +1 @@\n-hello\n+<img src=x onerror=\"window.__pwned=3\">\n"

// browserOptions starts chromium headless, quiet, in userData, at a size
// that shows the whole page.
func browserOptions(chromium, userData string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.UserDataDir(userData),
		chromedp.WindowSize(1500, 1700),
	}
}

// chromiumPath finds Debian's chromium (scripts/test.sh installs it).
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const debian = "/usr/bin/chromium"
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	t.Fatalf("chromium is not installed: the browser test needs it (apt-get install chromium, or run scripts/test.sh); use -short to skip")
	return ""
}

func browserLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// browserConfig names "lead", "cheap" and "strong" on one local server.
func browserConfig(baseURL string) *config.Config {
	f := func(v float64) *float64 { return &v }
	c := config.Default()
	for name, p := range map[string][2]float64{"lead": {1, 2}, "cheap": {0.1, 0.2}, "strong": {1, 2}} {
		c.Models[name] = &config.Model{Name: name, Provider: "openai", ID: name, BaseURL: baseURL, Price: &config.Price{Input: f(p[0]), Output: f(p[1])}}
	}
	c.Defaults.Lead = "lead"
	c.Defaults.Tiers = []string{"cheap", "strong"}
	return c
}

func call(name string, args any) llmtest.Reply {
	b, _ := json.Marshal(args)
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: name, Input: string(b)}}}
}

// workerTask returns the task name in a worker's prompt.
func workerTask(c *llmtest.Call) string {
	for _, m := range c.Messages {
		if m.Role != llm.RoleUser {
			continue
		}
		s := m.Text()
		if i := strings.Index(s, "Task \""); i >= 0 {
			s = s[i+6:]
			if j := strings.Index(s, "\""); j >= 0 {
				return s[:j]
			}
		}
	}
	return ""
}

// browserModels scripts the swarm: the lead delegates 50 tasks; "add" has
// tests the cheap model's code fails and the strong model's passes;
// "xss" reports markup.
func browserModels(c *llmtest.Call) llmtest.Reply {
	if strings.Contains(c.System, "lead of Hive") {
		if len(c.ToolResults()) == 0 {
			type task struct {
				Name         string       `json:"name"`
				Instructions string       `json:"instructions"`
				Verify       *verify.Spec `json:"verify,omitempty"`
			}
			tasks := []task{
				{Name: "add", Instructions: "Write add(a, b) in Python.", Verify: &verify.Spec{Kind: "tests", Code: "assert add(2, 3) == 5\n"}},
				{Name: "xss", Instructions: "Report some markup."},
			}
			for i := len(tasks); i < 50; i++ {
				tasks = append(tasks, task{Name: fmt.Sprintf("count-%d", i), Instructions: fmt.Sprintf("Say %d.", i)})
			}
			return call("delegate", map[string]any{"tasks": tasks})
		}
		return call("finish", map[string]any{"answer": "All **50** tasks reported."})
	}
	name := workerTask(c)
	latency := time.Duration(100+len(name)*37%200) * time.Millisecond
	var r llmtest.Reply
	switch {
	case name == "count-7" && refusedOnce.CompareAndSwap(false, true):
		// The provider refuses one call: the timeline marks the retry.
		return llmtest.Reply{Status: 429, RetryAfter: "1"}
	case name == "add" && c.Model == "cheap":
		r = call("submit", map[string]any{"report": "done", "artifacts": map[string]string{"code": "def add(a, b):\n    return a - b\n"}})
	case name == "add":
		r = call("submit", map[string]any{"report": "```python\ndef add(a, b):\n    return a + b\n```"})
	case name == "xss":
		r = call("submit", map[string]any{"report": xssReport, "artifacts": map[string]string{"patch": xssPatch}})
	default:
		r = call("submit", map[string]any{"report": "The answer is `" + name + "`."})
	}
	r.Latency = latency
	if n, err := strconv.Atoi(strings.TrimPrefix(name, "count-")); err == nil && n%2 == 0 {
		// Half the workers read most of their prompt from a cache.
		r.Usage = &llm.Usage{InputTokens: 100, CacheReadTokens: 300, OutputTokens: 10}
	}
	return r
}

// refusedOnce is set once the provider has refused count-7's first call.
var refusedOnce atomic.Bool

// TestBrowser drives the page in headless Chromium through a whole run:
// start it from the form, watch the tree fill in live, open the escalated
// node's verdict and code, and check that a report full of markup is shown
// as text and runs nothing.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test starts Chromium; skipped in -short mode")
	}
	chromium := chromiumPath(t)
	log := browserLogger(t)
	refusedOnce.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	models := llmtest.NewOpenAI(browserModels)
	defer models.Close()
	cfg := browserConfig(models.URL + "/v1")
	store, err := journal.Open(ctx, filepath.Join(t.TempDir(), "hive.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sb, err := sandbox.New(ctx, sandbox.Config{}, log)
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	t.Cleanup(func() { sb.Close() })
	reg := provider.NewRegistry(cfg, func(string) string { return "" }, log)
	engine, err := swarm.New(ctx, store, reg, log, swarm.Options{Verifier: verify.New(sb, log), CodeRunner: swarm.SandboxRunner{Sandbox: sb}})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close(context.Background())
	const token = "browser-test-token"
	ts := httptest.NewServer(New(engine, store, cfg, log, token).Handler())
	defer ts.Close()

	actx, acancel := chromedp.NewExecAllocator(ctx, browserOptions(chromium, t.TempDir())...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer bcancel()

	var mu sync.Mutex
	var exceptions []string
	err = chromedp.Listen(bctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			mu.Lock()
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			exceptions = append(exceptions, fmt.Sprintf("%s (line %d)", msg, d.LineNumber))
			mu.Unlock()
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value))
			}
			t.Logf("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	// eval polls a JS expression until it is true.
	waitJS := func(what, expr string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			ok, err := chromedp.Run(bctx, chromedp.Evaluate[bool](expr))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				dump, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 3000)`))
				t.Fatalf("timed out waiting for %s; the page shows:\n%s", what, dump)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Sign in with the printed link and start a run from the form.
	start := time.Now()
	if err := chromedp.Do(bctx,
		chromedp.Navigate(ts.URL+"/?token="+token),
		chromedp.WaitVisible(chromedp.CSS(`#start-form textarea[name=task]`)),
		chromedp.SetValue(chromedp.CSS(`#start-form textarea[name=task]`), "Count to fifty and write add."),
		chromedp.SetValue(chromedp.CSS(`#start-form input[name=lead]`), "lead"),
		chromedp.SetValue(chromedp.CSS(`#start-form input[name=tiers]`), "cheap, strong"),
		chromedp.SetValue(chromedp.CSS(`#start-form input[name=budget]`), "5"),
		chromedp.Click(chromedp.CSS(`#start-form button[type=submit]`)),
	); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, "token=") {
		t.Errorf("the token stayed in the address bar: %s", loc)
	}
	waitJS("the run view", `location.hash.startsWith("#/runs/")`, 10*time.Second)
	waitJS("the first workers", `document.querySelectorAll("#tree .row[data-id]").length > 3`, 20*time.Second)
	early, _ := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#tree .row.st-done").length`))
	t.Logf("first workers shown after %v (%d done so far)", time.Since(start).Round(time.Millisecond), early)
	waitJS("every node done", `document.querySelectorAll("#tree .row.st-done").length >= 51 &&
		document.querySelector(".run-line .status").textContent === "done"`, 45*time.Second)
	t.Logf("run done in the page after %v", time.Since(start).Round(time.Millisecond))

	if got := text(`#tree .row.st-escalated`); !strings.Contains(got, "add") {
		t.Errorf("escalated row = %q, want the add task", got)
	}
	if got := text(`#tree .row.esc`); !strings.Contains(got, "escalation 1") || !strings.Contains(got, "pass") {
		t.Errorf("escalation row = %q, want its step and a pass verdict", got)
	}

	// The escalated node: its failing verdict and the wrong code.
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#tree .row.st-escalated`))); err != nil {
		t.Fatal(err)
	}
	waitJS("the escalated node's panel", `!!document.querySelector("#panel .evidence")`, 10*time.Second)
	if ev := text(`#panel .evidence`); !strings.Contains(ev, "assert add(2, 3) == 5") {
		t.Errorf("evidence = %q, want the failing assert", ev)
	}
	if v := text(`#panel .verdict`); v != "fail" {
		t.Errorf("verdict badge = %q, want fail", v)
	}
	waitJS("the code in the panel", `[...document.querySelectorAll("#panel pre.code")].some(p => p.textContent.includes("return a - b"))`, 5*time.Second)
	highlighted, _ := chromedp.Run(bctx, chromedp.Evaluate[bool](`!!document.querySelector("#panel pre.code .tok-kw")`))
	if !highlighted {
		t.Error("the code is not highlighted")
	}

	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	saveArtifact(t, "browser.png", png)

	// The node whose report is markup: shown as text, nothing runs.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => { [...document.querySelectorAll("#tree .row[data-id]")].find(r => r.textContent.includes("xss")).click(); return true })()`)); err != nil {
		t.Fatal(err)
	}
	waitJS("the xss node's report", `(document.querySelector("#panel section.report .md")||{}).textContent === `+jsString(xssReport), 10*time.Second)
	pwned, err := chromedp.Run(bctx, chromedp.Evaluate[string](`typeof window.__pwned + ":" + document.querySelectorAll("#panel script, #panel img, #main script, #main img").length`))
	if err != nil {
		t.Fatal(err)
	}
	if pwned != "undefined:0" {
		t.Errorf("the report's markup became elements: __pwned type and element count = %s", pwned)
	}
	// Its patch is shown as a diff, its lines coloured, its markup text.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => { [...document.querySelectorAll("#panel .artifacts button")].find(b => b.textContent === "patch").click(); return true })()`)); err != nil {
		t.Fatal(err)
	}
	waitJS("the patch as a diff", `[...document.querySelectorAll("#panel pre.diff .diff-add")].some(s => s.textContent.includes("<img src=x"))`, 10*time.Second)
	if got := text(`#panel pre.diff .diff-del`); got != "-hello\n" {
		t.Errorf("the removed line = %q", got)
	}
	if n, _ := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#panel img").length`)); n != 0 {
		t.Errorf("the patch's markup became %d elements", n)
	}
	// The lead's answer is markdown: rendered as elements, not as text.
	if got := text(`.answer strong`); got != "50" {
		t.Errorf("answer markdown: strong = %q", got)
	}

	// The timeline: a row for every node, each bar inside the axis; the
	// worker the provider refused once is marked with its retry and the
	// second it waited; prompts read from a cache are shaded.
	runID, err := chromedp.Run(bctx, chromedp.Evaluate[string](`decodeURIComponent(location.hash.split("/")[2])`))
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := store.Nodes(ctx, runID)
	if err != nil || len(nodes) < 52 {
		t.Fatalf("run %s: %d nodes, %v", runID, len(nodes), err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => { document.querySelector(".tabs .tab[data-view=timeline]").click(); return true })()`)); err != nil {
		t.Fatal(err)
	}
	waitJS("the timeline", fmt.Sprintf(`document.querySelectorAll("#timeline .tl-row").length === %d`, len(nodes)), 10*time.Second)
	if hidden, _ := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.querySelector("#tree").offsetParent === null`)); !hidden {
		t.Error("the tree is still shown beside the timeline")
	}
	bad, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(() => {
		const out = [];
		for (const r of document.querySelectorAll("#timeline .tl-row")) {
			const t = r.querySelector(".tl-track").getBoundingClientRect(), b = r.querySelector(".tl-bar").getBoundingClientRect();
			if (b.width < 1 || b.left < t.left - 1 || b.right > t.right + 1) out.push(r.dataset.id + ": bar " + b.left + "-" + b.right + " track " + t.left + "-" + t.right);
		}
		return out.join("; ");
	})()`))
	if err != nil || bad != "" {
		t.Errorf("bars outside their track: %s %v", bad, err)
	}
	row := `[...document.querySelectorAll("#timeline .tl-row")].find(r => r.querySelector(".tl-name").textContent.endsWith(" count-7"))`
	got, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(() => { const r = `+row+`; return r.querySelector(".tl-mark.retry").textContent + " " + r.querySelector(".tl-wait").getBoundingClientRect().width + " " + r.title })()`))
	if err != nil || !strings.HasPrefix(got, "↻1 ") || strings.HasPrefix(got, "↻1 0 ") || !strings.Contains(got, "for rate limits") {
		t.Errorf("count-7's row = %q (%v), want a retry mark, a wait segment and the wait in its title", got, err)
	}
	shaded, err := chromedp.Run(bctx, chromedp.Evaluate[string](`[...document.querySelectorAll("#timeline .tl-row")].filter(r => !r.querySelector(".tl-cache").hidden).map(r => r.querySelector(".tl-cache").style.opacity).join(",")`))
	if err != nil || strings.Count(shaded, "0.75") < 20 {
		t.Errorf("cache shading on rows = %q (%v), want 25 rows at 0.75 (300 of 400 prompt tokens read)", shaded, err)
	}
	if got := text(`#timeline .tl-row.st-escalated .tl-mark.up`); got != "↑" {
		t.Errorf("escalated row's mark = %q", got)
	}
	// The legend says what every colour, hatching and mark means.
	if got := text(`.tl-legend`); !strings.Contains(got, "waiting on rate limits") || !strings.Contains(got, "⇉hedged calls") || !strings.Contains(got, "▤calls by batch") {
		t.Errorf("timeline legend = %q", got)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => { `+row+`.click(); return true })()`)); err != nil {
		t.Fatal(err)
	}
	waitJS("count-7's panel", `[...document.querySelectorAll("#panel dd")].some(d => /^waited [1-9][0-9.]*s · 1 retries$/.test(d.textContent))`, 10*time.Second)
	png, err = chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	saveArtifact(t, "timeline.png", png)

	// The address keeps the view and the node: a reload, or the link sent
	// to someone, opens the timeline with count-7's panel.
	hash, err := chromedp.Run(bctx, chromedp.Evaluate[string](`location.hash`))
	if err != nil || !strings.HasSuffix(hash, "?view=timeline") || !strings.Contains(hash, "/nodes/") {
		t.Errorf("address after picking a node on the timeline = %q (%v)", hash, err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS("the timeline after a reload", fmt.Sprintf(`document.querySelectorAll("#timeline .tl-row").length === %d && document.querySelector("#tree").offsetParent === null && document.querySelector(".tab[data-view=timeline]").classList.contains("on")`, len(nodes)), 10*time.Second)
	waitJS("count-7's panel after a reload", `[...document.querySelectorAll("#panel dd")].some(d => /^waited [1-9][0-9.]*s · 1 retries$/.test(d.textContent))`, 10*time.Second)

	mu.Lock()
	defer mu.Unlock()
	if len(exceptions) > 0 {
		t.Errorf("the page threw: %v", exceptions)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// saveArtifact writes a test artifact to a temp dir, and to $HIVE_ARTIFACTS
// when set (CI keeps that directory).
func saveArtifact(t *testing.T, name string, data []byte) {
	t.Helper()
	dirs := []string{t.TempDir()}
	if d := os.Getenv("HIVE_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Errorf("artifacts dir: %v", err)
		} else {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Errorf("save %s: %v", name, err)
			continue
		}
		t.Logf("saved %s", p)
	}
}
