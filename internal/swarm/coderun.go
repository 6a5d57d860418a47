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
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/verify"
)

// A Tree is a workspace with a worker's changes, as programs see it:
// written out whole into a directory ([workspace.Overlay] is one).
type Tree interface {
	Materialize(ctx context.Context, dst string) error
}

// SandboxRunner runs the run_code tool's programs in a sandbox, and the
// checks of a run with a workspace against a worker's tree.
type SandboxRunner struct {
	Sandbox *sandbox.Sandbox
	// Getenv reads the variables a check names (env); nil: os.Getenv.
	Getenv func(string) string
	// Log, when set, gets a warning at every check run on the host.
	Log *slog.Logger
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
		files, err := treeFiles(ctx, tree, s.Sandbox.Limits().Disk/2)
		if err != nil {
			return err.Error(), true, nil
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
		return "", true, err
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
		fmt.Fprintf(&b, "--- %s ---\n%s", name, clip(string(data), 8000))
		if cut {
			b.WriteString("\n[truncated]")
		}
		b.WriteString("\n")
	}
	section("stdout", res.Stdout, res.StdoutTruncated)
	section("stderr", res.Stderr, res.StderrTruncated)
	return b.String(), !res.OK(), nil
}

// checkReport is where a check run against a tree finds the report, in
// its working directory (a dot directory, which build tools skip).
const checkReport = ".hive/report.txt"

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
	files, err := treeFiles(ctx, tree, s.Sandbox.Limits().Disk/2)
	if err != nil {
		return checkVerdict(verify.Unsure, fmt.Sprintf("check %s: %v", ch.Name, err))
	}
	files[checkReport] = []byte(report)
	lim := sandbox.Limits{Wall: timeout, CPU: timeout, Output: 64 << 10}
	start := time.Now()
	res, err := s.Sandbox.Run(ctx, sandbox.Spec{Lang: sandbox.Exec, Argv: ch.Argv, Files: files, Stdin: []byte(report),
		Env: append(env, verify.ReportFileEnv+"="+checkReport), Limits: lim})
	if err != nil {
		return checkVerdict(verify.Unsure, fmt.Sprintf("check %s could not be run: %v", ch.Name, err))
	}
	out := strings.TrimRight(string(res.Stdout)+string(res.Stderr), "\n")
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
	if err := tree.Materialize(ctx, dir); err != nil {
		return checkVerdict(verify.Unsure, fmt.Sprintf("check %s: %v", ch.Name, err))
	}
	reportFile := filepath.Join(tmp, "report.txt")
	if err := os.WriteFile(reportFile, []byte(report), 0o600); err != nil {
		return checkVerdict(verify.Unsure, "write the report file: "+err.Error())
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, ch.Argv[0], ch.Argv[1:]...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(report)
	for _, name := range []string{"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"} {
		if v := getenv(name); v != "" {
			cmd.Env = append(cmd.Env, name+"="+v)
		}
	}
	cmd.Env = append(append(cmd.Env, env...), verify.ReportFileEnv+"="+reportFile)
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	b, err := cmd.CombinedOutput()
	out := strings.TrimRight(string(b), "\n")
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
	return checkVerdict(verify.Unsure, fmt.Sprintf("check %s could not be run: %v", ch.Name, err))
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
// bytes in all (half the sandbox's disk: the rest is for what the program
// writes, a build's cache say). Permission bits are not kept: the sandbox's files are
// plain files of its user.
func treeFiles(ctx context.Context, tree Tree, max int64) (map[string][]byte, error) {
	tmp, err := os.MkdirTemp("", "hive-tree-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "tree")
	if err := tree.Materialize(ctx, dir); err != nil {
		return nil, err
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
			return fmt.Errorf("the workspace with your changes is over %d MiB, more than the sandbox's disk takes (%d MiB): read it with read_file and grep instead", max>>20, max>>20)
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
		return nil, err
	}
	return files, nil
}
