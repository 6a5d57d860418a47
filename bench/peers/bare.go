//go:build !peers_solo || peers_bare

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"golang.org/x/sync/errgroup"
)

// The baseline: an errgroup loop with SetLimit that posts chat
// completion requests as raw JSON with net/http and reads the answers
// with encoding/json. It keeps nothing but the reports in memory and
// retries nothing.

type chatMessage struct {
	Role       string         `json:"role"`
	Content    *string        `json:"content"`
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type chatToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

type chatRequest struct {
	Model    string        `json:"model"`
	Messages []chatMessage `json:"messages"`
	Tools    []chatTool    `json:"tools,omitempty"`
}

type chatResponse struct {
	Choices []struct {
		Message chatMessage `json:"message"`
	} `json:"choices"`
}

func bareTool(name, desc, schema string) chatTool {
	var t chatTool
	t.Type = "function"
	t.Function.Name, t.Function.Description, t.Function.Parameters = name, desc, json.RawMessage(schema)
	return t
}

func text(s string) *string { return &s }

type bare struct {
	client *http.Client
	url    string
	j      job
}

func init() { goImpls["bare"] = prepareBare }

func prepareBare(_ context.Context, j job) (func(context.Context) (string, error), func(), error) {
	b := &bare{client: pooledClient(j.Cap), url: j.URL + "/v1/chat/completions", j: j}
	return b.run, func() {}, nil
}

func (b *bare) post(ctx context.Context, req *chatRequest) (*chatMessage, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer bench")
	resp, err := b.client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, msg)
	}
	var cr chatResponse
	if err := json.NewDecoder(resp.Body).Decode(&cr); err != nil {
		return nil, err
	}
	if len(cr.Choices) == 0 {
		return nil, fmt.Errorf("no choices")
	}
	return &cr.Choices[0].Message, nil
}

func (b *bare) run(ctx context.Context) (string, error) {
	lead := &chatRequest{
		Model:    "bare-lead",
		Messages: []chatMessage{{Role: "system", Content: text(leadSystem)}, {Role: "user", Content: text(leadTask(b.j.N))}},
		Tools:    []chatTool{bareTool(toolFanOut, fanOutDesc, fanOutSchema)},
	}
	m, err := b.post(ctx, lead)
	if err != nil {
		return "", fmt.Errorf("lead: %w", err)
	}
	if len(m.ToolCalls) != 1 || m.ToolCalls[0].Function.Name != toolFanOut {
		return "", fmt.Errorf("lead: no fan_out call")
	}
	var args fanOutArgs
	if err := json.Unmarshal([]byte(m.ToolCalls[0].Function.Arguments), &args); err != nil {
		return "", fmt.Errorf("lead: fan_out arguments: %w", err)
	}
	reports := make([]string, len(args.Tasks))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.j.Cap)
	for i, t := range args.Tasks {
		g.Go(func() error {
			r, err := b.worker(gctx, t)
			reports[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	lead.Messages = append(lead.Messages, *m, chatMessage{Role: "tool", ToolCallID: m.ToolCalls[0].ID, Content: text(joinReports(reports))})
	m, err = b.post(ctx, lead)
	if err != nil {
		return "", fmt.Errorf("lead's answer: %w", err)
	}
	if m.Content == nil {
		return "", fmt.Errorf("lead's answer: no text")
	}
	return *m.Content, nil
}

// worker is the two-turn tool loop of one task.
func (b *bare) worker(ctx context.Context, t task) (string, error) {
	req := &chatRequest{
		Model:    "bare-worker",
		Messages: []chatMessage{{Role: "system", Content: text(workerSystem)}, {Role: "user", Content: text(t.Instructions)}},
		Tools:    []chatTool{bareTool(toolRead, readDesc, readSchema)},
	}
	for range 4 {
		m, err := b.post(ctx, req)
		if err != nil {
			return "", fmt.Errorf("worker %s: %w", t.Name, err)
		}
		if len(m.ToolCalls) == 0 {
			if m.Content == nil {
				return "", fmt.Errorf("worker %s: empty answer", t.Name)
			}
			return *m.Content, nil
		}
		req.Messages = append(req.Messages, *m)
		for _, tc := range m.ToolCalls {
			out, err := readTask(b.j.Dir, tc.Function.Arguments)
			if err != nil {
				out = "error: " + err.Error()
			}
			req.Messages = append(req.Messages, chatMessage{Role: "tool", ToolCallID: tc.ID, Content: text(out)})
		}
	}
	return "", fmt.Errorf("worker %s: no answer in 4 turns", t.Name)
}
