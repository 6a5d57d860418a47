package swarm

import (
	"encoding/json"
	"time"

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
	Calls   int          `json:"calls"`
	Started time.Time    `json:"started,omitempty"`
	Ended   time.Time    `json:"ended,omitempty"`
	// Report is what the node reported (capped), or its final answer.
	Report string `json:"report,omitempty"`
	Error  string `json:"error,omitempty"`
	// Verdict is the last verification verdict on the node's result.
	Verdict *verify.Verdict `json:"verdict,omitempty"`
}

func nodeJSON(n *Node) []byte {
	b, err := json.Marshal(n)
	if err != nil {
		panic(err) // Node holds only plain data
	}
	return b
}
