package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/screen"
)

// A run's MCP servers (Spec.MCP) start once, when the first model that may
// use them is given its tools: the tools they offer and allow are listed
// then and journaled (key mcp/tools), so that a resumed run offers the
// same ones without starting a server until one is called. The servers
// stop when the run ends in this process (mcp.Manager.Close).
//
// A model is offered the tools of the servers whose roles and tiers take
// it ([mcp.ServerConfig.Offers]), by their names SERVER__tool; it can call
// no other: a name it was not offered is an unknown tool, and nothing
// reaches a server. Each call is a journaled step (key NODE/tool-A-N, as
// the workspace tools'): a resumed run reads the result back and never
// calls again. A result is capped at the server's max_output; the whole of
// a longer one is stored as the artifact NODE/mcp-A-N. Its time and
// whether it failed are counted on the node, and published (EventTool).

// mcpState is a run's MCP servers; its fields are guarded by mu, which is
// held while the servers start (the other nodes wait for their tools) and
// may be held while run.mu is taken, never the other way round.
type mcpState struct {
	mu      sync.Mutex
	manager *mcp.Manager // made at the first use; closed by closeMCP
	tools   []mcp.Tool   // listed (or read back) at the first use
	listed  bool
	closed  bool
}

// mcpManager returns the run's manager of its MCP servers, made on first
// use (it starts no server).
func (r *run) mcpManager() (*mcp.Manager, error) {
	r.mcp.mu.Lock()
	defer r.mcp.mu.Unlock()
	return r.mcpManagerLocked()
}

func (r *run) mcpManagerLocked() (*mcp.Manager, error) {
	if r.mcp.closed {
		return nil, mcp.ErrClosed
	}
	if r.mcp.manager == nil {
		m, err := mcp.New(r.spec.MCP, r.e.log, mcp.Options{Redact: r.e.opts.Redact.String, Getenv: r.e.opts.Getenv})
		if err != nil {
			return nil, err
		}
		r.mcp.manager = m
	}
	return r.mcp.manager, nil
}

// mcpTools returns the tools of the run's MCP servers: the journaled list,
// or what the servers offer once started. Servers that fail to start are
// left out, with an anomaly on node ns, and tried again when the run is
// resumed.
func (r *run) mcpTools(ctx context.Context, ns *nodeState) []mcp.Tool {
	if len(r.spec.MCP) == 0 {
		return nil
	}
	r.mcp.mu.Lock()
	defer r.mcp.mu.Unlock()
	if r.mcp.listed {
		return r.mcp.tools
	}
	r.mcp.listed = true
	const key = "mcp/tools"
	if data, ok, _ := r.journaled(key); ok && json.Unmarshal(data, &r.mcp.tools) == nil {
		return r.mcp.tools
	}
	m, err := r.mcpManagerLocked()
	if err != nil {
		r.anomaly(ns, "mcp: "+err.Error(), true)
		return nil
	}
	// Started for the run, not for the node that asked first: a node
	// cancelled meanwhile must not leave the others without tools.
	err = m.Start(r.workCtx)
	r.mcp.tools = m.Tools()
	if err != nil {
		r.anomaly(ns, r.e.opts.Redact.String("mcp: "+err.Error()), true)
		return r.mcp.tools
	}
	data, _ := json.Marshal(r.mcp.tools)
	if err := r.e.store.PutStep(ctx, r.id, key, data); err != nil {
		r.e.log.Warn("journal the MCP tools", "run", r.id, "err", err)
	}
	return r.mcp.tools
}

// mcpToolsFor returns the MCP tools offered to a model of role (mcp.RoleWorker
// or mcp.RoleLead) that is model, as model APIs take them.
func (r *run) mcpToolsFor(ctx context.Context, ns *nodeState, role, model string) []llm.Tool {
	rule := r.policy().leadRule()
	if role == mcp.RoleWorker {
		rule = r.policy().workerRule(model)
	}
	var out []llm.Tool
	for _, t := range r.mcpTools(ctx, ns) {
		if c := r.spec.MCP[t.Server]; c != nil && c.Offers(role, model) && rule.allowsServer(t.Server) {
			out = append(out, llm.Tool{Name: t.Name, Description: t.Description, Schema: t.Schema})
		}
	}
	return out
}

// closeMCP stops the run's MCP servers and waits for them; once is
// enough.
func (r *run) closeMCP() {
	r.mcp.mu.Lock()
	m := r.mcp.manager
	r.mcp.manager, r.mcp.closed = nil, true
	r.mcp.mu.Unlock()
	if m != nil {
		m.Close()
	}
}

// jsonStrings is every string of the JSON value raw, keys too, decoded
// (as the tool's server will read them: "\u0067hp_…" is "ghp_…"), one a
// line; empty when raw is not JSON.
func jsonStrings(raw []byte) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			b.WriteString(v)
			b.WriteByte('\n')
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				b.WriteString(k)
				b.WriteByte('\n')
				walk(v[k])
			}
		}
	}
	walk(v)
	return b.String()
}

// offered reports whether tools holds a tool named name.
func offered(tools []llm.Tool, name string) bool {
	for _, t := range tools {
		if t.Name == name {
			return true
		}
	}
	return false
}

// mcpCall calls an MCP tool that node ns was offered, once per key
// (journaled).
func (r *run) mcpCall(ctx context.Context, ns *nodeState, key string, c llm.ToolCall) toolOutcome {
	if data, ok, _ := r.journaled(key); ok {
		var rec toolRecord
		if json.Unmarshal(data, &rec) == nil {
			r.toolDone(ns, time.Duration(rec.Millis)*time.Millisecond, rec.IsErr)
			return toolOutcome{content: rec.Output, isErr: rec.IsErr}
		}
	}
	// The arguments leave Hive: screened like a report, a blocking
	// finding refused, a holding one (or a tool the policy names) put to
	// a person.
	fs, err := r.screenOut(ns, screen.Tool, "call of "+c.Name, string(c.Input)+"\n"+jsonStrings(c.Input))
	if err != nil {
		return toolOutcome{content: err.Error() + ". The call was not made.", isErr: true}
	}
	why := ""
	for _, f := range fs {
		if f.Action == screen.Hold {
			why = fmt.Sprintf(", held by the policy's %s", f)
			break
		}
	}
	if why != "" || r.e.opts.Approval.needsTool(c.Name) {
		a, err := r.awaitApproval(ctx, ns, key, "tool", fmt.Sprintf("%s calls %s%s with %s", ns.ID, c.Name, why, c.Input))
		if err != nil {
			return toolOutcome{content: fmt.Sprintf("the call to %s was cancelled", c.Name), isErr: true}
		}
		if a.Status != journal.ApprovalApproved {
			return toolOutcome{content: fmt.Sprintf("the call to %s was not allowed: %s; do without it", c.Name, refusal(a)), isErr: true}
		}
	}
	start := time.Now()
	rec := toolRecord{}
	m, err := r.mcpManager()
	var res mcp.Result
	if err == nil {
		res, err = m.Call(ctx, c.Name, c.Input)
	}
	took := time.Since(start)
	switch {
	case errors.Is(err, mcp.ErrBadArguments):
		// The model's mistake, told to it; nothing reached the server.
		return toolOutcome{content: err.Error(), isErr: true, malformed: true}
	case err != nil && (ctx.Err() != nil || errors.Is(err, mcp.ErrClosed)):
		// The node or the run is stopping: not the tool's answer, and
		// not journaled.
		return toolOutcome{content: fmt.Sprintf("the call to %s was cancelled", c.Name), isErr: true}
	case err != nil:
		rec.Output, rec.IsErr = err.Error(), true
	default:
		rec.Output, rec.IsErr = res.Text, res.IsError
		if res.Full != "" {
			id := strings.Replace(key, "/tool-", "/mcp-", 1)
			if err := r.e.store.PutArtifact(ctx, r.id, id, ns.ID, id[strings.IndexByte(id, '/')+1:], []byte(r.e.opts.Redact.String(res.Full))); err == nil {
				rec.Artifact = id
				rec.Output += fmt.Sprintf("\n[the whole output, %d bytes, is the artifact %s]", len(res.Full), id)
				r.publish(Event{Type: EventArtifact, Text: id})
			}
		}
	}
	rec.Output = r.e.opts.Redact.String(rec.Output)
	rec.Millis = took.Milliseconds()
	r.toolDone(ns, took, rec.IsErr)
	data, _ := json.Marshal(rec)
	if err := r.e.store.PutStep(ctx, r.id, key, data); err != nil {
		r.e.log.Warn("journal MCP call", "run", r.id, "key", key, "err", err)
	}
	text := fmt.Sprintf("%s %s", c.Name, took.Round(time.Millisecond))
	if rec.IsErr {
		text += ": " + clip(rec.Output, 300)
	}
	r.publish(Event{Type: EventTool, Node: ptr(ns.snapshot(r)), Text: text})
	return toolOutcome{content: rec.Output, isErr: rec.IsErr}
}
