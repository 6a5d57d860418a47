package swarm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/verify"
	"github.com/hive-swarm/hive/internal/workspace"
)

// A Tree is a workspace with a worker's changes, as programs see it:
// written out into a directory ([workspace.Overlay] is one), what the
// worker can see of it and nothing more, at most max bytes (more is an
// error that wraps [workspace.ErrTooLarge]).
type Tree interface {
	Materialize(ctx context.Context, dst string, max int64) error
}

// SandboxRunner runs the run_code tool's programs in a sandbox, and the
// checks of a run with a workspace against a worker's tree.
type SandboxRunner struct {
	Sandbox *sandbox.Sandbox
	// Getenv reads the variables a check names (env); nil: os.Getenv.
	Getenv func(string) string
	// Log, when set, gets a warning at every check run on the host.
	Log *slog.Logger
	// MaxTree bounds the bytes of a worker's tree copied for run_code or
	// a check; default [workspace.DefaultMaxMaterialize], 1 GiB. In the
	// sandbox the copy also takes at most half its disk. A tree too large
	// is a tool error of run_code, and fails a check.
	MaxTree int64
}

// maxTree returns the budget of a tree's copy, at most limit when limit
// is positive.
func (s SandboxRunner) maxTree(limit int64) int64 {
	m := cmp.Or(s.MaxTree, workspace.DefaultMaxMaterialize)
	if limit > 0 {
		m = min(m, limit)
	}
	return m
}

// RunCode runs code and describes the outcome as a model reads it. With a
// tree, the program's working directory holds a copy of it (see
// [SandboxRunner.CheckTree]).
func (s SandboxRunner) RunCode(ctx context.Context, lang, code, stdin string, tree Tree) (string, bool, error) {
	l, err := sandbox.ParseCodeLang(lang)
	if err != nil {
		return err.Error(), true, nil
	}
	spec := sandbox.Spec{Lang: l, Source: code, Stdin: []byte(stdin)}
	note := ""
	if tree != nil {
		max := s.maxTree(s.Sandbox.Limits().Disk / 2)
		files, err := treeFiles(ctx, tree, max)
		if errors.Is(err, workspace.ErrTooLarge) {
			return fmt.Sprintf("run_code did not run: the workspace with your changes is over %d MiB, more than is copied for code to run in; read it with read_file and grep instead", max>>20), true, nil
		}
		if err != nil {
			return "run_code did not run: the workspace could not be copied: " + err.Error(), true, nil
		}
		main := "main." + map[sandbox.Lang]string{sandbox.Python: "py", sandbox.Shell: "sh", sandbox.JavaScript: "js"}[l]
		if _, ok := files[main]; ok {
			delete(files, main)
			note = fmt.Sprintf("(the workspace's %s is not in the copy: your program has that name)\n", main)
		}
		spec.Files = files
	}
	res, err := s.Sandbox.Run(ctx, spec)
	if err != nil {
		return "", true, &scrubbedError{scrubTemp(err.Error()), err}
	}
	var b strings.Builder
	b.WriteString(note)
	switch res.Reason {
	case sandbox.Exited:
		fmt.Fprintf(&b, "exit status %d", res.ExitCode)
	case sandbox.CPULimit:
		// The limit, which a model can plan for, beside the wall time that
		// a busy machine stretches.
		fmt.Fprintf(&b, "stopped: %s, %s of CPU", res.Reason, s.Sandbox.Limits().CPU)
	default:
		fmt.Fprintf(&b, "stopped: %s", res.Reason)
	}
	fmt.Fprintf(&b, " (%.2fs)\n", res.Wall.Seconds())
	section := func(name string, data []byte, cut bool) {
		if len(data) == 0 {
			return
		}
		fmt.Fprintf(&b, "--- %s ---\n%s", name, clip(scrubTemp(string(data)), 8000))
		if cut {
			b.WriteString("\n[truncated]")
		}
		b.WriteString("\n")
	}
	section("stdout", res.Stdout, res.StdoutTruncated)
	section("stderr", res.Stderr, res.StderrTruncated)
	return b.String(), !res.OK(), nil
}

// checkReport is the name of the report's file in the working directory
// of a check run in the sandbox against a tree: a dot file, which build
// tools skip. Should the tree have a path of that name (a worker may
// write one, to forge the report or to make the check fail), the report
// takes the first of .hive-report-2, .hive-report-3, ... that is free.
const checkReport = ".hive-report"

// reportName returns a name for the report's file that is no path of
// files and no directory above one.
func reportName(files map[string][]byte) string {
	taken := func(name string) bool {
		if _, ok := files[name]; ok {
			return true
		}
		for p := range files {
			if strings.HasPrefix(p, name+"/") {
				return true
			}
		}
		return false
	}
	name := checkReport
	for i := 2; taken(name); i++ {
		name = fmt.Sprintf("%s-%d", checkReport, i)
	}
	return name
}

// CheckTree runs a configured check, a command of the user's, in a copy
// of tree: in the sandbox, the copy is the working directory (on the
// sandbox's disk, its tmpfs, so what the check writes is discarded); with
// on_host, a temporary directory on the host. The report is on stdin and
// in the file $HIVE_REPORT_FILE names. Exit status 0 passes, any other
// fails with the output (its end) as the evidence, and a check that cannot
// run is unsure.
//
// Command checks of runs without a workspace run in package verify; this
// one differs in its working directory only.
func (s SandboxRunner) CheckTree(ctx context.Context, ch verify.CommandCheck, tree Tree, report string) verify.Verdict {
	timeout := cmp.Or(ch.Timeout, 30*time.Second)
	getenv := s.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var env []string
	for _, name := range ch.Env {
		if v := getenv(name); v != "" {
			env = append(env, name+"="+v)
		}
	}
	if ch.OnHost {
		return s.checkOnHost(ctx, ch, timeout, env, getenv, tree, report)
	}
	if s.Sandbox == nil {
		return checkVerdict(verify.Unsure, fmt.Sprintf("check %s runs in the sandbox, and this process has none (hive sandbox check says why)", ch.Name))
	}
	max := s.maxTree(s.Sandbox.Limits().Disk / 2)
	files, err := treeFiles(ctx, tree, max)
	if errors.Is(err, workspace.ErrTooLarge) {
		return tooLarge(ch, max)
	}
	if err != nil {
		return checkVerdict(verify.Unsure, fmt.Sprintf("check %s: the workspace could not be copied: %v", ch.Name, err))
	}
	reportFile := reportName(files)
	files[reportFile] = []byte(report)
	lim := sandbox.Limits{Wall: timeout, CPU: timeout, Output: 64 << 10}
	start := time.Now()
	res, err := s.Sandbox.Run(ctx, sandbox.Spec{Lang: sandbox.Exec, Argv: ch.Argv, Files: files, Stdin: []byte(report),
		Env: append(env, verify.ReportFileEnv+"="+reportFile), Limits: lim})
	if err != nil {
		return checkVerdict(verify.Unsure, fmt.Sprintf("check %s could not be run: %s", ch.Name, scrubTemp(err.Error())))
	}
	out := strings.TrimRight(scrubTemp(string(res.Stdout)+string(res.Stderr)), "\n")
	switch {
	case res.Reason == sandbox.Canceled || ctx.Err() != nil:
		return checkVerdict(verify.Unsure, "the verification was cancelled while the check ran")
	case res.Reason == sandbox.Exited && res.ExitCode == 127 && strings.Contains(out, ch.Argv[0]):
		return checkVerdict(verify.Unsure, withTail(fmt.Sprintf("check %s: command %s not found in the sandbox (it sees the system directories; give its whole path)", ch.Name, ch.Argv[0]), out))
	case res.OK():
		return checkVerdict(verify.Pass, withTail(fmt.Sprintf("check %s: %s exited 0 (%s)", ch.Name, ch.Argv[0], time.Since(start).Round(time.Millisecond)), out))
	case res.Reason == sandbox.WallTimeout || res.Reason == sandbox.CPULimit:
		return checkVerdict(verify.Fail, withTail(fmt.Sprintf("check %s: %s timed out after %s", ch.Name, ch.Argv[0], timeout), out))
	case res.Reason == sandbox.Exited:
		return checkVerdict(verify.Fail, withTail(fmt.Sprintf("check %s: %s failed (exit status %d)", ch.Name, ch.Argv[0], res.ExitCode), out))
	}
	return checkVerdict(verify.Fail, withTail(fmt.Sprintf("check %s: %s stopped: %s", ch.Name, ch.Argv[0], res.Reason), out))
}

// checkOnHost runs a check with on_host = true (the user's configuration,
// never a model's) in a temporary copy of tree on the host, with PATH,
// HOME, LANG and the like and the variables it names.
func (s SandboxRunner) checkOnHost(ctx context.Context, ch verify.CommandCheck, timeout time.Duration, env []string, getenv func(string) string, tree Tree, report string) verify.Verdict {
	if s.Log != nil {
		s.Log.Warn("running a check on the host, outside the sandbox (on_host = true)", "check", ch.Name, "command", ch.Argv[0])
	}
	tmp, err := os.MkdirTemp("", "hive-check-")
	if err != nil {
		return checkVerdict(verify.Unsure, "make a directory for the check: "+err.Error())
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "tree")
	max := s.maxTree(0)
	if err := tree.Materialize(ctx, dir, max); errors.Is(err, workspace.ErrTooLarge) {
		return tooLarge(ch, max)
	} else if err != nil {
		return checkVerdict(verify.Unsure, fmt.Sprintf("check %s: the workspace could not be copied: %s", ch.Name, scrub(err.Error(), tmp)))
	}
	// Outside the copy: the tree cannot hold a file of its name.
	reportFile := filepath.Join(tmp, "report.txt")
	if err := os.WriteFile(reportFile, []byte(report), 0o600); err != nil {
		return checkVerdict(verify.Unsure, "write the report file: "+err.Error())
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The copy holds the worker's files: a check such as go test runs
	// code a model wrote, on the host, which is what on_host asks for.
	cmd := verify.HostCommand(rctx, ch.Argv, getenv, append(slices.Clip(env), verify.ReportFileEnv+"="+reportFile))
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(report)
	start := time.Now()
	b, err := cmd.CombinedOutput()
	// The check's output goes to the worker: its paths are told relative
	// to the copy, never as the host's.
	out := strings.TrimRight(scrub(string(b), dir, tmp), "\n")
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return checkVerdict(verify.Unsure, "the verification was cancelled while the check ran")
	case rctx.Err() != nil:
		return checkVerdict(verify.Fail, withTail(fmt.Sprintf("check %s: %s timed out after %s", ch.Name, ch.Argv[0], timeout), out))
	case err == nil:
		return checkVerdict(verify.Pass, withTail(fmt.Sprintf("check %s: %s exited 0 (%s)", ch.Name, ch.Argv[0], time.Since(start).Round(time.Millisecond)), out))
	case errors.As(err, &exitErr):
		return checkVerdict(verify.Fail, withTail(fmt.Sprintf("check %s: %s failed (%s)", ch.Name, ch.Argv[0], exitErr.ProcessState), out))
	}
	return checkVerdict(verify.Unsure, fmt.Sprintf("check %s could not be run: %s", ch.Name, scrub(err.Error(), dir, tmp)))
}

// tooLarge is the verdict of a check whose tree is too large to copy: a
// failure, since what cannot be checked must not pass.
func tooLarge(ch verify.CommandCheck, max int64) verify.Verdict {
	return checkVerdict(verify.Fail, fmt.Sprintf("check %s did not run: the workspace with the changes is over %d MiB, more than is copied for a check; make the change smaller, or leave large files out of it", ch.Name, max>>20))
}

// scrub rewrites the host's directories dirs (a copy of the tree, the
// temporary directory around it) in s, a message a model will read, as
// paths relative to the first; and any other of Hive's temporary
// directories as "[temporary directory]".
func scrub(s string, dirs ...string) string {
	var pairs []string
	for i, d := range dirs {
		rel := func(d string) {
			if i == 0 {
				pairs = append(pairs, d+string(filepath.Separator), "", d, ".")
			} else {
				pairs = append(pairs, d, "[temporary directory]")
			}
		}
		rel(d)
		if real, err := filepath.EvalSymlinks(d); err == nil && real != d {
			rel(real)
		}
	}
	// A replacer tries its pairs in order: the copy (under tmp) first.
	return scrubTemp(strings.NewReplacer(pairs...).Replace(s))
}

// scrubbedError is an error whose message is told a model: scrubbed of
// the host's paths.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// hiveTemp matches the temporary directories Hive and its sandbox make
// (hive-tree-, hive-check-, hive-sandbox-...), with the path below them.
var hiveTemp = regexp.MustCompile(regexp.QuoteMeta(filepath.Clean(os.TempDir())) + `/hive-[^/\s'"]*(/[^\s'":]*)?`)

// scrubTemp rewrites Hive's temporary directories in s as
// "[temporary directory]".
func scrubTemp(s string) string {
	return hiveTemp.ReplaceAllString(s, "[temporary directory]")
}

func checkVerdict(outcome, evidence string) verify.Verdict {
	return verify.Verdict{Outcome: outcome, Verifier: verify.KindCommand, Evidence: evidence}
}

// withTail appends the end of a check's output to head: where compilers
// and test runners say what failed.
func withTail(head, out string) string {
	if out == "" {
		return head
	}
	const n = 3500
	if len(out) > n {
		cut := len(out) - n
		for cut < len(out) && out[cut]&0xC0 == 0x80 {
			cut++
		}
		out = "[…]" + out[cut:]
	}
	return head + "\n" + out
}

// treeFiles writes tree out and reads it back as a sandbox's files: every
// regular file (a link to one inside the tree, as a copy), at most max
// bytes in all (at most half the sandbox's disk: the rest is for what the
// program writes, a build's cache say); more is an error that wraps
// [workspace.ErrTooLarge]. Permission bits are not kept: the sandbox's
// files are plain files of its user. Its errors name no host path.
func treeFiles(ctx context.Context, tree Tree, max int64) (map[string][]byte, error) {
	tmp, err := os.MkdirTemp("", "hive-tree-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "tree")
	if err := tree.Materialize(ctx, dir, max); err != nil {
		return nil, &scrubbedError{scrub(err.Error(), dir, tmp), err}
	}
	files := map[string][]byte{}
	var total int64
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := os.Stat(p) // a link: what it leads to, inside the copy
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if total += fi.Size(); total > max {
			// Each link to a file counts as a copy, as it will be one.
			return fmt.Errorf("the workspace with your changes is over %d MiB: %w", max>>20, workspace.ErrTooLarge)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return nil, &scrubbedError{scrub(err.Error(), dir, tmp), err}
	}
	return files, nil
}
