package suite

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// A CodeProblem is one programming task: complete Prompt so that the
// function EntryPoint passes Test.
type CodeProblem struct {
	ID                string // task id, e.g. "HumanEval/0"
	Prompt            string // signature and docstring to complete
	EntryPoint        string // name of the function under test
	CanonicalSolution string // reference body (follows Prompt)
	// Test holds the hidden tests: a check(candidate) function, sometimes
	// followed by its own check(...) call.
	Test string
	// GivenTests are the visible asserts a system may run at run time.
	GivenTests []string
}

// checkCall finds a top-level call of check in a test file.
var checkCall = regexp.MustCompile(`(?m)^check\s*\(`)

// HiddenProgram returns the Python program that runs the hidden tests on
// program (a full solution): program, Test, then check(EntryPoint) unless
// Test already calls check itself. It exits non-zero when a test fails.
func (p *CodeProblem) HiddenProgram(program string) string {
	var b strings.Builder
	b.Grow(len(program) + len(p.Test) + len(p.EntryPoint) + 16)
	b.WriteString(program)
	b.WriteString("\n\n")
	b.WriteString(p.Test)
	if !checkCall.MatchString(p.Test) {
		b.WriteString("\n\ncheck(")
		b.WriteString(p.EntryPoint)
		b.WriteString(")")
	}
	b.WriteString("\n")
	return b.String()
}

// VisibleProgram returns the Python program that runs the visible tests
// (GivenTests) on program. With no given tests it only runs program.
func (p *CodeProblem) VisibleProgram(program string) string {
	var b strings.Builder
	b.WriteString(program)
	b.WriteString("\n\n")
	for _, t := range p.GivenTests {
		b.WriteString(t)
		b.WriteString("\n")
	}
	return b.String()
}

// Complete returns a full program from an answer that may be only the
// function body: the answer itself when it defines EntryPoint at top
// level, Prompt followed by the answer otherwise.
func (p *CodeProblem) Complete(answer string) string {
	if definesTopLevel(answer, p.EntryPoint) {
		return answer
	}
	return p.Prompt + answer
}

func definesTopLevel(src, name string) bool {
	for line := range strings.Lines(src) {
		rest, ok := strings.CutPrefix(line, "def ")
		if !ok {
			rest, ok = strings.CutPrefix(line, "async def ")
		}
		if ok {
			rest = strings.TrimLeft(rest, " \t")
			if after, ok := strings.CutPrefix(rest, name); ok && strings.HasPrefix(strings.TrimLeft(after, " \t"), "(") {
				return true
			}
		}
	}
	return false
}

// Code is a set of programming problems with the answers models gave.
type Code struct {
	Name     string         // the directory's base name, e.g. "humaneval"
	Problems []*CodeProblem // in the problem file's order, else by task id
	byID     map[string]*CodeProblem
	answers  map[string]map[string][]string // model → task id → full programs
	// outputs holds, in the same places as answers, what the model itself
	// produced: the program without a prompt that the recording or this
	// package put in front of it.
	outputs map[string]map[string][]string
}

// Problem returns the problem with task id, or nil.
func (c *Code) Problem(id string) *CodeProblem { return c.byID[id] }

// Models returns the names of the models with recorded answers, sorted.
func (c *Code) Models() []string { return models(c.answers) }

// Answers returns model's answers by task id, each a full program (a
// recorded body has the prompt prepended). Most models have one answer per
// problem; sampled models (codegen-16b) have many. It returns nil for an
// unknown model. The map is shared: do not modify it.
func (c *Code) Answers(model string) map[string][]string { return c.answers[model] }

// Outputs returns what model itself produced for each answer of
// [Code.Answers], at the same task id and index: the answer without the
// problem's prompt when the prompt was put in front of it, by the
// recording (a file that stores prompt + completion) or by this package (a
// body-only answer). It is what a model is billed output tokens for; a
// copy of the prompt is input, not output. The map is shared: do not
// modify it.
func (c *Code) Outputs(model string) map[string][]string { return c.outputs[model] }

// sampleModelNames renames multi-sample files whose upstream file name is
// not a model name.
var sampleModelNames = map[string]string{
	"codegen16b-100samples": "codegen-16b",
}

// codeRecord is one line of any of the code set's JSON-lines files.
type codeRecord struct {
	TaskID            string   `json:"task_id"`
	Prompt            string   `json:"prompt"`
	EntryPoint        string   `json:"entry_point"`
	CanonicalSolution string   `json:"canonical_solution"`
	Test              string   `json:"test"`
	GivenTests        []string `json:"given_tests"`
	Solution          *string  `json:"solution"`
	Samples           []string `json:"samples"`
}

type codeFile struct {
	name    string // file name without extension
	seed    bool   // from seeds/
	records []codeRecord
}

// LoadCode loads a code set from dir, laid out like the humaneval
// directory of the data README:
//
//   - seeds/*.jsonl: one file per model (the model's name is the file
//     name without .jsonl), one line per problem with task_id, prompt,
//     entry_point, test, canonical_solution, given_tests and solution (a
//     full program, or only the body, in which case the prompt is
//     prepended);
//   - optionally *.jsonl or *.jsonl.gz at top level: problem files (lines
//     with task_id, prompt, entry_point, test; HumanEval.jsonl.gz), and
//     multi-sample files (lines {"prompt", "samples": [bodies]}, matched to
//     problems by task_id when present, else by the function the prompt
//     defines and the longest common prefix with a problem's prompt).
//
// Problems come from the problem files when there are any, else from the
// seed files; missing given tests are filled from any seed file with the
// same task id.
func LoadCode(dir string) (*Code, error) {
	var paths []string
	top, err := filepath.Glob(filepath.Join(dir, "*.jsonl*"))
	if err != nil {
		return nil, err
	}
	seeds, err := filepath.Glob(filepath.Join(dir, "seeds", "*.jsonl"))
	if err != nil {
		return nil, err
	}
	paths = append(append(paths, top...), seeds...)
	if len(seeds) == 0 {
		return nil, fmt.Errorf("load code set %s: no seeds/*.jsonl files", dir)
	}
	files := make([]codeFile, len(paths))
	var g errgroup.Group
	for i, path := range paths {
		if !strings.HasSuffix(path, ".jsonl") && !strings.HasSuffix(path, ".jsonl.gz") {
			continue
		}
		g.Go(func() error {
			recs, err := readCodeRecords(path)
			if err != nil {
				return err
			}
			name := filepath.Base(path)
			name = strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".jsonl")
			files[i] = codeFile{name: name, seed: i >= len(top), records: recs}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("load code set %s: %w", dir, err)
	}
	c := &Code{
		Name:    filepath.Base(dir),
		byID:    make(map[string]*CodeProblem),
		answers: make(map[string]map[string][]string),
		outputs: make(map[string]map[string][]string),
	}
	// Problems: problem files first, then seeds for what they lack.
	for _, f := range files {
		if f.seed || f.records == nil || isSampleFile(f.records) {
			continue
		}
		for _, r := range f.records {
			c.addProblem(r)
		}
	}
	fromSeeds := len(c.Problems) == 0
	for _, f := range files {
		if !f.seed {
			continue
		}
		for _, r := range f.records {
			if fromSeeds {
				c.addProblem(r)
			}
			if p := c.byID[r.TaskID]; p != nil && len(p.GivenTests) == 0 && len(r.GivenTests) > 0 {
				p.GivenTests = r.GivenTests
			}
		}
	}
	if fromSeeds {
		slices.SortStableFunc(c.Problems, func(a, b *CodeProblem) int { return compareIDs(a.ID, b.ID) })
	}
	// Answers.
	for _, f := range files {
		switch {
		case f.seed:
			if err := c.addSeedAnswers(f); err != nil {
				return nil, fmt.Errorf("load code set %s: %w", dir, err)
			}
		case f.records != nil && isSampleFile(f.records):
			if err := c.addSampleAnswers(f); err != nil {
				return nil, fmt.Errorf("load code set %s: %w", dir, err)
			}
		}
	}
	return c, nil
}

func (c *Code) addProblem(r codeRecord) {
	if r.TaskID == "" || c.byID[r.TaskID] != nil {
		return
	}
	p := &CodeProblem{
		ID:                r.TaskID,
		Prompt:            r.Prompt,
		EntryPoint:        r.EntryPoint,
		CanonicalSolution: r.CanonicalSolution,
		Test:              r.Test,
		GivenTests:        r.GivenTests,
	}
	c.Problems = append(c.Problems, p)
	c.byID[p.ID] = p
}

func (c *Code) addSeedAnswers(f codeFile) error {
	byID := make(map[string][]string, len(f.records))
	outs := make(map[string][]string, len(f.records))
	prefixed := promptPrefixed(c, f.records)
	for _, r := range f.records {
		p := c.byID[r.TaskID]
		if p == nil {
			return fmt.Errorf("seeds/%s.jsonl: unknown task %q", f.name, r.TaskID)
		}
		if r.Solution == nil {
			return fmt.Errorf("seeds/%s.jsonl: task %s has no solution", f.name, r.TaskID)
		}
		out := *r.Solution
		if prefixed {
			// The recording's own prompt, which may differ from the
			// problem file's (LLMDebugger's HumanEval/116 has corrected
			// examples), else the problem's.
			if r.Prompt != "" && strings.HasPrefix(out, r.Prompt) {
				out = out[len(r.Prompt):]
			} else {
				out = strings.TrimPrefix(out, p.Prompt)
			}
		}
		byID[r.TaskID] = append(byID[r.TaskID], p.Complete(*r.Solution))
		outs[r.TaskID] = append(outs[r.TaskID], out)
	}
	c.answers[f.name] = byID
	c.outputs[f.name] = outs
	return nil
}

// promptPrefixed reports whether a seed file was recorded as prompt +
// completion: nearly all of its solutions (90% or more) begin with their
// problem's prompt, byte for byte. LLMDebugger's seeds for StarCoder,
// CodeLlama and gpt-4-1106-preview are (163 of 164 each); its
// gpt-3.5-turbo-0613 seeds are not (6 of 164: a chat model that restated
// the function, which it is billed for).
func promptPrefixed(c *Code, recs []codeRecord) bool {
	n := 0
	for _, r := range recs {
		p := c.byID[r.TaskID]
		if r.Solution == nil || p == nil {
			continue
		}
		if r.Prompt != "" && strings.HasPrefix(*r.Solution, r.Prompt) || p.Prompt != "" && strings.HasPrefix(*r.Solution, p.Prompt) {
			n++
		}
	}
	return len(recs) > 0 && n*10 >= len(recs)*9
}

func (c *Code) addSampleAnswers(f codeFile) error {
	name := f.name
	if n, ok := sampleModelNames[name]; ok {
		name = n
	}
	byEntry := make(map[string][]*CodeProblem)
	for _, p := range c.Problems {
		byEntry[p.EntryPoint] = append(byEntry[p.EntryPoint], p)
	}
	byID := make(map[string][]string, len(f.records))
	outs := make(map[string][]string, len(f.records))
	for i, r := range f.records {
		p := c.byID[r.TaskID]
		if p == nil {
			p = matchPrompt(byEntry, r.Prompt)
		}
		if p == nil {
			return fmt.Errorf("%s.jsonl line %d: no problem matches its prompt", f.name, i+1)
		}
		if _, dup := byID[p.ID]; dup {
			return fmt.Errorf("%s.jsonl line %d: second set of samples for %s", f.name, i+1, p.ID)
		}
		programs := make([]string, len(r.Samples))
		for j, s := range r.Samples {
			if definesTopLevel(s, p.EntryPoint) {
				programs[j] = s
			} else {
				programs[j] = r.Prompt + s
			}
		}
		byID[p.ID] = programs
		outs[p.ID] = r.Samples // what the model produced: a body, or a whole program
	}
	c.answers[name] = byID
	c.outputs[name] = outs
	return nil
}

// topDef finds top-level function definitions.
var topDef = regexp.MustCompile(`(?m)^def\s+(\w+)\s*\(`)

// matchPrompt finds the problem a sampled prompt was made from: the last
// function the prompt defines is the entry point, and among problems with
// that entry point the one sharing the longest prefix wins.
func matchPrompt(byEntry map[string][]*CodeProblem, prompt string) *CodeProblem {
	defs := topDef.FindAllStringSubmatch(prompt, -1)
	if len(defs) == 0 {
		return nil
	}
	var best *CodeProblem
	bestLen := -1
	for _, p := range byEntry[defs[len(defs)-1][1]] {
		if n := commonPrefix(p.Prompt, prompt); n > bestLen {
			best, bestLen = p, n
		}
	}
	return best
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func isSampleFile(recs []codeRecord) bool {
	return len(recs) > 0 && recs[0].Samples != nil
}

// bufPool recycles line buffers across concurrent file reads.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

func readCodeRecords(path string) ([]codeRecord, error) {
	var recs []codeRecord
	err := readLines(path, func(line []byte) error {
		var r codeRecord
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		recs = append(recs, r)
		return nil
	})
	return recs, err
}

// readLines calls fn for each non-blank line of the JSON-lines file at
// path, gunzipping a .gz file.
func readLines(path string, fn func(line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		defer zr.Close()
		r = zr
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	sc := bufio.NewScanner(r)
	sc.Buffer(*bp, 64<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("%s line %d: %w", filepath.Base(path), n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}
