package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/secret"
	"github.com/hive-swarm/hive/internal/verify"
)

// recordingVerifier passes everything and keeps the specs it was given.
type recordingVerifier struct {
	mu    sync.Mutex
	specs []verify.Spec
}

func (v *recordingVerifier) Verify(_ context.Context, spec verify.Spec, _ verify.Submission, _ verify.Caller) verify.Verdict {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.specs = append(v.specs, spec)
	return verify.Verdict{Outcome: verify.Pass, Verifier: spec.Kind}
}

// TestTaskRefusals: each task spec a model must not give is refused with a
// tool error that says what to do instead; no worker starts, and the lead
// goes on to finish.
func TestTaskRefusals(t *testing.T) {
	deep := strings.Repeat(`{"items":`, 70) + `{}` + strings.Repeat(`}`, 70)
	tests := []struct {
		name   string
		verify string
		schema string
		want   string
	}{
		{"command", `{"kind": "command", "command": ["sh", "-c", "id"]}`, "", "may not give a command to run; name one with"},
		{"command without checks", `{"kind": "command", "command": ["id"]}`, "", "no configured checks"},
		{"unknown check", `{"kind": "command", "check": "rm"}`, "", `no check "rm"`},
		{"unknown kind", `{"kind": "shell", "code": "id"}`, "", `unknown verify kind "shell"`},
		{"too many samples", `{"kind": "vote", "n": 33}`, "", "n is 33"},
		{"model outside the run", `{"kind": "judge", "rubric": "r", "model": "openai:gpt-4o"}`, "", `model "openai:gpt-4o" is not one this run may use`},
		{"too many models", `{"kind": "vote", "models": ["cheap","cheap","cheap","cheap","cheap","cheap","cheap","cheap","cheap"]}`, "", "names 9 models"},
		{"deep schema", `{"kind": "schema", "schema": ` + deep + `}`, "", "nests 71 levels"},
		{"huge schema", `{"kind": "schema", "schema": {"description": "` + strings.Repeat("x", 70<<10) + `"}}`, "", "at most 65536"},
		{"bad output schema", "", `"not a schema"`, "output_schema: a JSON Schema is an object"},
		{"tests without code", `{"kind": "tests"}`, "", "needs code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var refusal string
			workers := 0
			h := func(c *llmtest.Call) llmtest.Reply {
				mu.Lock()
				defer mu.Unlock()
				if !isLead(c) {
					workers++
					return submit("hi")
				}
				if len(c.ToolResults()) == 0 {
					task := `{"name": "t", "instructions": "Say hi."`
					if tt.verify != "" {
						task += `, "verify": ` + tt.verify
					}
					if tt.schema != "" {
						task += `, "output_schema": ` + tt.schema
					}
					return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "delegate", Input: `{"tasks": [` + task + `}]}`}}}
				}
				refusal = c.ToolResults()[0].Content
				return finish("gave up")
			}
			hs := newHarness(t, h, Options{Verifier: &recordingVerifier{}})
			spec := Spec{Task: "hostile", BudgetUSD: 1e9}
			if tt.name != "command without checks" {
				spec.Checks = map[string]verify.CommandCheck{"pytest": {Name: "pytest", Argv: []string{"pytest", "-q"}}}
			}
			res := hs.run(spec)
			if res.Status != StatusDone || res.Answer != "gave up" {
				t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
			}
			if !strings.Contains(refusal, tt.want) || !strings.Contains(refusal, "no task was started") {
				t.Errorf("refusal %q, want it to contain %q", refusal, tt.want)
			}
			if tt.name == "command" && !strings.Contains(refusal, "configured: pytest") {
				t.Errorf("the refusal does not name the configured check: %q", refusal)
			}
			if workers != 0 {
				t.Errorf("%d worker calls for a refused task", workers)
			}
		})
	}
}

// TestCheckResolved: a verify spec that names a configured check reaches
// the verifier with the configured command, whatever else the model put
// in it; the lead's prompt lists the checks.
func TestCheckResolved(t *testing.T) {
	var leadPrompt string
	var mu sync.Mutex
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return submit("hi")
		}
		if len(c.ToolResults()) == 0 {
			mu.Lock()
			leadPrompt = c.LastUserText()
			mu.Unlock()
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "delegate",
				Input: `{"tasks": [{"name": "t", "instructions": "Say hi.", "verify": {"kind": "command", "check": "pytest", "on_host": true, "argv": ["id"]}}]}`}}}
		}
		return finish("done")
	}
	rv := &recordingVerifier{}
	hs := newHarness(t, h, Options{Verifier: rv})
	res := hs.run(Spec{Task: "checked", BudgetUSD: 1e9, Checks: map[string]verify.CommandCheck{"pytest": {Name: "pytest", Argv: []string{"pytest", "-q"}}}})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	if len(rv.specs) != 1 {
		t.Fatalf("verifier calls: %d", len(rv.specs))
	}
	got := rv.specs[0].Trusted
	if got == nil || got.Name != "pytest" || strings.Join(got.Argv, " ") != "pytest -q" || got.OnHost {
		t.Errorf("the verifier got %+v", got)
	}
	if !strings.Contains(leadPrompt, "check: NAME}: pytest.") {
		t.Errorf("the lead is not told the checks: %q", leadPrompt)
	}
}

// TestOverbilling: a server that reports ten million output tokens for a
// call capped at 2,048 is billed at the call's reservation; the node and
// the event stream carry the anomaly, and the run stays within budget.
func TestOverbilling(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			r := submit("hi")
			r.Usage = &llm.Usage{InputTokens: 50, OutputTokens: 10_000_000}
			return r
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "t")})}}
		}
		return finish("done")
	}
	hs := newHarness(t, h, Options{})
	budget := 50_000_000 // $0.05 in nanodollars
	res := hs.run(Spec{Task: "overbilled", BudgetUSD: 50_000_000})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	worker := hs.worker(res.RunID)
	if len(worker.Anomalies) != 1 || !strings.Contains(worker.Anomalies[0], "10000000 output tokens") || !strings.Contains(worker.Anomalies[0], "billed at the reservation") {
		t.Fatalf("anomalies: %q", worker.Anomalies)
	}
	// The reservation: the request's bytes as tokens plus the 2,048-token
	// cap, at $0.10/$0.20 per million; far below what was claimed ($2).
	if worker.Cost <= 0 || worker.Cost > 1_000_000 {
		t.Errorf("the worker cost %d nanodollars", worker.Cost)
	}
	if worker.Usage.OutputTokens > 2048 {
		t.Errorf("usage recorded as %d output tokens", worker.Usage.OutputTokens)
	}
	if res.Cost > price.Amount(budget) {
		t.Errorf("the run cost %v of $0.05", res.Cost)
	}
	events, err := hs.store.Events(context.Background(), res.RunID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, raw := range events {
		var ev Event
		if json.Unmarshal(raw.Data, &ev) == nil && ev.Type == EventAnomaly {
			found = true
		}
	}
	if !found {
		t.Error("no anomaly event")
	}
}

// TestUsagePartsBounded: a server whose input parts each lie while their
// sum stays plausible (-5e11 uncached, 5e11+100 read from the cache). Each
// part is held to the request's bounds, directly and in a batch: the node
// and the run record no negative and no absurd count, and the anomaly
// names the figures the server gave.
func TestUsagePartsBounded(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			srv := llmtest.NewAnthropic(func(c *llmtest.Call) llmtest.Reply {
				if !isLead(c) {
					r := submit("ok")
					r.Usage = &llm.Usage{InputTokens: -500_000_000_000, CacheReadTokens: 500_000_000_100, OutputTokens: 10}
					return r
				}
				if len(c.ToolResults()) == 0 {
					return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "t")})}}
				}
				return finish("done")
			})
			hs := newHarnessOn(t, srv, batchOpts, anthropicModels(srv))
			spec := Spec{Task: "x", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar}
			if batch {
				spec.Urgency = UrgencyBatch
			}
			res := hs.run(spec)
			if res.Status != StatusDone {
				t.Fatalf("run %s: %s", res.Status, res.Error)
			}
			for _, n := range hs.nodes(res.RunID) {
				if n.Role != RoleWorker {
					continue
				}
				if !plausible(n.Usage) || n.CacheSaved < 0 {
					t.Errorf("worker usage %+v, cache saved %d", n.Usage, n.CacheSaved)
				}
				if len(n.Anomalies) != 1 || !strings.Contains(n.Anomalies[0], "-500000000000") || !strings.Contains(n.Anomalies[0], "500000000100") {
					t.Errorf("anomalies %q: want one that names the figures reported", n.Anomalies)
				}
			}
			if !plausible(res.Usage) {
				t.Errorf("run usage %+v", res.Usage)
			}
		})
	}
}

// plausible reports whether every part of u is between 0 and a million
// tokens, far above any request of these tests.
func plausible(u llm.Usage) bool {
	for _, n := range []int64{u.InputTokens, u.CacheWriteTokens, u.CacheReadTokens, u.CacheWrite1hTokens, u.OutputTokens} {
		if n < 0 || n > 1_000_000 {
			return false
		}
	}
	return true
}

// TestRedactedEverywhere: a secret the process knows, echoed by a worker
// and printed by its code, reaches neither the journal nor the lead's
// requests.
func TestRedactedEverywhere(t *testing.T) {
	const key = "sk-live-0123456789abcdef"
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return submit(fmt.Sprintf("the key is %s, and %q", key, key))
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(2, "t")})}}
		}
		return finish("the worker said " + key)
	}
	hs := newHarness(t, h, Options{Redact: secret.New(map[string]string{"OPENAI_API_KEY": key})})
	res := hs.run(Spec{Task: "leak", BudgetUSD: 1e9})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	if strings.Contains(res.Answer, key) || !strings.Contains(res.Answer, "[redacted OPENAI_API_KEY]") {
		t.Errorf("answer %q", res.Answer)
	}
	for _, c := range hs.srv.Calls() {
		if strings.Contains(string(c.Body), key) {
			t.Errorf("request %d carries the key", c.N)
		}
	}
	for _, n := range hs.nodes(res.RunID) {
		b, _ := json.Marshal(n)
		if strings.Contains(string(b), key) {
			t.Errorf("node %s carries the key", n.ID)
		}
	}
}
