package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// ReportFileEnv names the environment variable that tells a command
// verifier's program where the report is.
const ReportFileEnv = "HIVE_REPORT_FILE"

// Command runs spec.Command, a program the user configured (trusted: it
// runs on the host, not in the sandbox), with the report on stdin and in
// the file that $HIVE_REPORT_FILE names. Exit status 0 passes; any other
// fails with the program's output (stdout and stderr, capped) as the
// evidence; so does running past CommandTimeout (30 s). A program that
// cannot be started (not found, not executable) is unsure.
func (v *Verifiers) Command(ctx context.Context, spec Spec, sub Submission) Verdict {
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return unsure(KindCommand, "the command verifier has no command (spec.command is empty)")
	}
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

	timeout := cmp.Or(v.CommandTimeout, 30*time.Second)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, spec.Command[0], spec.Command[1:]...)
	cmd.Stdin = strings.NewReader(sub.Report)
	cmd.Env = append(os.Environ(), ReportFileEnv+"="+f.Name())
	out := &tailBuffer{max: cmp.Or(v.CommandOutput, 64<<10)}
	cmd.Stdout, cmd.Stderr = out, out
	killGroup(cmd) // the program's children die with it
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	err = cmd.Run()
	output := strings.TrimRight(out.String(), "\n")
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		ev := fmt.Sprintf("%s exited 0 (%s)", spec.Command[0], time.Since(start).Round(time.Millisecond))
		if output != "" {
			ev += "\n" + tailOf(output, 500)
		}
		return pass(KindCommand, ev)
	case ctx.Err() != nil:
		return unsure(KindCommand, "the verification was cancelled while the command ran")
	case rctx.Err() != nil:
		return fail(KindCommand, fmt.Sprintf("%s timed out after %s\n%s", spec.Command[0], timeout, tailOf(output, maxEvidence-100)))
	case errors.As(err, &exitErr):
		return fail(KindCommand, fmt.Sprintf("%s failed (%s)\n%s", spec.Command[0], exitErr.ProcessState, tailOf(output, maxEvidence-100)))
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return unsure(KindCommand, fmt.Sprintf("command not found: %v", err))
	}
	return unsure(KindCommand, fmt.Sprintf("the command could not be run: %v", err))
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
