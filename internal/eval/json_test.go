package eval

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestWriteJSON(t *testing.T) {
	r := renderSmallReport()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\n  \"suite\"") {
		t.Errorf("output is not indented:\n%s", b.String())
	}

	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("decode: %v\n%s", err, b.String())
	}
	if got["suite"] != "humaneval" || got["problems"] != 164.0 {
		t.Errorf("suite, problems = %v, %v", got["suite"], got["problems"])
	}
	list, ok := got["strategies"].([]any)
	if !ok || len(list) != len(r.Strategies) {
		t.Fatalf("strategies = %#v", got["strategies"])
	}
	for i, item := range list {
		s, ok := item.(map[string]any)
		if !ok {
			t.Fatalf("strategy %d = %#v", i, item)
		}
		for _, key := range []string{"name", "accuracy", "cost_usd", "calls", "escalation_rate", "false_accepts", "false_rejects"} {
			if _, ok := s[key]; !ok {
				t.Errorf("strategy %d lacks %q: %v", i, key, s)
			}
		}
		if _, ok := s["calls"].(map[string]any); !ok {
			t.Errorf("strategy %d: calls = %#v, want an object", i, s["calls"])
		}
		if s["name"] != r.Strategies[i].Name {
			t.Errorf("strategy %d: name = %v", i, s["name"])
		}
	}

	cascade := list[2].(map[string]any)
	for key, want := range map[string]any{
		"name":            "cascade:tests",
		"accuracy":        141.0 / 164,
		"cost_usd":        1.216,
		"cost_ratio":      0.38,
		"escalation_rate": 31.0 / 164,
		"false_accepts":   3.0,
		"false_rejects":   2.0,
	} {
		if g := cascade[key]; g != want {
			if gf, ok := g.(float64); !ok || math.Abs(gf-want.(float64)) > 1e-12 {
				t.Errorf("cascade %s = %v, want %v", key, g, want)
			}
		}
	}
	calls := cascade["calls"].(map[string]any)
	if calls["gpt-3.5-turbo-0613"] != 164.0 || calls["gpt-4-1106-preview"] != 31.0 || len(calls) != 2 {
		t.Errorf("cascade calls = %v", calls)
	}
	if free := list[3].(map[string]any); free["cost_usd"] != 0.0 || len(free["calls"].(map[string]any)) != 0 {
		t.Errorf("free strategy: cost_usd %v, calls %v", free["cost_usd"], free["calls"])
	}

	// The report itself is left alone.
	if r.Strategies[2].CostUSD != 0 || r.Strategies[3].Calls != nil {
		t.Errorf("WriteJSON modified the report: %+v", r.Strategies)
	}

	// And it decodes back into the same types.
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Suite != r.Suite || back.Reference != r.Reference || len(back.Strategies) != 4 ||
		back.Strategies[2].Correct != 141 || back.Strategies[2].Escalations != 31 ||
		back.Strategies[2].CostUSD != 1.216 {
		t.Errorf("round trip: %+v", back)
	}
}

func TestWriteJSONNoReference(t *testing.T) {
	r := renderSmallReport()
	r.Reference = ""
	r.Strategies = append(r.Strategies, StrategyResult{Name: `a<b&c>`})
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "cost_ratio") || strings.Contains(b.String(), `"reference"`) {
		t.Errorf("ratio or reference without a reference:\n%s", b.String())
	}
	if !strings.Contains(b.String(), `"name": "a<b&c>"`) {
		t.Errorf("name not written plainly:\n%s", b.String())
	}

	var empty bytes.Buffer
	if err := (&Report{Suite: "s"}).WriteJSON(&empty); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(empty.String(), `"strategies": []`) {
		t.Errorf("empty report: %s", empty.String())
	}
}
