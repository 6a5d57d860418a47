package swarm

import (
	"encoding/json"
	"fmt"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/verify"
)

// The protocol's tool names (DESIGN.md, "The lead/worker protocol").
const (
	toolDelegate     = "delegate"
	toolAwait        = "await"
	toolCancel       = "cancel"
	toolReadArtifact = "read_artifact"
	toolFinish       = "finish"
	toolSubmit       = "submit"
	toolRunCode      = "run_code"
)

// TaskSpec is one task of a delegate call.
type TaskSpec struct {
	Name         string          `json:"name"`
	Instructions string          `json:"instructions"`
	Tier         *int            `json:"tier,omitempty"`
	OutputSchema json.RawMessage `json:"output_schema,omitempty"`
	Verify       *verify.Spec    `json:"verify,omitempty"`
	// FreshEscalation gives an escalated attempt the task alone, without
	// the earlier attempts and the verifiers' evidence (which verifiers
	// still see: a cross-check compares with the earlier answers). It is
	// cheaper, and it is what an answer recorded for the task alone
	// (package replay) was given; a live model may do better with them.
	FreshEscalation bool `json:"fresh_escalation,omitempty"`

	// wave is the delegate call the task came in (its shared context and
	// cache key); nil for tasks a run starts itself.
	wave *wave
}

type delegateArgs struct {
	Tasks []TaskSpec `json:"tasks"`
	// Context is what every task of the call needs (a document, a spec, a
	// style guide): each worker gets it ahead of its own instructions, as
	// a prefix providers cache, so that it is paid for about once.
	Context string `json:"context,omitempty"`
	// ShareTask gives every worker the run's whole task (the job the
	// lead was given, with any material in it) the same way.
	ShareTask bool  `json:"share_task,omitempty"`
	Wait      *bool `json:"wait,omitempty"`
}

type awaitArgs struct {
	IDs      []string `json:"ids"`
	Mode     string   `json:"mode,omitempty"`
	TimeoutS float64  `json:"timeout_s,omitempty"`
}

type cancelArgs struct {
	IDs    []string `json:"ids"`
	Reason string   `json:"reason,omitempty"`
}

type readArtifactArgs struct {
	ID     string `json:"id"`
	Offset int    `json:"offset,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

type finishArgs struct {
	Answer    string   `json:"answer"`
	Artifacts []string `json:"artifacts,omitempty"`
	// Patches names the workers' patches to merge into the run's patch
	// (a run with a workspace); default every done task's.
	Patches []string `json:"patches,omitempty"`
}

type submitArgs struct {
	Report    string            `json:"report"`
	Artifacts map[string]string `json:"artifacts,omitempty"`
}

type runCodeArgs struct {
	Language string `json:"language"`
	Code     string `json:"code"`
	Stdin    string `json:"stdin,omitempty"`
}

const taskSchema = `{"type":"object","properties":{
 "name":{"type":"string","description":"short name of the task"},
 "instructions":{"type":"string","description":"everything the worker needs: it sees nothing else"},
 "tier":{"type":"integer","description":"worker tier, 0 = cheapest (default)"},
 "output_schema":{"type":"object","description":"JSON Schema the report must satisfy"},
 "verify":{"type":"object","description":"how to check the result: {kind: tests, code} | {kind: schema, schema} | {kind: vote, n} | {kind: judge, rubric} | {kind: command, check: NAME} (a check the user configured; the task prompt lists them) | {kind: cross, code, n?, models?} (tests, then agreement with independent answers on inputs derived from them) | {kind: arithmetic} (recomputes the calculations a numeric answer shows); gate: true skips the check at the top tier"}},
 "required":["name","instructions"]}`

func tool(name, desc, schema string) llm.Tool {
	return llm.Tool{Name: name, Description: desc, Schema: json.RawMessage(schema)}
}

var (
	delegateTool = tool(toolDelegate, "Dispatch tasks to workers that run in parallel. With wait (default true) returns their reports; without, returns their node ids at once (use await). Put material every task needs in context, once, rather than in each task's instructions: it is sent ahead of each task and cached, at a tenth of the price.",
		`{"type":"object","properties":{"tasks":{"type":"array","items":`+taskSchema+`},"context":{"type":"string","description":"material every task needs (a document, a spec, a style guide); each worker sees it before its own instructions"},"share_task":{"type":"boolean","description":"give every worker the whole job you were given (with any document in it) before its own instructions, instead of copying parts of it into each task"},"wait":{"type":"boolean"}},"required":["tasks"]}`)
	awaitTool = tool(toolAwait, "Wait for workers started with wait=false. mode all (default) or any; timeout_s bounds the wait.",
		`{"type":"object","properties":{"ids":{"type":"array","items":{"type":"string"}},"mode":{"type":"string","enum":["all","any"]},"timeout_s":{"type":"number"}},"required":["ids"]}`)
	cancelTool = tool(toolCancel, "Cancel running workers.",
		`{"type":"object","properties":{"ids":{"type":"array","items":{"type":"string"}},"reason":{"type":"string"}},"required":["ids"]}`)
	readArtifactTool = tool(toolReadArtifact, "Read a slice of an artifact that a report referenced.",
		`{"type":"object","properties":{"id":{"type":"string"},"offset":{"type":"integer"},"limit":{"type":"integer"}},"required":["id"]}`)
	finishTool = tool(toolFinish, "End the run with the final answer.",
		`{"type":"object","properties":{"answer":{"type":"string"},"artifacts":{"type":"array","items":{"type":"string"}}},"required":["answer"]}`)
	// finishPatchesTool is finish in a run with a workspace.
	finishPatchesTool = tool(toolFinish, "End the run with the final answer. The workers' patches are merged into the run's patch: by default those of every task that ended done, in task order; patches names them instead (NODE/patch ids, in order).",
		`{"type":"object","properties":{"answer":{"type":"string"},"artifacts":{"type":"array","items":{"type":"string"}},"patches":{"type":"array","items":{"type":"string"}}},"required":["answer"]}`)
	submitTool = tool(toolSubmit, "Submit your result; this ends your task.",
		`{"type":"object","properties":{"report":{"type":"string"},"artifacts":{"type":"object","additionalProperties":{"type":"string"}}},"required":["report"]}`)
	runCodeTool = tool(toolRunCode, "Run code in a sandbox (no network) and get its exit status and output.",
		`{"type":"object","properties":{"language":{"type":"string","enum":["python","javascript","shell"]},"code":{"type":"string"},"stdin":{"type":"string"}},"required":["language","code"]}`)
)

// decodeArgs parses a tool call's arguments into v, with an error a model
// can act on.
func decodeArgs(call llm.ToolCall, v any) error {
	in := call.Input
	if len(in) == 0 {
		in = json.RawMessage("{}")
	}
	if err := json.Unmarshal(in, v); err != nil {
		return fmt.Errorf("the arguments of %s are not valid JSON for its schema: %v; send a JSON object", call.Name, err)
	}
	return nil
}
