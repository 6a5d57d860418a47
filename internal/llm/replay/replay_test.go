package replay

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/suite"
)

var (
	loadOnce sync.Once
	code     *suite.Code
	math     *suite.Math
	loadErr  error
)

// loadData loads the recorded benchmark data (HIVE_DATA, or ../shared/data
// next to the module root), skipping the test when it is absent.
func loadData(tb testing.TB) (*suite.Code, *suite.Math) {
	tb.Helper()
	loc, err := suite.Locate("", os.Getenv)
	if err != nil || loc.Source == suite.SourceCache {
		tb.Skipf("benchmark data not found (set HIVE_DATA or provide ../shared/data next to the repository): %v", err)
	}
	loadOnce.Do(func() { code, math, loadErr = suite.LoadAll(loc.Dir) })
	if loadErr != nil {
		tb.Fatal(loadErr)
	}
	return code, math
}

func ask(text string) *llm.Request {
	return &llm.Request{System: "You are a careful assistant.", Messages: []llm.Message{llm.UserText(text)}}
}

func wrapCode(prompt string) string {
	return "Complete the following Python function. Reply with the whole program in one code block.\n\n```python\n" +
		prompt + "```\n\nDo not change the signature."
}

func wrapMath(question string) string {
	// Reflowed: whitespace and line breaks differ from the recorded text.
	return "Solve this grade-school math problem. End with \"#### <number>\".\n\nQuestion: \"" +
		strings.Join(strings.Fields(question), "\n ") + "\"\nAnswer:"
}

// TestMatchWrapped asks recorded questions (all HumanEval prompts of one
// model, a third of GSM8K's of another, a stride for the others: counting
// tokens is slow under -race), wrapped in other text and in a shuffled
// order, of every single-answer model, from several goroutines, and checks
// each answer is the one recorded for it.
func TestMatchWrapped(t *testing.T) {
	c, m := loadData(t)
	type qa struct{ request, want string }
	type set struct {
		model *Model
		qs    []qa
	}
	var sets []set
	for _, name := range c.Models() {
		if name == "codegen-16b" {
			continue
		}
		model, err := NewCode(c, name, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := set{model: model}
		for i, p := range c.Problems {
			if name != "gpt-4-1106-preview" && i%4 != 0 {
				continue
			}
			s.qs = append(s.qs, qa{wrapCode(p.Prompt), Fence(c.Answers(name)[p.ID][0])})
		}
		sets = append(sets, s)
	}
	for _, name := range m.Models() {
		model, err := NewMath(m, name, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := set{model: model}
		for i, p := range m.Problems {
			if !(name == "gpt3-6b" && i%3 == 0 || i%20 == 0) {
				continue
			}
			s.qs = append(s.qs, qa{wrapMath(p.Question), m.Answers(name)[p.ID][0]})
		}
		sets = append(sets, s)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var wg sync.WaitGroup
	for _, s := range sets {
		qs := slices.Clone(s.qs)
		r.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
		wg.Go(func() {
			bad := 0
			for _, q := range qs {
				resp, err := s.model.Generate(context.Background(), ask(q.request))
				if err != nil {
					t.Errorf("%s: %v", s.model.Name(), err)
					return
				}
				if resp.Text() != q.want && bad < 3 {
					bad++
					t.Errorf("%s answered %.80q for %.80q, want %.80q", s.model.Name(), resp.Text(), q.request, q.want)
				}
			}
		})
	}
	wg.Wait()
}

func TestSamples(t *testing.T) {
	c, _ := loadData(t)
	p := c.Problem("HumanEval/0")
	recorded := c.Answers("codegen-16b")[p.ID]
	sequence := func(seed uint64, calls int) []string {
		model, err := NewCode(c, "codegen-16b", Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for range calls {
			resp, err := model.Generate(context.Background(), ask(wrapCode(p.Prompt)))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, resp.Text())
		}
		return got
	}
	a := sequence(1, 101)
	// The first 100 calls give each recorded sample once, then it repeats.
	seen := map[string]int{}
	for _, s := range a[:100] {
		seen[s]++
	}
	want := map[string]int{}
	for _, s := range recorded {
		want[Fence(s)]++
	}
	if !mapsEqual(seen, want) {
		t.Fatalf("100 calls gave %d distinct answers; want the 100 recorded samples once each", len(seen))
	}
	if a[100] != a[0] {
		t.Fatal("call 101 does not start the order over")
	}
	if b := sequence(1, 20); !slices.Equal(a[:20], b) {
		t.Fatal("same seed, different sequence")
	}
	if b := sequence(2, 20); slices.Equal(a[:20], b) {
		t.Fatal("seeds 1 and 2 give the same sequence")
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestSamplesConcurrent serves one question's samples to 8 goroutines at
// once: no sample goes out twice before all went out once.
func TestSamplesConcurrent(t *testing.T) {
	c, _ := loadData(t)
	model, err := NewCode(c, "codegen-16b", Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	req := ask(wrapCode(c.Problem("HumanEval/42").Prompt))
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 / 8 {
				resp, err := model.Stream(context.Background(), req, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[resp.Text()]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// The same 96 answers, as a multiset, as 96 calls in a row.
	seq, err := NewCode(c, "codegen-16b", Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for range 96 {
		resp, err := seq.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		want[resp.Text()]++
	}
	if !mapsEqual(got, want) {
		t.Fatalf("96 concurrent calls gave %d distinct samples, sequential calls %d", len(got), len(want))
	}
}

// records builds records from question → answer texts, without ids.
func records(qa map[string][]string) []Record {
	var out []Record
	for q, as := range qa {
		r := Record{Question: q}
		for _, a := range as {
			r.Answers = append(r.Answers, Answer{Text: a, Output: a})
		}
		out = append(out, r)
	}
	return out
}

// small is a hand-made answer set: it needs no data.
var small = records(map[string][]string{
	"A farmer has 3 cows and buys 4 more. How many cows does he have?": {"He has 3 + 4 = 7 cows.\n#### 7"},
	"Tom reads 12 pages a day. How many pages does he read in a week?": {"12 * 7 = 84\n#### 84"},
	"How many pages does he read in a week?":                           {"It depends."},
	"x":                                                                {"too short to match"},
	"Is (a) < b?":                                                      {"angle"},
	"Is (a) ( b?":                                                      {"paren"},
	"":                                                                 nil,
})

// TestMatchByID: questions that differ only in whitespace (as in code sets
// where two tasks share a prompt but for its indentation) are told apart
// by the id the request names, or else by the exact text; a request that
// names one question's id and holds another's is refused.
func TestMatchByID(t *testing.T) {
	recs := []Record{
		{ID: "Set/1", Question: "def f(x):\n    \"\"\"Return x doubled.\"\"\"\n", Answers: []Answer{{Text: "one", Output: "one"}}},
		{ID: "Set/2", Question: "def f(x):\n  \"\"\"Return x doubled.\"\"\"\n", Answers: []Answer{{Text: "two", Output: "two"}}},
		{ID: "Set/10", Question: "def g(y):\n    return y\n", Answers: []Answer{{Text: "ten", Output: "ten"}}},
	}
	model := New("m", recs, Options{})
	ctx := context.Background()
	for _, tt := range []struct{ request, want string }{
		{"# Set/2\n" + recs[0].Question, "two"}, // the id decides over the exact text
		{"# Set/1\n" + recs[1].Question, "one"},
		{"Complete:\n" + recs[1].Question, "two"}, // no id: the exact text decides
		{"Complete:\n" + recs[0].Question, "one"},
		{"# Set/10\n" + recs[2].Question, "ten"}, // Set/1 is not a prefix of Set/10
	} {
		resp, err := model.Generate(ctx, ask(tt.request))
		if err != nil || resp.Text() != tt.want {
			t.Errorf("%q: got %v, %v; want %q", tt.request, resp, err, tt.want)
		}
	}
	for _, tt := range []struct{ request, want string }{
		{"def f(x): \"\"\"Return x doubled.\"\"\"", "cannot be told apart"},
		{"# Set/10\n" + recs[0].Question, "does not contain its recorded question"},
		{"# Set/1 and Set/2\n" + recs[0].Question, "names 2 different"},
	} {
		_, err := model.Generate(ctx, ask(tt.request))
		var e *llm.Error
		if !errors.As(err, &e) || e.Kind != llm.KindBadRequest || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want a bad request saying %q", tt.request, err, tt.want)
		}
	}
}

// TestBilledOutput: output tokens are counted on what the model produced,
// not on the prompt the recording put in front of it, and a cut at the
// output limit cuts the produced part.
func TestBilledOutput(t *testing.T) {
	prompt := "def add(a, b):\n    \"\"\"Return the sum of a and b, for any two numbers you like.\"\"\"\n"
	body := "    return a + b\n"
	recs := []Record{{ID: "S/0", Question: prompt, Answers: []Answer{{Text: Fence(prompt + body), Output: body}}}}
	model := New("m", recs, Options{})
	tok, err := newCounterShared()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := model.Generate(context.Background(), ask(prompt))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(tok.count(body)); resp.Usage.OutputTokens != want {
		t.Errorf("output tokens = %d, want %d (the body alone; the whole text is %d)", resp.Usage.OutputTokens, want, tok.count(resp.Text()))
	}
	if resp.Text() != Fence(prompt+body) {
		t.Errorf("text = %q, want the whole program", resp.Text())
	}
	req := ask(prompt)
	req.MaxTokens = 2
	resp, err = model.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopMaxTokens || resp.Usage.OutputTokens != 2 || !strings.HasPrefix(resp.Text(), "```python\n"+prompt) || len(resp.Text()) >= len(Fence(prompt+body)) {
		t.Errorf("cut at 2 tokens: %q, %+v, %s; want the prompt kept and the body cut", resp.Text(), resp.Usage, resp.StopReason)
	}
}

func TestMatchSmall(t *testing.T) {
	model := New("test-model", small, Options{})
	ctx := context.Background()
	tests := []struct {
		name, request, want string
	}{
		{"verbatim", "A farmer has 3 cows and buys 4 more. How many cows does he have?", "#### 7"},
		{"wrapped, reflowed, other case", "Q:\n  \"a FARMER has 3 cows and\nbuys 4 more.   how many cows does he have?\" Think.", "#### 7"},
		{"punctuation counts", "Is (a) < b?", "angle"},
		{"punctuation counts", "Is (a) ( b?", "paren"},
		{"contained question loses to the longest", "Tom reads 12 pages a day. How many pages does he read in a week?", "#### 84"},
		{"the contained question alone", "Please: how many pages does he read in a week?", "It depends."},
	}
	for _, tt := range tests {
		resp, err := model.Generate(ctx, ask(tt.request))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !strings.Contains(resp.Text(), tt.want) || resp.Model != "test-model" || resp.StopReason != llm.StopEnd {
			t.Errorf("%s: got %q (%s, %s), want %q", tt.name, resp.Text(), resp.Model, resp.StopReason, tt.want)
		}
	}
	// In a later message, with the question also in a tool result.
	req := &llm.Request{Messages: []llm.Message{
		llm.UserText("Hello."),
		llm.AssistantText("Hi! What is the task?"),
		{Role: llm.RoleUser, Parts: []llm.Part{llm.ToolResult{CallID: "1", Content: "Task: A farmer has 3 cows and buys 4 more. How many cows does he have?"}}},
	}}
	if resp, err := model.Generate(ctx, req); err != nil || !strings.Contains(resp.Text(), "#### 7") {
		t.Errorf("question in a tool result: %v %v", resp, err)
	}

	errorCases := []struct{ name, request, want string }{
		{"unknown", "What is the capital of France?", "no recorded answer"},
		{"partial question", "A farmer has 3 cows and buys 4 more.", "no recorded answer"},
		{"other punctuation", "A farmer has 3 cows, and buys 4 more. How many cows does he have?", "no recorded answer"},
		{"too short to match", "x", "no recorded answer"},
		{"two questions", "A farmer has 3 cows and buys 4 more. How many cows does he have? Tom reads 12 pages a day. How many pages does he read in a week?", "different recorded questions"},
	}
	for _, tt := range errorCases {
		_, err := model.Generate(ctx, ask(tt.request))
		var e *llm.Error
		if !errors.As(err, &e) || e.Kind != llm.KindBadRequest || !errors.Is(err, llm.ErrBadRequest) {
			t.Errorf("%s: err = %v, want a bad-request *llm.Error", tt.name, err)
			continue
		}
		if !strings.Contains(e.Error(), "test-model") || !strings.Contains(e.Error(), tt.want) {
			t.Errorf("%s: error %q should name the model and say %q", tt.name, e.Error(), tt.want)
		}
	}
}

func TestUsage(t *testing.T) {
	tok, err := newCounterShared()
	if err != nil {
		t.Fatal(err)
	}
	// cl100k_base: "hello world" is 2 tokens; 3 per message, 3 to prime.
	if got := tok.prompt(&llm.Request{Messages: []llm.Message{llm.UserText("hello world")}}); got != 8 {
		t.Fatalf("prompt tokens of one \"hello world\" message = %d, want 8", got)
	}
	if got := tok.prompt(&llm.Request{System: "hello world", Messages: []llm.Message{llm.UserText("hello world")}}); got != 13 {
		t.Fatalf("with a system prompt = %d, want 13", got)
	}
	c, _ := loadData(t)
	model, err := NewCode(c, "gpt-4-1106-preview", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var total llm.Usage
	stripped := 0
	for _, p := range c.Problems {
		req := ask(wrapCode(p.Prompt))
		r1, err := model.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := model.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if r1.Usage != r2.Usage {
			t.Fatalf("%s: usage not stable: %+v then %+v", p.ID, r1.Usage, r2.Usage)
		}
		// Billed output is the completion, without the prompt the
		// recording put before it (LLMDebugger's gpt-4 seeds are prompt +
		// completion).
		produced := c.Outputs("gpt-4-1106-preview")[p.ID][0]
		if !strings.Contains(r1.Text(), produced) {
			t.Fatalf("%s: billed output %.60q is not the completion after the prompt", p.ID, produced)
		}
		if len(produced) < len(r1.Text())-len(p.Prompt) {
			stripped++
		}
		in, out := len(wrapCode(p.Prompt)), len(produced)
		// English and Python run 3–5 bytes per cl100k token.
		if r1.Usage.InputTokens < int64(in/6) || r1.Usage.InputTokens > int64(in/2) || r1.Usage.OutputTokens < int64(out/6) || r1.Usage.OutputTokens > int64(out/2) {
			t.Errorf("%s: implausible usage %+v for %d prompt bytes, %d answer bytes", p.ID, r1.Usage, in, out)
		}
		total = total.Add(r1.Usage)
	}
	if stripped < 160 {
		t.Errorf("the prompt was stripped from %d of gpt-4's 164 answers; LLMDebugger records 163 as prompt + completion", stripped)
	}
	t.Logf("gpt-4-1106-preview on HumanEval, wrapped prompts: %d input, %d output tokens (%.0f / %.0f per problem)",
		total.InputTokens, total.OutputTokens, float64(total.InputTokens)/164, float64(total.OutputTokens)/164)
}

func TestStreamAndLimits(t *testing.T) {
	model := New("m", small, Options{})
	ctx := context.Background()
	req := ask("A farmer has 3 cows and buys 4 more. How many cows does he have?")
	want, err := model.Generate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var deltas []string
	got, err := model.Stream(ctx, req, func(d llm.Delta) { deltas = append(deltas, d.Text) })
	if err != nil {
		t.Fatal(err)
	}
	if len(deltas) < 2 || len(deltas) > streamDeltas || strings.Join(deltas, "") != want.Text() || got.Text() != want.Text() || got.Usage != want.Usage {
		t.Fatalf("stream deltas %q, response %q %+v; want %q %+v", deltas, got.Text(), got.Usage, want.Text(), want.Usage)
	}

	req.MaxTokens = 3
	cut, err := model.Generate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if cut.StopReason != llm.StopMaxTokens || cut.Usage.OutputTokens != 3 || !strings.HasPrefix(want.Text(), cut.Text()) || cut.Text() == want.Text() {
		t.Fatalf("MaxTokens 3: %q %s %+v", cut.Text(), cut.StopReason, cut.Usage)
	}
}

func TestLatencyAndCancel(t *testing.T) {
	model := New("m", small, Options{Latency: 40 * time.Millisecond})
	req := ask("Tom reads 12 pages a day. How many pages does he read in a week?")
	start := time.Now()
	if _, err := model.Stream(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("answered in %v with 40ms latency", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, err := model.Generate(ctx, req); llm.KindOf(err) != llm.KindCancelled {
		t.Fatalf("deadline during latency: %v", err)
	}
	if _, err := model.Generate(ctx, req); llm.KindOf(err) != llm.KindCancelled {
		t.Fatalf("ended context: %v", err)
	}
}

func TestSplit(t *testing.T) {
	for _, s := range []string{"", "a", "héllo wörld ✓✓✓", strings.Repeat("x", 101)} {
		parts := split(s, 4)
		if strings.Join(parts, "") != s || len(parts) > 4 {
			t.Errorf("split(%q) = %q", s, parts)
		}
	}
}

func TestUnknownModel(t *testing.T) {
	c, m := loadData(t)
	if _, err := NewCode(c, "gpt-7", Options{}); err == nil || !strings.Contains(err.Error(), "gpt-4-1106-preview") {
		t.Fatalf("unknown code model: %v", err)
	}
	if _, err := NewMath(m, "gpt-7", Options{}); err == nil {
		t.Fatal("unknown math model accepted")
	}
}

func benchRequest(b *testing.B) (*Model, *llm.Request) {
	c, _ := loadData(b)
	model, err := NewCode(c, "gpt-4-1106-preview", Options{})
	if err != nil {
		b.Fatal(err)
	}
	req := ask(wrapCode(c.Problem("HumanEval/10").Prompt))
	if _, err := model.Generate(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	return model, req
}

// BenchmarkGenerate is a replayed call with warm token caches.
func BenchmarkGenerate(b *testing.B) {
	model, req := benchRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := model.Generate(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenerateParallel is the same from GOMAXPROCS goroutines.
func BenchmarkGenerateParallel(b *testing.B) {
	model, req := benchRequest(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := model.Generate(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEncodeUncached is the baseline: tokenizing the same prompt and
// answer without the caches, which a call would cost otherwise.
func BenchmarkEncodeUncached(b *testing.B) {
	model, req := benchRequest(b)
	resp, _ := model.Generate(context.Background(), req)
	tok, _ := newCounterShared()
	b.ReportAllocs()
	for b.Loop() {
		_ = tok.enc.EncodeOrdinary(req.System)
		_ = tok.enc.EncodeOrdinary(req.Messages[0].Text())
		_ = tok.enc.EncodeOrdinary(resp.Text())
	}
}
