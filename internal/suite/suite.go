// Package suite loads the benchmark sets Hive evaluates on, together with
// the answers real models gave to them, from the recorded data described in
// the data README (../shared/data for this team, or a directory that
// "hive data fetch" filled from the pinned upstream commits).
//
// Two kinds of set exist. A [Code] set ([LoadCode]; HumanEval) holds
// [CodeProblem]s: a prompt to complete, hidden tests that decide whether an
// answer is right, and visible tests that a system may run at run time.
// A problem builds the Python programs that run those tests
// ([CodeProblem.HiddenProgram], [CodeProblem.VisibleProgram]); running them
// is the sandbox's job, not this package's. A [Math] set ([LoadGSM8K];
// GSM8K) holds word problems with a numeric gold answer, and
// [verify.FinalNumber] and [Correct] grade a free-text answer against it.
//
// Both kinds carry, per model, the answers that model really gave to each
// problem ([Code.Answers], [Math.Answers]), keyed by problem id. Package
// llm/replay turns those into a model that answers requests with them.
//
// The data is never part of the repository: [FindData] says where it is,
// and [DataFiles] lists every file with its upstream commit and sha256.
package suite

import (
	"cmp"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// models returns the sorted keys of a per-model answer map.
func models(answers map[string]map[string][]string) []string {
	names := make([]string, 0, len(answers))
	for name := range answers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// compareIDs orders task ids naturally: "HumanEval/2" before "HumanEval/10".
func compareIDs(a, b string) int {
	pa, na := splitID(a)
	pb, nb := splitID(b)
	if c := strings.Compare(pa, pb); c != 0 {
		return c
	}
	if na >= 0 && nb >= 0 {
		if c := cmp.Compare(na, nb); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}

func splitID(id string) (string, int) {
	i := strings.LastIndexAny(id, "/-_")
	if i < 0 {
		return id, -1
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil {
		return id, -1
	}
	return id[:i], n
}

// LoadAll loads the two sets under a data directory (see [FindData]):
// root/humaneval with [LoadCode] and root/gsm8k with [LoadGSM8K], at once.
func LoadAll(root string) (*Code, *Math, error) {
	var (
		code *Code
		math *Math
		g    errgroup.Group
	)
	g.Go(func() (err error) { code, err = LoadCode(filepath.Join(root, "humaneval")); return err })
	g.Go(func() (err error) { math, err = LoadGSM8K(filepath.Join(root, "gsm8k")); return err })
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return code, math, nil
}
