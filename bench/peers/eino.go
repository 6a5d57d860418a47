//go:build !peers_solo || peers_eino

package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cloudwego/eino-ext/components/model/openai"
	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/flow/agent/react"
	"github.com/cloudwego/eino/schema"
	"golang.org/x/sync/errgroup"
)

// Eino: its OpenAI chat model (eino-ext), the lead a chat model with
// fan_out bound, each worker Eino's ReAct agent (a compiled graph of the
// model and a tools node) with read_file made by utils.InferTool, the
// workers fanned out by an errgroup under the cap. Generate, not Stream:
// the agent's default. No state is kept outside the process.

func init() { goImpls["eino"] = prepareEino }

func prepareEino(ctx context.Context, j job) (func(context.Context) (string, error), func(), error) {
	newModel := func(id string) (*openai.ChatModel, error) {
		return openai.NewChatModel(ctx, &openai.ChatModelConfig{
			APIKey:     "bench",
			BaseURL:    j.URL + "/v1",
			Model:      id,
			HTTPClient: pooledClient(j.Cap),
		})
	}
	leadModel, err := newModel("eino-lead")
	if err != nil {
		return nil, nil, err
	}
	fanOut, err := utils.GoStruct2ToolInfo[fanOutArgs](toolFanOut, fanOutDesc)
	if err != nil {
		return nil, nil, err
	}
	lead, err := leadModel.WithTools([]*schema.ToolInfo{fanOut})
	if err != nil {
		return nil, nil, err
	}
	workerModel, err := newModel("eino-worker")
	if err != nil {
		return nil, nil, err
	}
	read, err := utils.InferTool(toolRead, readDesc, func(_ context.Context, a readArgs) (string, error) {
		return readPath(j.Dir, a.Path)
	})
	if err != nil {
		return nil, nil, err
	}
	agent, err := react.NewAgent(ctx, &react.AgentConfig{
		ToolCallingModel: workerModel,
		ToolsConfig:      compose.ToolsNodeConfig{Tools: []tool.BaseTool{read}},
	})
	if err != nil {
		return nil, nil, err
	}
	run := func(ctx context.Context) (string, error) {
		msgs := []*schema.Message{schema.SystemMessage(leadSystem), schema.UserMessage(leadTask(j.N))}
		m, err := lead.Generate(ctx, msgs)
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
		g.SetLimit(j.Cap)
		for i, t := range args.Tasks {
			g.Go(func() error {
				out, err := agent.Generate(gctx, []*schema.Message{schema.SystemMessage(workerSystem), schema.UserMessage(t.Instructions)})
				if err != nil {
					return fmt.Errorf("worker %s: %w", t.Name, err)
				}
				reports[i] = out.Content
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return "", err
		}
		msgs = append(msgs, m, schema.ToolMessage(joinReports(reports), m.ToolCalls[0].ID))
		m, err = lead.Generate(ctx, msgs)
		if err != nil {
			return "", fmt.Errorf("lead's answer: %w", err)
		}
		return m.Content, nil
	}
	return run, func() {}, nil
}
