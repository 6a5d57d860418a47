package swarm

import (
	"os"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// TestHostileJournalAmplification: every write_file and edit_file
// journals the whole changed file, so a worker that grows a file to 4 MiB
// and then edits it back and forth in one turn after another wrote about
// 4 MiB to the journal per ~60-byte call (257 MiB in 65 calls). A node's
// journaled changes are bounded.
func TestHostileJournalAmplification(t *testing.T) {
	dir := workspaceDir(t, map[string]string{"a.txt": "hello\n"})
	grow := func() llmtest.ToolCall {
		return toolCall("edit_file", map[string]any{"path": "big.txt", "old_string": "x", "new_string": "xxxxxxxxxxxxxxxx", "replace_all": true})
	}
	const toggles = 60
	var flip []llmtest.ToolCall
	for i := range toggles {
		o, n := "x", "y"
		if i%2 == 1 {
			o, n = "y", "x"
		}
		flip = append(flip, toolCall("edit_file", map[string]any{"path": "big.txt", "old_string": o, "new_string": n, "replace_all": true}))
	}
	turnsOf := [][]llmtest.ToolCall{
		{toolCall("write_file", map[string]any{"path": "big.txt", "content": "xxxx"})},
		{grow()}, {grow()}, {grow()}, {grow()}, {grow()},
		flip,
		{toolCall("submit", map[string]any{"report": "ok"})},
	}
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			return leadOneTask(c, TaskSpec{Name: "w", Instructions: "work"})
		}
		n := turns(c)
		if n >= len(turnsOf) {
			n = len(turnsOf) - 1
		}
		return llmtest.Reply{ToolCalls: turnsOf[n]}
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "t", BudgetUSD: 1e9, Workspace: dir})
	var size int64
	for _, suf := range []string{"", "-wal"} {
		if fi, err := os.Stat(hs.dbPath + suf); err == nil {
			size += fi.Size()
		}
	}
	t.Logf("run %s, %d tokens; journal %d MiB after %d edit calls of ~60 bytes of arguments", res.Status, res.Usage.InputTokens+res.Usage.OutputTokens, size>>20, toggles+5)
	if size > 100<<20 {
		t.Errorf("journal grew to %d MiB", size>>20)
	}
	// The worker was told it had written too much, and the run went on.
	refused := false
	for _, c := range hs.srv.Calls() {
		for _, r := range c.ToolResults() {
			refused = refused || strings.Contains(r.Content, "MiB of file changes, the most one task may")
		}
	}
	if !refused || res.Status != StatusDone {
		t.Errorf("refused %v, run %s", refused, res.Status)
	}
}
