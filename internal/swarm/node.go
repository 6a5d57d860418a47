package swarm

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/hive-swarm/hive/internal/jsonstr"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/verify"
)

// Status is where a node or a run is in its life.
type Status string

const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusVerifying Status = "verifying"
	StatusRepairing Status = "repairing"
	StatusEscalated Status = "escalated" // failed here; the task moved up a tier
	StatusDone      Status = "done"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
	// StatusInterrupted is a run whose process stopped (Ctrl-C, shutdown)
	// before it ended; hive resume continues it.
	StatusInterrupted Status = "interrupted"
)

// Final reports whether s is an end state.
func (s Status) Final() bool {
	return s == StatusDone || s == StatusFailed || s == StatusCancelled || s == StatusEscalated
}

// Role is what a node does in the tree.
type Role string

const (
	RoleLead     Role = "lead"
	RoleWorker   Role = "worker"
	RoleVerifier Role = "verifier"
	RoleScreen   Role = "screen" // a classifier reading the task before the lead starts ([policy.screen.classifier])
)

// A Node is one model conversation in a run's tree, as journaled and shown.
type Node struct {
	ID     string `json:"id"`
	RunID  string `json:"run_id"`
	Parent string `json:"parent,omitempty"`
	Role   Role   `json:"role"`
	Name   string `json:"name"`
	Model  string `json:"model"`
	Tier   int    `json:"tier"`
	Depth  int    `json:"depth"`
	Status Status `json:"status"`
	// Attempt counts repairs (0 for the first try).
	Attempt int          `json:"attempt,omitempty"`
	Usage   llm.Usage    `json:"usage"`
	Cost    price.Amount `json:"cost_nanos"`
	// CacheSaved is what prompt caching saved the node's calls: their
	// prompts' price uncached less what they cost (negative while cache
	// writes, priced above input, outweigh the reads).
	CacheSaved price.Amount `json:"cache_saved_nanos,omitempty"`
	Calls      int          `json:"calls"`
	// WaitMillis is the time the node's model calls waited for their
	// models' rate limits (admission, a 429's retry-after, backoff);
	// Retries how many of its calls were sent again.
	WaitMillis int64 `json:"wait_ms,omitempty"`
	Retries    int   `json:"retries,omitempty"`
	// Hedges counts the node's calls that were sent twice (package
	// hedge), HedgeWins those whose second copy answered first, and
	// HedgeCost what the copies whose answers were not taken cost
	// (included in Cost).
	// BatchCalls counts the node's calls sent through a batch API.
	BatchCalls int          `json:"batch_calls,omitempty"`
	Hedges     int          `json:"hedges,omitempty"`
	HedgeWins  int          `json:"hedge_wins,omitempty"`
	HedgeCost  price.Amount `json:"hedge_cost_nanos,omitempty"`
	// ToolCalls counts the node's calls of tools that act (run_code, the
	// workspace's, MCP servers'); ToolErrors those that failed, and
	// ToolMillis the time they took.
	ToolCalls  int       `json:"tool_calls,omitempty"`
	ToolErrors int       `json:"tool_errors,omitempty"`
	ToolMillis int64     `json:"tool_ms,omitempty"`
	Started    time.Time `json:"started,omitempty"`
	Ended      time.Time `json:"ended,omitempty"`
	// Report is what the node reported (capped), or its final answer.
	Report string `json:"report,omitempty"`
	Error  string `json:"error,omitempty"`
	// Verdict is the last verification verdict on the node's result.
	Verdict *verify.Verdict `json:"verdict,omitempty"`
	// Anomalies are what went wrong that should not: a server that billed
	// more than a call could cost, say.
	Anomalies []string `json:"anomalies,omitempty"`
}

// nodeJSON returns n encoded exactly as json.Marshal encodes it, written
// directly: a node is encoded on every state change, for the journal and
// the event that announces it, and reflection made that a visible share
// of a swarm's CPU.
func nodeJSON(n *Node) []byte {
	b := make([]byte, 0, 320+len(n.Report)+len(n.Error))
	b = append(b, `{"id":`...)
	b = jsonstr.Append(b, n.ID, true)
	b = append(b, `,"run_id":`...)
	b = jsonstr.Append(b, n.RunID, true)
	b = appendField(b, "parent", n.Parent)
	b = append(b, `,"role":`...)
	b = jsonstr.Append(b, string(n.Role), true)
	b = append(b, `,"name":`...)
	b = jsonstr.Append(b, n.Name, true)
	b = append(b, `,"model":`...)
	b = jsonstr.Append(b, n.Model, true)
	b = append(b, `,"tier":`...)
	b = strconv.AppendInt(b, int64(n.Tier), 10)
	b = append(b, `,"depth":`...)
	b = strconv.AppendInt(b, int64(n.Depth), 10)
	b = append(b, `,"status":`...)
	b = jsonstr.Append(b, string(n.Status), true)
	if n.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(n.Attempt), 10)
	}
	b = append(b, `,"usage":{"input_tokens":`...)
	b = strconv.AppendInt(b, n.Usage.InputTokens, 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, n.Usage.OutputTokens, 10)
	if n.Usage.CacheWriteTokens != 0 {
		b = append(b, `,"cache_write_tokens":`...)
		b = strconv.AppendInt(b, n.Usage.CacheWriteTokens, 10)
	}
	if n.Usage.CacheReadTokens != 0 {
		b = append(b, `,"cache_read_tokens":`...)
		b = strconv.AppendInt(b, n.Usage.CacheReadTokens, 10)
	}
	if n.Usage.CacheWrite1hTokens != 0 {
		b = append(b, `,"cache_write_1h_tokens":`...)
		b = strconv.AppendInt(b, n.Usage.CacheWrite1hTokens, 10)
	}
	b = append(b, `},"cost_nanos":`...)
	b = strconv.AppendInt(b, int64(n.Cost), 10)
	if n.CacheSaved != 0 {
		b = append(b, `,"cache_saved_nanos":`...)
		b = strconv.AppendInt(b, int64(n.CacheSaved), 10)
	}
	b = append(b, `,"calls":`...)
	b = strconv.AppendInt(b, int64(n.Calls), 10)
	if n.WaitMillis != 0 {
		b = append(b, `,"wait_ms":`...)
		b = strconv.AppendInt(b, n.WaitMillis, 10)
	}
	if n.Retries != 0 {
		b = append(b, `,"retries":`...)
		b = strconv.AppendInt(b, int64(n.Retries), 10)
	}
	if n.BatchCalls != 0 {
		b = append(b, `,"batch_calls":`...)
		b = strconv.AppendInt(b, int64(n.BatchCalls), 10)
	}
	if n.Hedges != 0 {
		b = append(b, `,"hedges":`...)
		b = strconv.AppendInt(b, int64(n.Hedges), 10)
	}
	if n.HedgeWins != 0 {
		b = append(b, `,"hedge_wins":`...)
		b = strconv.AppendInt(b, int64(n.HedgeWins), 10)
	}
	if n.HedgeCost != 0 {
		b = append(b, `,"hedge_cost_nanos":`...)
		b = strconv.AppendInt(b, int64(n.HedgeCost), 10)
	}
	if n.ToolCalls != 0 {
		b = append(b, `,"tool_calls":`...)
		b = strconv.AppendInt(b, int64(n.ToolCalls), 10)
	}
	if n.ToolErrors != 0 {
		b = append(b, `,"tool_errors":`...)
		b = strconv.AppendInt(b, int64(n.ToolErrors), 10)
	}
	if n.ToolMillis != 0 {
		b = append(b, `,"tool_ms":`...)
		b = strconv.AppendInt(b, n.ToolMillis, 10)
	}
	b = append(b, `,"started":`...)
	b = appendJSONTime(b, n.Started)
	b = append(b, `,"ended":`...)
	b = appendJSONTime(b, n.Ended)
	b = appendField(b, "report", n.Report)
	b = appendField(b, "error", n.Error)
	if n.Verdict != nil {
		v, err := json.Marshal(n.Verdict)
		if err != nil {
			panic(err) // a Verdict holds only plain data
		}
		b = append(b, `,"verdict":`...)
		b = append(b, v...)
	}
	if len(n.Anomalies) > 0 {
		b = append(b, `,"anomalies":[`...)
		for i, a := range n.Anomalies {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.Append(b, a, true)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendJSONTime appends t as time.Time's MarshalJSON writes it (for the
// years it accepts).
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendField appends ,"key":value for a value that is not empty
// (omitempty).
func appendField(b []byte, key, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return jsonstr.Append(b, value, true)
}
