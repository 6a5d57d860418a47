//go:build !peers_solo || peers_langchaingo

package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/llms/openai"
	"golang.org/x/sync/errgroup"
)

// LangChainGo: its OpenAI LLM, GenerateContent with tools (not streamed:
// no streaming func is set, its default), each worker the tool loop of
// LangChainGo's function-calling examples, fanned out by an errgroup
// under the cap. No state is kept outside the process.

func init() { goImpls["langchaingo"] = prepareLangChainGo }

func prepareLangChainGo(_ context.Context, j job) (func(context.Context) (string, error), func(), error) {
	newLLM := func(id string) (*openai.LLM, error) {
		return openai.New(
			openai.WithToken("bench"),
			openai.WithBaseURL(j.URL+"/v1"),
			openai.WithModel(id),
			openai.WithHTTPClient(pooledClient(j.Cap)),
		)
	}
	lead, err := newLLM("langchaingo-lead")
	if err != nil {
		return nil, nil, err
	}
	worker, err := newLLM("langchaingo-worker")
	if err != nil {
		return nil, nil, err
	}
	tool := func(name, desc, schema string) llms.Tool {
		var params map[string]any
		json.Unmarshal([]byte(schema), &params)
		return llms.Tool{Type: "function", Function: &llms.FunctionDefinition{Name: name, Description: desc, Parameters: params}}
	}
	fanOut := []llms.Tool{tool(toolFanOut, fanOutDesc, fanOutSchema)}
	read := []llms.Tool{tool(toolRead, readDesc, readSchema)}

	work := func(ctx context.Context, t task) (string, error) {
		msgs := []llms.MessageContent{
			llms.TextParts(llms.ChatMessageTypeSystem, workerSystem),
			llms.TextParts(llms.ChatMessageTypeHuman, t.Instructions),
		}
		for range 4 {
			resp, err := worker.GenerateContent(ctx, msgs, llms.WithTools(read))
			if err != nil {
				return "", err
			}
			c := resp.Choices[0]
			if len(c.ToolCalls) == 0 {
				return c.Content, nil
			}
			ai := llms.MessageContent{Role: llms.ChatMessageTypeAI}
			for _, tc := range c.ToolCalls {
				ai.Parts = append(ai.Parts, tc)
			}
			msgs = append(msgs, ai)
			for _, tc := range c.ToolCalls {
				out, err := readTask(j.Dir, tc.FunctionCall.Arguments)
				if err != nil {
					out = "error: " + err.Error()
				}
				msgs = append(msgs, llms.MessageContent{Role: llms.ChatMessageTypeTool, Parts: []llms.ContentPart{
					llms.ToolCallResponse{ToolCallID: tc.ID, Name: tc.FunctionCall.Name, Content: out},
				}})
			}
		}
		return "", fmt.Errorf("no answer in 4 turns")
	}

	run := func(ctx context.Context) (string, error) {
		msgs := []llms.MessageContent{
			llms.TextParts(llms.ChatMessageTypeSystem, leadSystem),
			llms.TextParts(llms.ChatMessageTypeHuman, leadTask(j.N)),
		}
		resp, err := lead.GenerateContent(ctx, msgs, llms.WithTools(fanOut))
		if err != nil {
			return "", fmt.Errorf("lead: %w", err)
		}
		c := resp.Choices[0]
		if len(c.ToolCalls) != 1 || c.ToolCalls[0].FunctionCall.Name != toolFanOut {
			return "", fmt.Errorf("lead: no fan_out call")
		}
		call := c.ToolCalls[0]
		var args fanOutArgs
		if err := json.Unmarshal([]byte(call.FunctionCall.Arguments), &args); err != nil {
			return "", fmt.Errorf("lead: fan_out arguments: %w", err)
		}
		reports := make([]string, len(args.Tasks))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(j.Cap)
		for i, t := range args.Tasks {
			g.Go(func() error {
				r, err := work(gctx, t)
				if err != nil {
					return fmt.Errorf("worker %s: %w", t.Name, err)
				}
				reports[i] = r
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return "", err
		}
		msgs = append(msgs,
			llms.MessageContent{Role: llms.ChatMessageTypeAI, Parts: []llms.ContentPart{call}},
			llms.MessageContent{Role: llms.ChatMessageTypeTool, Parts: []llms.ContentPart{
				llms.ToolCallResponse{ToolCallID: call.ID, Name: toolFanOut, Content: joinReports(reports)},
			}},
		)
		resp, err = lead.GenerateContent(ctx, msgs, llms.WithTools(fanOut))
		if err != nil {
			return "", fmt.Errorf("lead's answer: %w", err)
		}
		return resp.Choices[0].Content, nil
	}
	return run, func() {}, nil
}
