package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
)

func runAsk(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "ask", "-m MODEL [flags] PROMPT  (PROMPT \"-\" reads stdin)")
	var g globalFlags
	g.register(fs)
	model := fs.String("m", "", "model: a name from hive.toml, or anthropic:MODEL / openai:MODEL")
	system := fs.String("system", "", "system prompt")
	maxTokens := fs.Int("max-tokens", 1024, "maximum output tokens")
	temperature := fs.Float64("temperature", -1, "sampling temperature (default: the provider's)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of streaming text")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usageErrorf("ask needs a model: -m NAME (a name from hive.toml, or anthropic:MODEL / openai:MODEL)")
	}
	if fs.NArg() != 1 {
		return usageErrorf("ask takes one prompt argument (quote it, or pass - to read stdin)")
	}
	prompt := fs.Arg(0)
	if prompt == "-" {
		b, err := io.ReadAll(env.Stdin)
		if err != nil {
			return fmt.Errorf("read prompt from stdin: %w", err)
		}
		prompt = string(b)
	}
	if strings.TrimSpace(prompt) == "" {
		return usageErrorf("the prompt is empty")
	}

	_, reg, _, err := g.load(env)
	if err != nil {
		return err
	}
	m, err := reg.Get(*model)
	if err != nil {
		return err
	}
	req := &llm.Request{System: *system, Messages: []llm.Message{llm.UserText(prompt)}, MaxTokens: *maxTokens}
	if *temperature >= 0 {
		req.Temperature = temperature
	}
	client := m.Admitted(limit.Lead)

	var resp *llm.Response
	if *asJSON {
		resp, err = client.Generate(ctx, req)
	} else {
		streamed := false
		resp, err = client.Stream(ctx, req, func(d llm.Delta) {
			if d.Text != "" {
				streamed = true
				io.WriteString(env.Stdout, d.Text)
			}
		})
		if streamed {
			fmt.Fprintln(env.Stdout)
		}
	}
	if err != nil {
		keyEnv := ""
		if m.Config != nil {
			keyEnv = m.Config.APIKeyEnv
		}
		return callError(*model, keyEnv, err)
	}
	cost, known := m.Cost(resp.Usage)
	if *asJSON {
		out := askJSON{Model: *model, ID: m.ID, Text: resp.Text(), StopReason: string(resp.StopReason), Usage: resp.Usage}
		if known {
			d := cost.Dollars()
			out.CostUSD = &d
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	costText := "cost unknown (no price for " + m.ID + "; add [models.NAME.price] to hive.toml)"
	if known {
		costText = "cost " + cost.String()
	}
	u := resp.Usage
	fmt.Fprintf(env.Stderr, "%s · %d in", *model, u.InputTokens)
	if u.CacheReadTokens+u.CacheWriteTokens > 0 {
		fmt.Fprintf(env.Stderr, " (+%d cache write, %d cache read)", u.CacheWriteTokens, u.CacheReadTokens)
	}
	fmt.Fprintf(env.Stderr, ", %d out tokens · %s\n", u.OutputTokens, costText)
	return nil
}

type askJSON struct {
	Model      string    `json:"model"`
	ID         string    `json:"model_id"`
	Text       string    `json:"text"`
	StopReason string    `json:"stop_reason"`
	Usage      llm.Usage `json:"usage"`
	// CostUSD is null when the model's price is unknown.
	CostUSD *float64 `json:"cost_usd"`
}

// callError turns a failed model call into a one-line message that says
// what to do next; keyEnv names the variable holding the model's key.
func callError(model, keyEnv string, err error) error {
	var e *llm.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("call %s: %s", model, oneLine(err.Error()))
	}
	hint := ""
	switch e.Kind {
	case llm.KindAuth:
		hint = "check the API key in " + keyEnv
		if keyEnv == "" {
			hint = "the server wants an API key: name the variable holding it with api_key_env in hive.toml"
		}
	case llm.KindRateLimited, llm.KindOverloaded:
		hint = "the provider is busy; try again later or lower the model's limits in hive.toml"
	case llm.KindContextTooLong:
		hint = "the prompt is longer than the model's context (n_ctx): shorten it, or raise the server's context size (llama-server -c) or use a model with a larger context"
	case llm.KindBadRequest:
		hint = "check the model id and the request flags"
	case llm.KindTransient:
		hint = "check the base URL and that the server is up"
	case llm.KindCancelled:
		return fmt.Errorf("call %s: cancelled", model)
	}
	msg := fmt.Sprintf("call %s: %s", model, oneLine(e.Error()))
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return errors.New(msg)
}
