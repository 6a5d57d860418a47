package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/swarm"
)

// exported matches a line that declares an exported function or method.
var exported = regexp.MustCompile(`^func (\([^)]*\) )?([A-Z]\w*)\(`)

// docWorker scripts a worker asked to document the exported functions of
// file: it reads the file, adds a comment above each exported function
// that has none (with broken, its first try also opens a brace too many),
// and submits; sent back with a check's evidence, it reads the file again
// and mends what it broke.
func docWorker(c *llmtest.Call, file string, broken bool) llmtest.Reply {
	results := toolResults(c)
	switch {
	case assistantTurns(c) == 0 || strings.Contains(results, "Verification failed"):
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("read_file", map[string]any{"path": file})}}
	case strings.HasPrefix(results, file+": lines") && strings.Contains(results, "{{"):
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("edit_file", map[string]any{"path": file, "old_string": "{{", "new_string": "{"})}}
	case strings.HasPrefix(results, file+": lines"):
		lines := strings.Split(results, "\n")[1:]
		var calls []llmtest.ToolCall
		for i, l := range lines {
			m := exported.FindStringSubmatch(l)
			if m == nil || i > 0 && strings.HasPrefix(lines[i-1], "//") {
				continue
			}
			next := fmt.Sprintf("// %s does what its name says.\n%s", m[2], l)
			if broken && len(calls) == 0 && !mentions(c, "Verification failed") {
				next = strings.Replace(next, "{", "{{", 1)
			}
			calls = append(calls, tool("edit_file", map[string]any{"path": file, "old_string": l, "new_string": next}))
		}
		return llmtest.Reply{ToolCalls: calls}
	}
	return submit(fmt.Sprintf("documented the exported functions of %s", file))
}

// goTool returns the go command, when the sandbox can run it: the
// sandbox sees the system directories (/usr, /bin, /lib), not a Go
// installed elsewhere.
func goTool(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	goroot := strings.TrimSpace(string(out))
	if !strings.HasPrefix(goroot, "/usr/") {
		t.Skipf("Go is installed in %s, outside the system directories the sandbox sees (/usr, /bin, /lib), so go vet cannot run in it", goroot)
	}
	return filepath.Join(goroot, "bin", "go")
}

// copyTree copies the directory src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDocCommentsEndToEnd: the lead splits "add a doc comment to every
// exported function" over a small Go module, a task a file; workers read
// their file and edit it in their own copies; go vet and go build, a
// configured check, verify each patch in the sandbox against the module
// with the worker's changes; one worker's first patch does not compile,
// and it mends it from the check's evidence; the lead's finish merges the
// three patches; hive apply writes them into the module, which then
// builds, vets, and documents every exported function.
func TestDocCommentsEndToEnd(t *testing.T) {
	goCmd := goTool(t)
	w := newWorld(t)
	mod := filepath.Join(w.dir, "docmod")
	copyTree(t, filepath.Join("testdata", "docmod"), mod)
	files := []string{"arith.go", "shapes.go", "words.go"}
	var reports notes
	w.script = func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if assistantTurns(c) == 0 {
				var tasks []map[string]any
				for _, f := range files {
					tasks = append(tasks, map[string]any{"name": f, "instructions": "Add a doc comment to every exported function of " + f + ".",
						"verify": map[string]any{"kind": "command", "check": "vet"}})
				}
				return delegate(tasks...)
			}
			reports.add(toolResults(c))
			return finish("every exported function has a doc comment")
		}
		for _, f := range files {
			if mentions(c, "exported function of "+f) {
				return docWorker(c, f, f == "words.go")
			}
		}
		return submit("which file?")
	}
	cfg, _ := os.ReadFile(w.cfg)
	check := fmt.Sprintf("\n[checks.vet]\ncommand = [\"sh\", \"-c\", \"%[1]s vet ./... && %[1]s build ./...\"]\ntimeout = \"2m\"\n", goCmd)
	os.WriteFile(w.cfg, append(cfg, check...), 0o600)

	start := time.Now()
	code, out, errOut := w.hiveFor(3*time.Minute, "run", "--workspace", mod, "document the module")
	if code != 0 || out != "every exported function has a doc comment\n" {
		t.Fatalf("run: exit %d, %q\n%s", code, out, errOut)
	}
	t.Logf("the run took %v", time.Since(start))
	if !strings.Contains(errOut, "patch lead/patch: ") || !strings.Contains(errOut, "writes it into the workspace") {
		t.Errorf("hive run did not say how to apply its patch:\n%s", errOut)
	}
	_, list, _ := w.hive("runs", "--json")
	var runs []swarm.RunView
	json.Unmarshal([]byte(list), &runs)
	id := runs[0].ID
	_, shown, _ := w.hive("show", "--json", id)
	var s showJSON
	if err := json.Unmarshal([]byte(shown), &s); err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Nodes {
		if n.Role != swarm.RoleWorker {
			continue
		}
		if n.Status != swarm.StatusDone || n.Verdict == nil || n.Verdict.Outcome != "pass" || !strings.Contains(n.Verdict.Evidence, "check vet: sh exited 0") {
			t.Errorf("%s: %s, verdict %+v", n.Name, n.Status, n.Verdict)
		}
		if repaired := n.Attempt > 0; repaired != (n.Name == "words.go") {
			t.Errorf("%s: %d repairs", n.Name, n.Attempt)
		}
	}
	evidence := false
	for _, c := range w.srv.Calls() {
		evidence = evidence || strings.Contains(toolResults(c), "Verification failed") && strings.Contains(toolResults(c), "words.go:")
	}
	if !evidence {
		t.Error("the broken patch's worker never saw go vet's evidence")
	}
	if r := strings.Join(reports.all(), ""); strings.Count(r, `"patch":"`) != 3 {
		t.Errorf("the lead's reports do not name three patches: %s", r)
	}
	if s.Patch == nil || !strings.HasPrefix(s.Patch.Summary, "3 files, +7 -0") {
		t.Fatalf("the run's patch: %+v", s.Patch)
	}
	// Nothing is written until the user applies.
	if b, _ := os.ReadFile(filepath.Join(mod, "words.go")); strings.Contains(string(b), "//") {
		t.Fatalf("the run wrote the module:\n%s", b)
	}
	if code, _, errOut := w.hive("apply", id); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errOut)
	}
	for _, args := range [][]string{{"build", "./..."}, {"vet", "./..."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("go %s in the applied module: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	pkgs, err := parser.ParseDir(token.NewFileSet(), mod, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	documented := 0
	for _, pkg := range pkgs {
		for name, f := range pkg.Files {
			for _, d := range f.Decls {
				if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.IsExported() {
					if fn.Doc == nil {
						t.Errorf("%s: %s has no doc comment", filepath.Base(name), fn.Name.Name)
					}
					documented++
				}
			}
		}
	}
	if documented != 7 {
		t.Errorf("%d exported functions, want 7", documented)
	}
}

// TestRunEverythingServer: a worker uses the tools of MCP's reference
// server (@modelcontextprotocol/server-everything, Node, over stdio),
// which nobody here wrote, through a run: the allowed tools answer, the
// others are not offered, and the server's process is gone when the run
// ends.
func TestRunEverythingServer(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("no node: the MCP reference server cannot run (scripts/test.sh installs nodejs)")
	}
	entry, err := filepath.Abs("../../internal/mcp/testdata/servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(entry); err != nil {
		t.Fatal("the MCP reference server is not installed: npm ci --prefix internal/mcp/testdata/servers (scripts/test.sh does it)")
	}
	var seen, offered notes
	w := newWorld(t)
	w.script = func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if assistantTurns(c) == 0 {
				return delegate(map[string]any{"name": "sum", "instructions": "Add 2 and 40 with the tool."})
			}
			return finish("done")
		}
		switch assistantTurns(c) {
		case 0:
			offered.add(strings.Join(c.Tools, " "))
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("everything__get-sum", map[string]any{"a": 2, "b": 40})}}
		case 1:
			seen.add(toolResults(c))
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("everything__echo", map[string]any{"message": "hello, bees"})}}
		}
		seen.add(toolResults(c))
		return submit("42")
	}
	cfg, _ := os.ReadFile(w.cfg)
	os.WriteFile(w.cfg, append(cfg, fmt.Sprintf("\n[mcp.everything]\ncommand = \"node\"\nargs = [%q, \"stdio\"]\nallow = [\"get-sum\", \"echo\"]\ntimeout = \"30s\"\n", entry)...), 0o600)
	w.env = map[string]string{"PATH": os.Getenv("PATH")}
	code, out, errOut := w.hiveFor(2*time.Minute, "run", "add")
	if code != 0 || out != "done\n" {
		t.Fatalf("run: exit %d, %q\n%s", code, out, errOut)
	}
	if got := offered.all(); len(got) != 1 || !strings.Contains(got[0], "everything__echo everything__get-sum") || strings.Contains(got[0], "get-env") {
		t.Errorf("the worker was offered: %q", got)
	}
	got := seen.all()
	if len(got) != 2 || !strings.Contains(got[0], "42") || got[1] != "Echo: hello, bees" {
		t.Errorf("the tools answered: %q", got)
	}
	if n := descendants(); n > 0 {
		t.Errorf("%d processes (the server?) are left after the run", n)
	}
	// The run ended and its process exited with it: the next process
	// finds nothing of it to continue.
	code, _, errOut = w.hiveFor(2*time.Minute, "run", "add")
	if code != 0 || strings.Contains(errOut, "also continuing") {
		t.Errorf("the next run: exit %d\n%s", code, errOut)
	}
}
