package server

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/swarm"
)

// bigTasks is how many tasks the lead of TestBrowserTwoThousandNodes
// delegates.
const bigTasks = 2000

// pagePerf is what the page measured of itself while the run streamed in.
type pagePerf struct {
	LongTasks   int     `json:"longTasks"`
	LongestTask float64 `json:"longestTask"` // ms
	MaxGap      float64 `json:"maxGap"`      // ms between animation frames
	Frames      int     `json:"frames"`
	DoneMS      float64 `json:"doneMs"` // run view opened → every node done
	Rows        int     `json:"rows"`
	Counts      string  `json:"counts"`
	Status      string  `json:"status"`
}

// TestBrowserTwoThousandNodes follows a run of 2,000 workers live in the
// page and measures how the page copes: the time until the last node shows
// done, long tasks and animation-frame gaps while events stream, the rows
// the windowed tree keeps in the DOM, and a click's time to its panel.
func TestBrowserTwoThousandNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test starts Chromium; skipped in -short mode")
	}
	chromium := chromiumPath(t)
	log := browserLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// The lead waits at the gate until the page shows the run, then
	// delegates; workers answer within 0–50 ms.
	gate := make(chan struct{})
	var openGate sync.Once
	defer openGate.Do(func() { close(gate) })
	var leadCalls atomic.Int64
	models := llmtest.NewOpenAI(func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			h := fnv.New32a()
			h.Write([]byte(workerTask(c)))
			return llmtest.Reply{
				Latency:   time.Duration(h.Sum32()%51) * time.Millisecond,
				ToolCalls: []llmtest.ToolCall{toolCall("submit", map[string]any{"report": "ok " + workerTask(c)})},
			}
		}
		if leadCalls.Add(1) == 1 {
			select {
			case <-gate:
			case <-ctx.Done():
			}
			tasks := make([]map[string]string, bigTasks)
			for i := range tasks {
				tasks[i] = map[string]string{"name": fmt.Sprintf("t-%d", i), "instructions": fmt.Sprintf("Say %d.", i)}
			}
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", map[string]any{"tasks": tasks})}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", map[string]any{"answer": "all done"})}}
	})
	defer models.Close()
	cfg := browserConfig(models.URL + "/v1")
	store, err := journal.Open(ctx, filepath.Join(t.TempDir(), "hive.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := provider.NewRegistry(cfg, func(string) string { return "" }, log)
	engine, err := swarm.New(ctx, store, reg, log, swarm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close(context.Background())
	const token = "browser-big-token"
	ts := httptest.NewServer(New(engine, store, cfg, log, token).Handler())
	defer ts.Close()

	runID := bigRequest(t, "POST", ts.URL+"/v1/runs", token,
		`{"task": "Say two thousand numbers.", "budget_usd": 0, "max_workers": 200, "max_depth": 1}`).ID
	if runID == "" {
		t.Fatal("the run has no id")
	}

	actx, acancel := chromedp.NewExecAllocator(ctx, browserOptions(chromium, t.TempDir())...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer bcancel()

	var mu sync.Mutex
	var exceptions []string
	if err := chromedp.Listen(bctx, func(ev any) {
		if ev, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			mu.Lock()
			exceptions = append(exceptions, fmt.Sprintf("%s (line %d)", msg, d.LineNumber))
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	eval := func(what, expr string, out any) {
		t.Helper()
		raw, err := chromedp.Run(bctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: %v in %s", what, err, raw)
		}
	}

	// Sign in, then install the page's own probes and open the run view.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(ts.URL+"/?token="+token),
		chromedp.WaitVisible(chromedp.CSS(`#start-form textarea[name=task]`)),
	); err != nil {
		t.Fatal(err)
	}
	var ok bool
	eval("install the probes", `(() => {
		const p = window.__perf = {longTasks: 0, longestTask: 0, maxGap: 0, frames: 0, doneMs: 0, running: true};
		try {
			new PerformanceObserver((l) => {
				for (const e of l.getEntries()) { p.longTasks++; p.longestTask = Math.max(p.longestTask, e.duration); }
			}).observe({type: "longtask", buffered: false});
		} catch (_) {}
		let last = performance.now();
		const tick = (now) => {
			p.maxGap = Math.max(p.maxGap, now - last); last = now; p.frames++;
			if (p.running) requestAnimationFrame(tick);
		};
		requestAnimationFrame(tick);
		p.t0 = performance.now();
		location.hash = "#/runs/" + encodeURIComponent(`+jsString(runID)+`);
		return true;
	})()`, &ok)

	// The page's own counter says every node is done: the lead and its
	// 2,000 workers.
	wantCounts := fmt.Sprintf("%d nodes · 0 active · %d done", bigTasks+1, bigTasks+1)
	eval("the run view", `new Promise((resolve) => {
		const t = () => document.querySelector(".run-line .counts") ? resolve(true) : setTimeout(t, 10);
		t();
	})`, &ok)
	openGate.Do(func() { close(gate) })
	eval("the probe for done", `(() => {
		const p = window.__perf, want = `+jsString(wantCounts)+`;
		const t = () => {
			const c = document.querySelector(".run-line .counts"), s = document.querySelector(".run-line .status");
			if (c && c.textContent === want && s && s.textContent === "done") { p.doneMs = performance.now() - p.t0; p.running = false; return; }
			setTimeout(t, 20);
		};
		t();
		return true;
	})()`, &ok)

	deadline := time.Now().Add(90 * time.Second)
	var perf pagePerf
	for {
		eval("the page's figures", `(() => {
			const p = window.__perf;
			return {longTasks: p.longTasks, longestTask: p.longestTask, maxGap: p.maxGap, frames: p.frames, doneMs: p.doneMs,
				rows: document.querySelectorAll("#tree .row").length,
				counts: (document.querySelector(".run-line .counts") || {}).textContent || "",
				status: (document.querySelector(".run-line .status") || {}).textContent || ""};
		})()`, &perf)
		if perf.DoneMS > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed every node done: counts %q, status %q, want %q", perf.Counts, perf.Status, wantCounts)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The server agrees with the page.
	if _, err := engine.Wait(ctx, runID); err != nil {
		t.Fatal(err)
	}
	got := bigRequest(t, "GET", ts.URL+"/v1/runs/"+runID, token, "")
	if got.Run.Status != swarm.StatusDone {
		t.Errorf("run status = %s, want done", got.Run.Status)
	}
	workersDone := 0
	for _, n := range got.Nodes {
		if n.Role == swarm.RoleWorker && n.Status == swarm.StatusDone {
			workersDone++
		}
	}
	if workersDone != bigTasks {
		t.Errorf("the journal has %d workers done, want %d", workersDone, bigTasks)
	}

	// Unfold the finished workers, then time a click on one to its panel.
	var clickMS float64
	eval("click to panel", `new Promise((resolve, reject) => {
		const wait = (cond, then, until) => {
			if (cond()) return then();
			if (performance.now() > until) return reject(new Error("timed out; panel: " + document.querySelector("#panel").textContent.slice(0, 200)));
			requestAnimationFrame(() => wait(cond, then, until));
		};
		const toggle = document.querySelector('#tree .row.toggle[data-toggle="lead"]');
		if (!toggle) return reject(new Error("no fold toggle under the lead"));
		toggle.click();
		const row = () => [...document.querySelectorAll("#tree .row[data-id]")].find((r) => r.dataset.id !== "lead");
		wait(row, () => {
			const r = row(), id = r.dataset.id, t0 = performance.now();
			r.click();
			const h3 = () => { const h = document.querySelector("#panel .node-title h3"); return h && h.textContent.startsWith(id + " · "); };
			wait(h3, () => resolve(performance.now() - t0), t0 + 15000);
		}, performance.now() + 5000);
	})`, &clickMS)
	var rowsOpen int
	eval("rows unfolded", `document.querySelectorAll("#tree .row").length`, &rowsOpen)

	t.Logf("%d nodes: done in the page %.0f ms after opening the run view; %d long tasks, longest %.0f ms; max frame gap %.0f ms over %d frames; %d DOM rows folded, %d unfolded; click to panel %.0f ms (race %v)",
		bigTasks+1, perf.DoneMS, perf.LongTasks, perf.LongestTask, perf.MaxGap, perf.Frames, perf.Rows, rowsOpen, clickMS, raceEnabled)

	if perf.Rows >= 600 || rowsOpen >= 600 {
		t.Errorf("the tree keeps %d rows folded, %d unfolded in the DOM, want fewer than 600: is it still windowed?", perf.Rows, rowsOpen)
	}
	// Bounds a loaded 2-core machine keeps but a page that renders every
	// event synchronously, or the whole tree, would not.
	if perf.LongestTask > 5000 || perf.MaxGap > 5000 {
		t.Errorf("the page froze while events streamed: longest task %.0f ms, max frame gap %.0f ms", perf.LongestTask, perf.MaxGap)
	}
	if clickMS > 5000 {
		t.Errorf("a click took %.0f ms to show its panel", clickMS)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(exceptions) > 0 {
		t.Errorf("the page threw: %v", exceptions)
	}
}

// bigRequest calls the API and decodes its answer.
func bigRequest(t *testing.T, method, url, token, body string) (out struct {
	runJSON
	ID string `json:"id"`
}) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: status %d, err %v", method, url, resp.StatusCode, err)
	}
	return out
}
