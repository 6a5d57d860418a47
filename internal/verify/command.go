package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/sandbox"
)

// ReportFileEnv names the environment variable that tells a command
// check where the report is.
const ReportFileEnv = "HIVE_REPORT_FILE"

// reportFile is the report's file in a sandboxed check's working
// directory.
const reportFile = "report.txt"

// hostEnv are the variables a check on the host gets from Hive's
// environment besides the ones it names.
var hostEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}

// HostCommand returns the command of a check that runs on the host
// (on_host = true, the user's configuration, never a model's): argv as
// configured, an environment of PATH, HOME, LANG and the like read with
// getenv plus env (the variables the check names, already resolved),
// never the rest of Hive's (its API keys); it runs in a process group of
// its own, killed whole when ctx ends.
func HostCommand(ctx context.Context, argv []string, getenv func(string) string, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{}
	for _, name := range hostEnv {
		if val := getenv(name); val != "" {
			cmd.Env = append(cmd.Env, name+"="+val)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	killGroup(cmd) // the program's children die with it
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Command runs spec.Trusted, a check the user configured ([checks.NAME]),
// with the report on stdin and in the file $HIVE_REPORT_FILE names. It
// runs in the sandbox (network off, system directories read-only, the
// sandbox's memory and process limits) unless the check says on_host, and
// in either place with an environment of its own: the variables the check
// names and nothing of Hive's (no API key, no token). Exit status 0
// passes; any other fails with the program's output (capped) as the
// evidence; so does running past the check's timeout (default
// CommandTimeout, 30 s). A check that cannot start is unsure.
//
// spec.Command, a command written into the spec itself, is never run:
// specs come from models, and a model may choose a check, never a command.
func (v *Verifiers) Command(ctx context.Context, spec Spec, sub Submission) Verdict {
	ch := spec.Trusted
	switch {
	case ch == nil && len(spec.Command) > 0:
		return unsure(KindCommand, "a command written in a verify spec is never run; name a configured check instead ({\"kind\": \"command\", \"check\": NAME}, from [checks.NAME] in hive.toml or the task file)")
	case ch == nil:
		return unsure(KindCommand, "the command verifier names no configured check ([checks.NAME] in hive.toml or the task file)")
	case len(ch.Argv) == 0 || ch.Argv[0] == "":
		return unsure(KindCommand, fmt.Sprintf("check %s has no command", ch.Name))
	}
	timeout := cmp.Or(ch.Timeout, v.CommandTimeout, 30*time.Second)
	getenv := v.getenv()
	var env []string
	for _, name := range ch.Env {
		if val := getenv(name); val != "" {
			env = append(env, name+"="+val)
		}
	}
	if ch.OnHost {
		return v.commandOnHost(ctx, ch, timeout, env, sub)
	}
	if v.sb == nil {
		return unsure(KindCommand, fmt.Sprintf("check %s runs in the sandbox, and this process has none (hive sandbox check says why); set on_host = true in [checks.%s] to run it on the host instead", ch.Name, ch.Name))
	}
	lim := v.Limits
	lim.Wall, lim.CPU = timeout, timeout
	lim.Output = cmp.Or(v.CommandOutput, 64<<10)
	report := []byte(sub.Report)
	res, err := v.sb.Run(ctx, sandbox.Spec{
		Lang:   sandbox.Exec,
		Argv:   ch.Argv,
		Env:    append(env, ReportFileEnv+"="+reportFile),
		Files:  map[string][]byte{reportFile: report},
		Stdin:  report,
		Limits: lim,
	})
	if err != nil {
		return unsure(KindCommand, fmt.Sprintf("check %s could not be run: %v", ch.Name, err))
	}
	o := checkRun{
		output:   strings.TrimRight(string(res.Stdout)+string(res.Stderr), "\n"),
		wall:     res.Wall,
		status:   fmt.Sprintf("exit status %d", res.ExitCode),
		ok:       res.OK(),
		exited:   res.Reason == sandbox.Exited,
		timedOut: res.Reason == sandbox.WallTimeout || res.Reason == sandbox.CPULimit,
	}
	switch {
	case res.Reason == sandbox.Canceled || ctx.Err() != nil:
		o.cancelled = true
	case o.exited && res.ExitCode == 127 && strings.Contains(o.output, ch.Argv[0]):
		o.notFound = "not found in the sandbox"
	case !o.exited && !o.timedOut:
		o.status = string(res.Reason)
	}
	return o.verdict(ch, timeout)
}

// checkRun is how a check's run ended, in the sandbox or on the host.
type checkRun struct {
	output    string // stdout and stderr, capped
	wall      time.Duration
	status    string // how it exited, or why it stopped
	ok        bool   // exited 0
	exited    bool   // on its own, not stopped
	timedOut  bool
	cancelled bool
	notFound  string // why the command could not be found, if it could not
}

// verdict judges a check's run: exit 0 passes; any other exit, a timeout or
// a stop fails with the output as the evidence; a run that could not start
// or was cancelled is unsure.
func (o checkRun) verdict(ch *CommandCheck, timeout time.Duration) Verdict {
	name := ch.Argv[0]
	switch {
	case o.cancelled:
		return unsure(KindCommand, "the verification was cancelled while the check ran")
	case o.notFound != "":
		return unsure(KindCommand, withOutput(fmt.Sprintf("check %s: command %s %s", ch.Name, name, o.notFound), o.output, 500))
	case o.ok:
		return pass(KindCommand, withOutput(fmt.Sprintf("check %s: %s exited 0 (%s)", ch.Name, name, o.wall.Round(time.Millisecond)), o.output, 500))
	case o.timedOut:
		return fail(KindCommand, withOutput(fmt.Sprintf("check %s: %s timed out after %s", ch.Name, name, timeout), o.output, maxEvidence-100))
	case o.exited:
		return fail(KindCommand, withOutput(fmt.Sprintf("check %s: %s failed (%s)", ch.Name, name, o.status), o.output, maxEvidence-100))
	}
	return fail(KindCommand, withOutput(fmt.Sprintf("check %s: %s stopped: %s", ch.Name, name, o.status), o.output, maxEvidence-100))
}

func (v *Verifiers) getenv() func(string) string {
	if v.Getenv != nil {
		return v.Getenv
	}
	return os.Getenv
}

func withOutput(head, output string, n int) string {
	if output == "" {
		return head
	}
	return head + "\n" + tailOf(output, n)
}

// commandOnHost runs a check outside the sandbox, as Hive's user, with
// only PATH, HOME, LANG (and the like) and the variables it names.
func (v *Verifiers) commandOnHost(ctx context.Context, ch *CommandCheck, timeout time.Duration, env []string, sub Submission) Verdict {
	v.log.Warn("verify: running a check on the host, outside the sandbox (on_host = true)", "check", ch.Name, "command", ch.Argv[0])
	f, err := os.CreateTemp("", "hive-report-*.txt")
	if err != nil {
		return unsure(KindCommand, "write the report file: "+err.Error())
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(sub.Report)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return unsure(KindCommand, "write the report file: "+err.Error())
	}

	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// On the host by the user's configuration (on_host = true), never a
	// model's: the command line is the configured one, and a model's words
	// reach it only as data, the report on stdin and in a file. The
	// environment is not Hive's: PATH, HOME, LANG and the like, and the
	// variables the check names.
	cmd := HostCommand(rctx, ch.Argv, v.getenv(), append(slices.Clip(env), ReportFileEnv+"="+f.Name()))
	cmd.Stdin = strings.NewReader(sub.Report)
	out := &tailBuffer{max: cmp.Or(v.CommandOutput, 64<<10)}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err = cmd.Run()
	o := checkRun{output: strings.TrimRight(out.String(), "\n"), wall: time.Since(start), ok: err == nil,
		cancelled: ctx.Err() != nil, timedOut: rctx.Err() != nil}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		o.exited, o.status = true, exitErr.ProcessState.String()
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		o.notFound = "not found: " + err.Error()
	case err != nil && !o.timedOut && !o.cancelled:
		return unsure(KindCommand, fmt.Sprintf("check %s could not be run: %v", ch.Name, err))
	}
	return o.verdict(ch, timeout)
}

// tailBuffer keeps the first max/4 bytes written to it and about the last
// 3*max/4, which is where test runners print their summaries.
type tailBuffer struct {
	mu    sync.Mutex // guards the fields below
	max   int
	head  []byte
	tail  []byte
	total int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += int64(len(p))
	q := p
	if room := b.max/4 - len(b.head); room > 0 {
		n := min(room, len(q))
		b.head = append(b.head, q[:n]...)
		q = q[n:]
	}
	b.tail = append(b.tail, q...)
	if keep := b.max - b.max/4; len(b.tail) > 2*keep {
		b.tail = append(b.tail[:0], b.tail[len(b.tail)-keep:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	tail := b.tail
	if keep := b.max - b.max/4; len(tail) > keep {
		tail = tail[len(tail)-keep:]
	}
	kept := int64(len(b.head) + len(tail))
	if kept == b.total {
		return string(b.head) + string(tail)
	}
	return strings.ToValidUTF8(fmt.Sprintf("%s\n[… %d bytes cut …]\n%s", b.head, b.total-kept, tail), "")
}
