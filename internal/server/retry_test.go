package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/swarm"
)

// post sends a JSON body with the token and extra headers; it returns the
// response and its body.
func (e *testEnv) post(ctx context.Context, path string, body any, headers ...string) (*http.Response, []byte, error) {
	data, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", e.srv.URL+path, bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp, out, err
}

// runCount returns how many runs the journal holds.
func (e *testEnv) runCount() int {
	e.t.Helper()
	var list struct{ Runs []swarm.RunView }
	e.do("GET", "/v1/runs", testToken, nil, &list)
	return len(list.Runs)
}

func chatBody(text string) map[string]any {
	return map[string]any{"model": "hive", "messages": []map[string]string{{"role": "user", "content": text}}}
}

// failing is a model server whose every call is refused for good.
func failing(*llmtest.Call) llmtest.Reply {
	return llmtest.Reply{Status: http.StatusBadRequest, ErrorMessage: "this model is broken"}
}

func TestShouldRetryHeader(t *testing.T) {
	e := newTestEnv(t, failing)
	ctx := context.Background()

	resp, body, err := e.post(ctx, "/v1/chat/completions", chatBody("fail please"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get(ShouldRetryHeader) != "false" {
		t.Fatalf("failed run: %d, %s %q, body %s", resp.StatusCode, ShouldRetryHeader, resp.Header.Get(ShouldRetryHeader), body)
	}
	if n := e.runCount(); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}

	// The OpenAI SDK retries a 500 twice unless told not to: one request,
	// one run.
	client := openai.NewClient(option.WithBaseURL(e.srv.URL+"/v1/"), option.WithAPIKey(testToken), option.WithMaxRetries(2))
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "hive",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("fail again")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 500 || apiErr.Code != "run_failed" {
		t.Fatalf("SDK: %v", err)
	}
	if n := e.runCount(); n != 2 {
		t.Fatalf("%d runs after the SDK's request, want 2: it retried", n)
	}

	// A run that cannot start is not to be retried either.
	resp, body, err = e.post(ctx, "/v1/runs", map[string]any{"task": "x", "lead": "no-such-model"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get(ShouldRetryHeader) != "false" {
		t.Fatalf("unstartable run: %d, %s %q, body %s", resp.StatusCode, ShouldRetryHeader, resp.Header.Get(ShouldRetryHeader), body)
	}
	// Errors a retry may cure keep the SDK's default.
	resp, _, _ = e.post(ctx, "/v1/chat/completions", map[string]any{"model": "nope"})
	if resp.Header.Get(ShouldRetryHeader) != "" {
		t.Fatalf("unknown model: %s %q", ShouldRetryHeader, resp.Header.Get(ShouldRetryHeader))
	}
}

func TestIdempotentRetry(t *testing.T) {
	e := newTestEnv(t, (&script{n: 2}).handle)
	ctx := context.Background()

	t.Run("runs", func(t *testing.T) {
		before := e.runCount()
		start := func(task, key string) (int, string) {
			t.Helper()
			resp, body, err := e.post(ctx, "/v1/runs", map[string]any{"task": task}, IdempotencyHeader, key)
			if err != nil {
				t.Fatal(err)
			}
			var out struct{ ID string }
			json.Unmarshal(body, &out)
			return resp.StatusCode, out.ID
		}
		st1, id1 := start("one", "k-1")
		st2, id2 := start("one", "k-1")
		if st1 != http.StatusCreated || st2 != http.StatusOK || id1 == "" || id2 != id1 {
			t.Fatalf("same key: %d %s, then %d %s; want 201 then 200 with the same run", st1, id1, st2, id2)
		}
		st3, id3 := start("one", "k-2")
		if st3 != http.StatusCreated || id3 == id1 {
			t.Fatalf("another key: %d %s, want a new run", st3, id3)
		}
		if st, _ := start("two", "k-1"); st != http.StatusUnprocessableEntity {
			t.Fatalf("the key again with another body: %d, want 422", st)
		}
		if n := e.runCount() - before; n != 2 {
			t.Fatalf("%d runs, want 2", n)
		}
		e.waitStatus(id1, swarm.StatusDone)
		e.waitStatus(id3, swarm.StatusDone)
	})

	t.Run("chat", func(t *testing.T) {
		before := e.runCount()
		// Tries that race each other, and one after the run ended.
		var wg sync.WaitGroup
		ids := make([]string, 4)
		answers := make([]string, 4)
		chat := func(i int, key string) {
			resp, body, err := e.post(ctx, "/v1/chat/completions", chatBody("Count the reports."), IdempotencyHeader, key)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("try %d: %v %v %s", i, err, resp.StatusCode, body)
				return
			}
			var c struct {
				Choices []struct{ Message struct{ Content string } }
			}
			json.Unmarshal(body, &c)
			ids[i] = resp.Header.Get(RunHeader)
			if len(c.Choices) == 1 {
				answers[i] = c.Choices[0].Message.Content
			}
		}
		for i := range 3 {
			wg.Go(func() { chat(i, "c-1") })
		}
		wg.Wait()
		chat(3, "c-1")
		for i := range ids {
			if ids[i] == "" || ids[i] != ids[0] || answers[i] != answers[0] || answers[i] == "" {
				t.Fatalf("tries with one key: runs %q, answers %q", ids, answers)
			}
		}
		resp, _, _ := e.post(ctx, "/v1/chat/completions", chatBody("Count the reports."), IdempotencyHeader, "c-2")
		if id := resp.Header.Get(RunHeader); id == "" || id == ids[0] {
			t.Fatalf("another key: run %q", id)
		}
		if n := e.runCount() - before; n != 2 {
			t.Fatalf("%d runs, want 2", n)
		}

		// A streamed retry streams the same run.
		resp, body, _ := e.post(ctx, "/v1/chat/completions", map[string]any{"model": "hive", "stream": true,
			"messages": []map[string]string{{"role": "user", "content": "Count the reports."}}}, IdempotencyHeader, "c-3")
		resp2, body2, _ := e.post(ctx, "/v1/chat/completions", map[string]any{"model": "hive", "stream": true,
			"messages": []map[string]string{{"role": "user", "content": "Count the reports."}}}, IdempotencyHeader, "c-3")
		for _, b := range [][]byte{body, body2} {
			if !bytes.Contains(b, []byte("report of t-1")) || !bytes.HasSuffix(b, []byte("data: [DONE]\n\n")) {
				t.Fatalf("streamed tries: %s", b)
			}
		}
		if id := resp.Header.Get(RunHeader); id == "" || resp2.Header.Get(RunHeader) != id {
			t.Fatalf("streamed retry: runs %q %q", id, resp2.Header.Get(RunHeader))
		}
		if n := e.runCount() - before; n != 3 {
			t.Fatalf("%d runs, want 3", n)
		}
	})

	t.Run("sdk tries", func(t *testing.T) {
		// The OpenAI SDKs send no key but number their tries: a try
		// above 0 is answered from the run of the same body; a try 0
		// is a new request.
		before := e.runCount()
		try := func(n string) string {
			resp, body, err := e.post(ctx, "/v1/chat/completions", chatBody("Count the reports, SDK."), "X-Stainless-Retry-Count", n)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("try %s: %v %s", n, err, body)
			}
			return resp.Header.Get(RunHeader)
		}
		a, b := try("0"), try("1")
		c, d := try("0"), try("2")
		if a == "" || b != a || c == a || d != c {
			t.Fatalf("runs of tries 0, 1, 0, 2: %s %s %s %s", a, b, c, d)
		}
		if n := e.runCount() - before; n != 2 {
			t.Fatalf("%d runs, want 2", n)
		}
	})
}

// TestIdempotentRetryAfterLeaving: a client that gives up on a chat
// request and retries it with its key gets the first run's answer; one
// that does not come back has its run cancelled after the grace.
func TestIdempotentRetryAfterLeaving(t *testing.T) {
	e := newTestEnv(t, (&script{n: 1, worker: time.Second}).handle)
	ctx := context.Background()

	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, _, err := e.post(tctx, "/v1/chat/completions", chatBody("Count the reports."), IdempotencyHeader, "late")
	cancel()
	if err == nil {
		t.Fatal("the first try did not time out")
	}
	resp, body, err := e.post(ctx, "/v1/chat/completions", chatBody("Count the reports."), IdempotencyHeader, "late")
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("1 reports: report of t-0")) {
		t.Fatalf("retry: %v %v %s", err, resp.StatusCode, body)
	}
	if n := e.runCount(); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}

	e.server.RetryGrace = 100 * time.Millisecond
	tctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
	e.post(tctx, "/v1/chat/completions", chatBody("Count the reports."), IdempotencyHeader, "gone")
	cancel()
	var list struct{ Runs []swarm.RunView }
	e.do("GET", "/v1/runs", testToken, nil, &list)
	for _, r := range list.Runs {
		if r.Status != swarm.StatusDone {
			e.waitStatus(r.ID, swarm.StatusCancelled)
		}
	}
	// Its key is forgotten: a retry now starts a new run.
	resp, _, _ = e.post(ctx, "/v1/chat/completions", chatBody("Count the reports."), IdempotencyHeader, "gone")
	if resp.StatusCode != http.StatusOK || e.runCount() != 3 {
		t.Fatalf("retry after the cancel: %d, %d runs", resp.StatusCode, e.runCount())
	}
}

func TestRetryKeysBounded(t *testing.T) {
	var k retryKeys
	now := time.Now()
	for i := range MaxRetryKeys + 1 {
		e, owner, err := k.claim(strconv.Itoa(i), nil, false, now)
		if err != nil || !owner {
			t.Fatalf("claim %d: %v %v", i, owner, err)
		}
		k.settle(e, "r"+strconv.Itoa(i))
	}
	if len(k.entries) != MaxRetryKeys || k.order.Len() != MaxRetryKeys || k.entries["0"] != nil || k.entries["1"] == nil {
		t.Fatalf("%d keys (%d in order), key 0 kept: %v", len(k.entries), k.order.Len(), k.entries["0"] != nil)
	}
	if _, owner, _ := k.claim("1", nil, false, now); owner {
		t.Fatal("a remembered key was claimed anew")
	}
	// A day later they are all forgotten.
	if _, owner, _ := k.claim("1", nil, false, now.Add(RetryKeyTTL+time.Second)); !owner || len(k.entries) != 1 {
		t.Fatalf("after the TTL: owner %v, %d keys", owner, len(k.entries))
	}
}
