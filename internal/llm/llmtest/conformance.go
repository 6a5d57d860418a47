package llmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// Provider describes one wire protocol and its adapter for [TestModel].
type Provider struct {
	Name      string
	NewServer func(h Handler) *Server
	// NewModel returns the adapter under test talking to baseURL, which is
	// srv.URL (add "/v1" where the SDK needs it).
	NewModel func(baseURL, apiKey string) llm.Model
}

// TestModel runs the conformance suite against p: every adapter must turn
// the same scripted server behaviour into the same [llm.Response] or the
// same [llm.Kind] of [*llm.Error], and send each call exactly once (retries
// belong to package limit, not to the SDK).
func TestModel(t *testing.T, p Provider) {
	t.Run("Text", p.testText)
	t.Run("Stream", p.testStream)
	t.Run("ToolCall", p.testToolCall)
	t.Run("ParallelToolCalls", p.testParallelToolCalls)
	t.Run("ToolResults", p.testToolResults)
	t.Run("CacheUsage", p.testCacheUsage)
	t.Run("RequestFields", p.testRequestFields)
	t.Run("Errors", p.testErrors)
	t.Run("Auth", p.testAuth)
	t.Run("TruncatedStream", p.testTruncatedStream)
	t.Run("CancelStream", p.testCancelStream)
}

// testModelID is the model every suite request names.
const testModelID = "hive-conformance-model"

// start runs a server answering with h and the adapter pointed at it.
func (p Provider) start(t *testing.T, h Handler, serverKey, modelKey string) (*Server, llm.Model) {
	t.Helper()
	srv := p.NewServer(h)
	srv.APIKey = serverKey
	t.Cleanup(srv.Close)
	return srv, p.NewModel(srv.URL, modelKey)
}

// call runs req through m, streamed or not; for a stream it checks that
// the text deltas add up to the response text and returns them.
func call(t *testing.T, m llm.Model, stream bool, req *llm.Request) (*llm.Response, []llm.Delta, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !stream {
		resp, err := m.Generate(ctx, req)
		return resp, nil, err
	}
	var deltas []llm.Delta
	resp, err := m.Stream(ctx, req, func(d llm.Delta) { deltas = append(deltas, d) })
	if err == nil {
		var text strings.Builder
		for _, d := range deltas {
			text.WriteString(d.Text)
		}
		if got, want := text.String(), resp.Text(); got != want {
			t.Errorf("text deltas add up to %q, response text is %q", got, want)
		}
	}
	return resp, deltas, err
}

// modes runs f for Generate and for Stream.
func modes(t *testing.T, f func(t *testing.T, stream bool)) {
	t.Run("Generate", func(t *testing.T) { t.Parallel(); f(t, false) })
	t.Run("Stream", func(t *testing.T) { t.Parallel(); f(t, true) })
}

func userReq(text string) *llm.Request {
	return &llm.Request{Model: testModelID, Messages: []llm.Message{llm.UserText(text)}}
}

func checkOneRequest(t *testing.T, srv *Server) {
	t.Helper()
	if n := srv.Requests(); n != 1 {
		t.Errorf("server saw %d requests for one call, want exactly 1 (hidden retries?)", n)
	}
}

func (p Provider) testText(t *testing.T) {
	modes(t, func(t *testing.T, stream bool) {
		const text = "Hello from the scripted server."
		srv, m := p.start(t, Sequence(Reply{Text: text}), "", "")
		resp, _, err := call(t, m, stream, userReq("say hello"))
		if err != nil {
			t.Fatal(err)
		}
		checkOneRequest(t, srv)
		if resp.Text() != text {
			t.Errorf("text = %q, want %q", resp.Text(), text)
		}
		if resp.StopReason != llm.StopEnd {
			t.Errorf("stop reason = %q, want %q", resp.StopReason, llm.StopEnd)
		}
		if len(resp.ToolCalls()) != 0 {
			t.Errorf("unexpected tool calls %v", resp.ToolCalls())
		}
		if resp.Usage.InputTokens <= 0 || resp.Usage.OutputTokens <= 0 {
			t.Errorf("usage = %+v, want input and output counted", resp.Usage)
		}
		c := srv.Calls()[0]
		if c.Model != testModelID || c.LastUserText() != "say hello" || c.Stream != stream {
			t.Errorf("server saw model %q, user text %q, stream %v", c.Model, c.LastUserText(), c.Stream)
		}
	})
}

func (p Provider) testStream(t *testing.T) {
	const text = "one two three four five six seven"
	want := llm.Usage{InputTokens: 17, OutputTokens: 7}
	srv, m := p.start(t, Sequence(Reply{Text: text, Usage: &want}), "", "")
	resp, deltas, err := call(t, m, true, userReq("count"))
	if err != nil {
		t.Fatal(err)
	}
	checkOneRequest(t, srv)
	if resp.Text() != text {
		t.Errorf("text = %q, want %q", resp.Text(), text)
	}
	if len(deltas) < 2 {
		t.Errorf("got %d deltas, want the text in several", len(deltas))
	}
	if resp.Usage != want {
		t.Errorf("usage = %+v, want %+v", resp.Usage, want)
	}
}

var weatherTool = llm.Tool{
	Name:        "get_weather",
	Description: "Current weather in a city.",
	Schema:      json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`),
}

var timeTool = llm.Tool{
	Name:   "get_time",
	Schema: json.RawMessage(`{"type":"object","properties":{"zone":{"type":"string"}}}`),
}

// checkCalls compares tool calls, inputs as parsed JSON.
func checkCalls(t *testing.T, got []llm.ToolCall, want []ToolCall) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d tool calls %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Name != want[i].Name {
			t.Errorf("call %d = %s %s, want %s %s", i, got[i].ID, got[i].Name, want[i].ID, want[i].Name)
		}
		var g, w any
		if err := json.Unmarshal(got[i].Input, &g); err != nil {
			t.Errorf("call %d input %q: %v", i, got[i].Input, err)
			continue
		}
		json.Unmarshal([]byte(want[i].Input), &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("call %d input = %s, want %s", i, got[i].Input, want[i].Input)
		}
	}
}

// checkCallDeltas checks that streamed tool call pieces rebuild the calls.
func checkCallDeltas(t *testing.T, deltas []llm.Delta, want []ToolCall) {
	t.Helper()
	ids := make([]string, len(want))
	names := make([]string, len(want))
	inputs := make([]strings.Builder, len(want))
	for _, d := range deltas {
		tc := d.ToolCall
		if tc == nil {
			continue
		}
		if tc.Index < 0 || tc.Index >= len(want) {
			t.Fatalf("tool call delta index %d out of range", tc.Index)
		}
		if tc.ID != "" {
			ids[tc.Index] = tc.ID
		}
		if tc.Name != "" {
			names[tc.Index] = tc.Name
		}
		inputs[tc.Index].WriteString(tc.Input)
	}
	for i, w := range want {
		if ids[i] != w.ID || names[i] != w.Name || inputs[i].String() != w.Input {
			t.Errorf("deltas of call %d give %s %s %s, want %s %s %s", i, ids[i], names[i], inputs[i].String(), w.ID, w.Name, w.Input)
		}
	}
}

func (p Provider) testToolCall(t *testing.T) {
	modes(t, func(t *testing.T, stream bool) {
		calls := []ToolCall{{ID: "call_weather_1", Name: "get_weather", Input: `{"city": "Paris"}`}}
		srv, m := p.start(t, Sequence(Reply{ToolCalls: calls}), "", "")
		req := userReq("weather in Paris?")
		req.Tools = []llm.Tool{weatherTool, timeTool}
		resp, deltas, err := call(t, m, stream, req)
		if err != nil {
			t.Fatal(err)
		}
		checkOneRequest(t, srv)
		if resp.StopReason != llm.StopToolUse {
			t.Errorf("stop reason = %q, want %q", resp.StopReason, llm.StopToolUse)
		}
		checkCalls(t, resp.ToolCalls(), calls)
		if stream {
			checkCallDeltas(t, deltas, calls)
		}
		if got := srv.Calls()[0].Tools; !reflect.DeepEqual(got, []string{"get_weather", "get_time"}) {
			t.Errorf("server saw tools %v", got)
		}
	})
}

func (p Provider) testParallelToolCalls(t *testing.T) {
	modes(t, func(t *testing.T, stream bool) {
		calls := []ToolCall{
			{ID: "call_a", Name: "get_weather", Input: `{"city":"Oslo"}`},
			{ID: "call_b", Name: "get_time", Input: `{"zone":"Europe/Oslo"}`},
		}
		srv, m := p.start(t, Sequence(Reply{Text: "Checking both.", ToolCalls: calls}), "", "")
		req := userReq("weather and time in Oslo?")
		req.Tools = []llm.Tool{weatherTool, timeTool}
		resp, deltas, err := call(t, m, stream, req)
		if err != nil {
			t.Fatal(err)
		}
		checkOneRequest(t, srv)
		checkCalls(t, resp.ToolCalls(), calls)
		if stream {
			checkCallDeltas(t, deltas, calls)
		}
		if resp.Text() != "Checking both." {
			t.Errorf("text = %q", resp.Text())
		}
		if _, ok := resp.Parts[0].(llm.Text); !ok {
			t.Errorf("first part is %T, want the text before the calls", resp.Parts[0])
		}
	})
}

func (p Provider) testToolResults(t *testing.T) {
	srv, m := p.start(t, Sequence(Reply{Text: "Oslo: 3°C at 14:00."}), "", "")
	req := &llm.Request{
		Model: testModelID,
		Tools: []llm.Tool{weatherTool, timeTool},
		Messages: []llm.Message{
			llm.UserText("weather and time in Oslo?"),
			{Role: llm.RoleAssistant, Parts: []llm.Part{
				llm.ToolCall{ID: "call_a", Name: "get_weather", Input: json.RawMessage(`{"city":"Oslo"}`)},
				llm.ToolCall{ID: "call_b", Name: "get_time", Input: json.RawMessage(`{"zone":"Europe/Oslo"}`)},
			}},
			{Role: llm.RoleUser, Parts: []llm.Part{
				llm.ToolResult{CallID: "call_a", Content: "3°C, cloudy"},
				llm.ToolResult{CallID: "call_b", Content: "14:00"},
			}},
		},
	}
	resp, _, err := call(t, m, false, req)
	if err != nil {
		t.Fatal(err)
	}
	checkOneRequest(t, srv)
	if resp.Text() != "Oslo: 3°C at 14:00." {
		t.Errorf("text = %q", resp.Text())
	}
	c := srv.Calls()[0]
	want := []llm.ToolResult{{CallID: "call_a", Content: "3°C, cloudy"}, {CallID: "call_b", Content: "14:00"}}
	if got := c.ToolResults(); !reflect.DeepEqual(got, want) {
		t.Errorf("server saw tool results %+v, want %+v", got, want)
	}
	var sent []string
	for _, msg := range c.Messages {
		if msg.Role != llm.RoleAssistant {
			continue
		}
		for _, part := range msg.Parts {
			if tc, ok := part.(llm.ToolCall); ok {
				sent = append(sent, tc.ID+" "+tc.Name)
			}
		}
	}
	if !reflect.DeepEqual(sent, []string{"call_a get_weather", "call_b get_time"}) {
		t.Errorf("server saw assistant tool calls %v", sent)
	}
}

func (p Provider) testCacheUsage(t *testing.T) {
	modes(t, func(t *testing.T, stream bool) {
		want := llm.Usage{InputTokens: 120, OutputTokens: 34, CacheReadTokens: 2048, CacheWriteTokens: 512}
		srv, m := p.start(t, Sequence(Reply{Text: "cached", Usage: &want}), "", "")
		resp, _, err := call(t, m, stream, userReq("again"))
		if err != nil {
			t.Fatal(err)
		}
		checkOneRequest(t, srv)
		if resp.Usage != want {
			t.Errorf("usage = %+v, want %+v", resp.Usage, want)
		}
	})
}

func (p Provider) testRequestFields(t *testing.T) {
	const stop = "STOP-HERE-7"
	srv, m := p.start(t, Sequence(Reply{Text: "ok"}), "", "")
	req := userReq("be brief")
	req.System = "You are terse."
	req.MaxTokens = 123
	req.Stop = []string{stop}
	if _, _, err := call(t, m, false, req); err != nil {
		t.Fatal(err)
	}
	c := srv.Calls()[0]
	if c.System != "You are terse." {
		t.Errorf("server saw system %q", c.System)
	}
	if c.MaxTokens != 123 {
		t.Errorf("server saw max tokens %d, want 123", c.MaxTokens)
	}
	if !strings.Contains(string(c.Body), `"`+stop+`"`) {
		t.Errorf("stop sequence missing from the request body %s", c.Body)
	}
	// Without MaxTokens the adapter still caps the output.
	if _, _, err := call(t, m, false, userReq("default cap")); err != nil {
		t.Fatal(err)
	}
	if c := srv.Calls()[1]; c.MaxTokens <= 0 || c.System != "" {
		t.Errorf("second call: max tokens %d, system %q", c.MaxTokens, c.System)
	}
}

// errCase scripts one failing answer and the error it must become.
type errCase struct {
	name       string
	reply      Reply
	kind       llm.Kind
	status     int
	retryAfter time.Duration
	message    string // the error text must contain it
}

var errCases = []errCase{
	{name: "RateLimited", reply: Reply{Status: 429, ErrorMessage: "Rate limit reached, slow down", RetryAfter: "2"},
		kind: llm.KindRateLimited, status: 429, retryAfter: 2 * time.Second, message: "Rate limit reached"},
	{name: "Overloaded529", reply: Reply{Status: 529, ErrorMessage: "Overloaded"}, kind: llm.KindOverloaded, status: 529},
	// A 503 that says it is overloaded is overloaded; a bare 503 is
	// merely transient.
	{name: "Overloaded503", reply: Reply{Status: 503, ErrorType: "overloaded_error", ErrorMessage: "The server is overloaded"},
		kind: llm.KindOverloaded, status: 503},
	{name: "Unavailable503", reply: Reply{Status: 503, ErrorType: "api_error", ErrorMessage: "Service Unavailable"}, kind: llm.KindTransient, status: 503},
	{name: "ServerError", reply: Reply{Status: 500, ErrorMessage: "internal failure 42"}, kind: llm.KindTransient, status: 500, message: "internal failure 42"},
	{name: "BadRequest", reply: Reply{Status: 400, ErrorMessage: "temperature: must be at most 2"},
		kind: llm.KindBadRequest, status: 400, message: "temperature: must be at most 2"},
	{name: "NotFound", reply: Reply{Status: 404, ErrorMessage: "model hive-nope does not exist"}, kind: llm.KindBadRequest, status: 404, message: "hive-nope"},
	{name: "ContextTooLongOpenAI", reply: Reply{Status: 400, ErrorMessage: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9001 tokens."},
		kind: llm.KindContextTooLong, status: 400, message: "8192"},
	{name: "ContextTooLongAnthropic", reply: Reply{Status: 400, ErrorMessage: "prompt is too long: 210000 tokens > 200000 maximum"},
		kind: llm.KindContextTooLong, status: 400, message: "210000"},
	{name: "HTML", reply: Reply{HTML: true}, kind: llm.KindTransient},
	{name: "HTML502", reply: Reply{HTML: true, Status: 502}, kind: llm.KindTransient, status: 502},
	{name: "MalformedJSON", reply: Reply{Malformed: true}, kind: llm.KindTransient},
}

func (p Provider) testErrors(t *testing.T) {
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			modes(t, func(t *testing.T, stream bool) {
				srv, m := p.start(t, Sequence(tc.reply), "", "")
				resp, _, err := call(t, m, stream, userReq("fail please"))
				checkOneRequest(t, srv)
				checkErr(t, resp, err, tc)
			})
		})
	}
}

func checkErr(t *testing.T, resp *llm.Response, err error, tc errCase) {
	t.Helper()
	if err == nil {
		t.Fatalf("got response %+v, want a %v error", resp, tc.kind)
	}
	var e *llm.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *llm.Error", err, err)
	}
	t.Logf("%v", err)
	if e.Kind != tc.kind {
		t.Errorf("kind = %v, want %v (%v)", e.Kind, tc.kind, err)
	}
	if tc.status != 0 && e.Status != tc.status {
		t.Errorf("status = %d, want %d (%v)", e.Status, tc.status, err)
	}
	if e.RetryAfter != tc.retryAfter {
		t.Errorf("retry after = %v, want %v", e.RetryAfter, tc.retryAfter)
	}
	if !strings.Contains(err.Error(), tc.message) {
		t.Errorf("error %q does not contain %q", err, tc.message)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is not one line", err)
	}
}

func (p Provider) testAuth(t *testing.T) {
	const right, wrong = "sk-hive-right-0123456789", "sk-hive-wrong-9876543210"
	t.Run("WrongKey", func(t *testing.T) {
		t.Parallel()
		modes(t, func(t *testing.T, stream bool) {
			srv, m := p.start(t, Sequence(Reply{Text: "never"}), right, wrong)
			resp, _, err := call(t, m, stream, userReq("hi"))
			checkOneRequest(t, srv)
			checkErr(t, resp, err, errCase{kind: llm.KindAuth, status: 401})
			if err != nil && (strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), right)) {
				t.Errorf("error %q contains an API key", err)
			}
		})
	})
	t.Run("RightKey", func(t *testing.T) {
		t.Parallel()
		srv, m := p.start(t, Sequence(Reply{Text: "welcome"}), right, right)
		resp, _, err := call(t, m, false, userReq("hi"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Text() != "welcome" || srv.Requests() != 1 {
			t.Errorf("text %q after %d requests", resp.Text(), srv.Requests())
		}
	})
	// A server that echoes the key in its message (as some do for a
	// revoked key): the adapter must not pass it on.
	t.Run("EchoedKey", func(t *testing.T) {
		t.Parallel()
		srv, m := p.start(t, Sequence(Reply{Status: 401, ErrorMessage: "Incorrect API key provided: " + right + "."}), right, right)
		resp, _, err := call(t, m, false, userReq("hi"))
		checkOneRequest(t, srv)
		checkErr(t, resp, err, errCase{kind: llm.KindAuth, status: 401, message: "Incorrect API key"})
		if err != nil && strings.Contains(err.Error(), right) {
			t.Errorf("error %q contains the API key", err)
		}
	})
}

// testTruncatedStream cuts the stream after n events for n = 1, 2, …: every
// cut before the end must fail as transient, never yield a partial answer;
// the first n that succeeds must give the whole answer.
func (p Provider) testTruncatedStream(t *testing.T) {
	const text = "a stream that will be cut short"
	calls := []ToolCall{{ID: "call_cut", Name: "get_weather", Input: `{"city":"Lima"}`}}
	usage := llm.Usage{InputTokens: 40, OutputTokens: 12}
	for n := 1; ; n++ {
		if n > 100 {
			t.Fatal("stream never completed within 100 events")
		}
		srv, m := p.start(t, Sequence(Reply{Text: text, ToolCalls: calls, Usage: &usage, TruncateAfter: n}), "", "")
		req := userReq("stream")
		req.Tools = []llm.Tool{weatherTool}
		resp, _, err := call(t, m, true, req)
		checkOneRequest(t, srv)
		if err != nil {
			if k := llm.KindOf(err); k != llm.KindTransient {
				t.Errorf("cut after %d events: kind %v (%v), want transient", n, k, err)
			}
			continue
		}
		if resp.Text() != text || resp.Usage != usage || resp.StopReason != llm.StopToolUse {
			t.Errorf("cut after %d events: partial answer %q, usage %+v, stop %q", n, resp.Text(), resp.Usage, resp.StopReason)
		}
		checkCalls(t, resp.ToolCalls(), calls)
		if n < 4 {
			t.Errorf("stream completed after only %d events", n)
		}
		return
	}
}

func (p Provider) testCancelStream(t *testing.T) {
	words := make([]string, 40)
	for i := range words {
		words[i] = fmt.Sprintf("w%d", i)
	}
	const delay = 50 * time.Millisecond // the whole stream takes about 2s
	srv, m := p.start(t, Sequence(Reply{Text: strings.Join(words, " "), EventDelay: delay}), "", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelledAt time.Time
	deltas := 0
	resp, err := m.Stream(ctx, userReq("go slowly"), func(d llm.Delta) {
		deltas++
		if d.Text != "" && cancelledAt.IsZero() {
			cancelledAt = time.Now()
			cancel()
		}
	})
	if err == nil {
		t.Fatalf("stream cancelled after the first delta returned %q", resp.Text())
	}
	if cancelledAt.IsZero() {
		t.Fatalf("no text delta arrived before the error %v", err)
	}
	if took := time.Since(cancelledAt); took > 500*time.Millisecond {
		t.Errorf("Stream returned %v after the cancel, want promptly", took)
	}
	if k := llm.KindOf(err); k != llm.KindCancelled || !errors.Is(err, llm.ErrCancelled) {
		t.Errorf("kind %v (%v), want cancelled", k, err)
	}
	if deltas > 3 {
		t.Errorf("%d deltas delivered after the cancel", deltas-1)
	}
	checkOneRequest(t, srv)
}
