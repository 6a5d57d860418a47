package eval

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hive-swarm/hive/internal/llm"
)

// scriptLead is the lead of an evaluation run: a program, not a model. It
// delegates every problem as the strategy says, then finishes with the
// answers combined from the workers' reports, so that what is measured is
// the swarm around the workers, deterministically.
type scriptLead struct {
	tasks   json.RawMessage           // the delegate call's arguments
	combine func([]taskReport) string // the finish answer from the reports
}

// taskReport is a task's report as the lead reads it.
type taskReport struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Model  string `json:"model"`
	Report string `json:"report"`
	Error  string `json:"error"`
}

func (l *scriptLead) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	var results []llm.ToolResult
	for _, m := range req.Messages {
		for _, p := range m.Parts {
			if r, ok := p.(llm.ToolResult); ok {
				results = append(results, r)
			}
		}
	}
	resp := &llm.Response{StopReason: llm.StopToolUse}
	if len(results) == 0 {
		resp.Parts = []llm.Part{llm.ToolCall{ID: "delegate-1", Name: "delegate", Input: l.tasks}}
		return resp, nil
	}
	var reports []taskReport
	if err := json.Unmarshal([]byte(results[len(results)-1].Content), &reports); err != nil {
		return nil, fmt.Errorf("eval lead: read reports: %w", err)
	}
	answer, _ := json.Marshal(map[string]string{"answer": l.combine(reports)})
	resp.Parts = []llm.Part{llm.ToolCall{ID: "finish-1", Name: "finish", Input: answer}}
	return resp, nil
}

func (l *scriptLead) Stream(ctx context.Context, req *llm.Request, fn func(llm.Delta)) (*llm.Response, error) {
	return l.Generate(ctx, req)
}
