package verify_test

import (
	"os"
	"slices"
	"testing"

	"github.com/hive-swarm/hive/internal/suite"
	"github.com/hive-swarm/hive/internal/verify"
)

// TestDroppedDefsRecorded: on HumanEval's recorded answers the check
// fails only what drops a given definition: no canonical solution, no
// gpt-4 answer, and gpt-3.5's HumanEval/38 and /50, which drop the
// prompt's encode_cyclic and encode_shift (the hidden tests call them).
func TestDroppedDefsRecorded(t *testing.T) {
	loc, err := suite.Locate("", os.Getenv)
	if err != nil || !loc.Exists {
		t.Skipf("benchmark data not found (set HIVE_DATA or provide ../shared/data next to the repository): %v", err)
	}
	c, err := suite.LoadCode(loc.Dir + "/humaneval")
	if err != nil {
		t.Fatal(err)
	}
	flagged := map[string][]string{}
	for _, p := range c.Problems {
		if d := verify.DroppedDefs(p.Prompt, p.Prompt+p.CanonicalSolution); len(d) > 0 {
			t.Errorf("%s canonical solution flagged: %q", p.ID, d)
		}
		for _, m := range []string{"gpt-3.5-turbo-0613", "gpt-4-1106-preview"} {
			if d := verify.DroppedDefs(p.Prompt, c.Answers(m)[p.ID][0]); len(d) > 0 {
				flagged[m] = append(flagged[m], p.ID)
			}
		}
	}
	if !slices.Equal(flagged["gpt-3.5-turbo-0613"], []string{"HumanEval/38", "HumanEval/50"}) || len(flagged["gpt-4-1106-preview"]) != 0 {
		t.Errorf("flagged %v; want gpt-3.5's HumanEval/38 and /50 only", flagged)
	}
	t.Logf("flagged: %v", flagged)
}
