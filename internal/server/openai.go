package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/swarm"
)

// The OpenAI-compatible endpoint: the "model" names a swarm configuration
// ("hive" for the defaults, or a [swarms.NAME] table), the conversation
// becomes the run's task, and the run's answer comes back as the
// assistant's message, with the tokens of the whole swarm as its usage.

// RunHeader carries the id of the run behind a chat completion.
const RunHeader = "X-Hive-Run"

// DefaultSwarm is the model name of the configuration's defaults.
const DefaultSwarm = "hive"

type chatRequest struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text returns a message's text: a string, or the text parts of a list.
func (m chatMessage) text() string {
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	json.Unmarshal(m.Content, &parts)
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

type chatUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

func usageOf(u llm.Usage) chatUsage {
	in := u.InputTokens + u.CacheReadTokens + u.CacheWriteTokens
	return chatUsage{PromptTokens: in, CompletionTokens: u.OutputTokens, TotalTokens: in + u.OutputTokens}
}

// openAIError is the error body OpenAI clients parse.
type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func writeOpenAIError(w http.ResponseWriter, status int, typ, code, msg string) {
	var e openAIError
	e.Error.Message, e.Error.Type, e.Error.Code = msg, typ, code
	writeJSON(w, status, e)
}

// swarmSpec returns the spec of the swarm configuration named model.
func (s *Server) swarmSpec(model string) (swarm.Spec, bool, error) {
	d, req, ok := swarmDefaults(s.cfg, model)
	if !ok {
		return swarm.Spec{}, false, nil
	}
	req.Task = "-"
	spec, err := specFrom(s.cfg, d, req)
	return spec, true, err
}

// chatTask turns a conversation into a run's task: the last user message,
// after the earlier messages as context.
func chatTask(msgs []chatMessage) string {
	last := -1
	for i, m := range msgs {
		if m.Role == "user" {
			last = i
		}
	}
	if last < 0 {
		return ""
	}
	task := strings.TrimSpace(msgs[last].text())
	var ctx strings.Builder
	for i, m := range msgs {
		if i == last {
			continue
		}
		if t := strings.TrimSpace(m.text()); t != "" {
			fmt.Fprintf(&ctx, "[%s]\n%s\n\n", m.Role, t)
		}
	}
	if ctx.Len() == 0 {
		return task
	}
	return "Context (the conversation so far):\n\n" + ctx.String() + "Task:\n" + task
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		writeOpenAIError(w, status, "invalid_request_error", code, msg)
	}
	body, ok := readBody(w, r, fail)
	if !ok {
		return
	}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		fail(http.StatusBadRequest, "invalid_json", "invalid JSON body: "+err.Error())
		return
	}
	spec, ok, err := s.swarmSpec(req.Model)
	if !ok {
		fail(http.StatusNotFound, "model_not_found",
			fmt.Sprintf("The model %q does not exist: use %q or a [swarms.NAME] of hive.toml", req.Model, DefaultSwarm))
		return
	}
	if err != nil {
		fail(http.StatusBadRequest, "bad_swarm", err.Error())
		return
	}
	spec.Principal = callerOf(r).Name
	if spec.Task = chatTask(req.Messages); strings.TrimSpace(spec.Task) == "" {
		fail(http.StatusBadRequest, "no_task", "messages hold no user message with text")
		return
	}
	if req.Stream {
		if !s.streams(r).take(s.Limits.StreamsPerToken) {
			tooMany(w, "event streams", s.Limits.StreamsPerToken)
			return
		}
		defer s.streams(r).put()
	}
	// A retry (same Idempotency-Key, or an OpenAI SDK's next try of the
	// same body) answers from the run of the first try.
	id, key, _ := s.startOnce(w, r, "chat", body, true, func() string {
		id, err := s.engine.Start(r.Context(), spec)
		if err != nil {
			noRetry(w)
			fail(http.StatusBadRequest, "run_not_started", err.Error())
			return ""
		}
		return id
	}, func() { fail(http.StatusUnprocessableEntity, "idempotency_key_reused", errKeyReused.Error()) })
	if id == "" {
		return
	}
	w.Header().Set(RunHeader, id)
	if req.Stream {
		s.streamChat(w, r, id, key, req)
		return
	}
	// The answer comes when the run ends, maybe after the server's read
	// and write timeouts: lift them while waiting (over HTTP/2 a passed
	// deadline resets the stream), then give the answer WriteTimeout.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	res, ok := s.waitRun(r.Context(), id, key)
	if !ok {
		return // the client left
	}
	if s.Limits.WriteTimeout > 0 {
		rc.SetWriteDeadline(time.Now().Add(s.Limits.WriteTimeout))
	}
	if res.Status != swarm.StatusDone {
		// The run ended without an answer: a retry would start another
		// run (or, with a key, get this same failure).
		noRetry(w)
		writeOpenAIError(w, http.StatusInternalServerError, "server_error", "run_"+string(res.Status),
			fmt.Sprintf("run %s %s: %s", id, res.Status, res.Error))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "chatcmpl-" + id, "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
		"choices": []map[string]any{{
			"index": 0, "finish_reason": "stop", "logprobs": nil,
			"message": map[string]any{"role": "assistant", "content": res.Answer, "refusal": nil},
		}},
		"usage": usageOf(res.Usage),
	})
}

// waitRun waits for the run of a chat request whose key entry is key (nil
// without one). When the client goes away first, the run is abandoned.
func (s *Server) waitRun(ctx context.Context, id string, key *keyed) (swarm.Result, bool) {
	res, err := s.engine.Wait(ctx, id)
	if err != nil {
		s.abandon(ctx, id, key)
		return res, false
	}
	return res, true
}

// abandon is called when the client of a chat request leaves before its
// run ends. Nobody will read the answer, so the run is cancelled; but
// when the request has a key, not while another request with that key
// waits for the run, nor before [Server.RetryGrace] has passed without a
// retry coming for it.
func (s *Server) abandon(ctx context.Context, id string, key *keyed) {
	ctx = context.WithoutCancel(ctx)
	if key != nil {
		if s.keys.leave(key) {
			return
		}
		gctx, cancel := context.WithTimeout(ctx, s.RetryGrace)
		_, err := s.engine.Wait(gctx, id)
		cancel()
		if err == nil || !s.keys.forget(key) {
			return // the run ended (a retry gets its answer), or a retry came
		}
	}
	if err := s.engine.Cancel(ctx, id); err != nil {
		s.log.Warn("cancel the run of a chat request the client left", "run", id, "err", err)
	}
}

// streamChat answers a chat request with stream: true. The swarm's
// answer exists only when the run ends, so the stream opens at once with
// the assistant role, keeps the connection alive with comments while the
// swarm works, then sends the answer in pieces.
func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, id string, key *keyed, req chatRequest) {
	st, err := s.startStream(w)
	created := time.Now().Unix()
	send := func(v any) bool {
		data, _ := json.Marshal(v)
		return st.send(fmt.Appendf(nil, "data: %s\n\n", data)) == nil
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{
			"id": "chatcmpl-" + id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}},
		}
	}
	if err != nil || !send(chunk(map[string]any{"role": "assistant", "content": ""}, nil)) {
		s.abandon(r.Context(), id, key)
		return
	}
	done := make(chan struct{})
	var res swarm.Result
	var ok bool
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		defer close(done)
		res, ok = s.waitRun(ctx, id, key)
	}()
	ping := time.NewTicker(s.PingInterval)
	defer ping.Stop()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-ping.C:
			if st.send([]byte(": working\n\n")) != nil {
				cancel()
				<-done
				return
			}
		}
	}
	if !ok {
		return
	}
	if res.Status != swarm.StatusDone {
		var e openAIError
		e.Error.Message = fmt.Sprintf("run %s %s: %s", id, res.Status, res.Error)
		e.Error.Type, e.Error.Code = "server_error", "run_"+string(res.Status)
		send(e)
		return
	}
	for _, piece := range pieces(res.Answer, 64) {
		if !send(chunk(map[string]any{"content": piece}, nil)) {
			return
		}
	}
	if !send(chunk(map[string]any{}, "stop")) {
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		if !send(map[string]any{
			"id": "chatcmpl-" + id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{}, "usage": usageOf(res.Usage),
		}) {
			return
		}
	}
	st.send([]byte("data: [DONE]\n\n"))
}

// pieces cuts s into chunks of about n bytes at rune boundaries.
func pieces(s string, n int) []string {
	var out []string
	for len(s) > n {
		i := n
		for i < len(s) && !utf8Start(s[i]) {
			i++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
