package verify

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/sandbox"
)

// Tests runs the submission's code (its "code" artifact, else the code in
// its report) followed by spec.Code, the tests, as one program in the
// sandbox, in spec.Lang (python by default, javascript or shell). Exit
// status 0 passes. Anything else fails with what a model needs to repair
// the code: the exception and the last frames of the traceback, with line
// numbers told apart as the submission's or the tests', or the limit the
// program hit (timed out, ran out of memory, output too long).
func (v *Verifiers) Tests(ctx context.Context, spec Spec, sub Submission) Verdict {
	lang := sandbox.Python
	if spec.Lang != "" {
		l, err := sandbox.ParseCodeLang(spec.Lang)
		if err != nil {
			return unsure(KindTests, err.Error())
		}
		lang = l
	}
	if strings.TrimSpace(spec.Code) == "" {
		return unsure(KindTests, "the tests verifier has no test code (spec.code is empty)")
	}
	code, ok := submittedCode(sub)
	if !ok {
		return fail(KindTests, "no code in the submission: put the code in an artifact named \"code\", or in a fenced code block of the report")
	}
	if lang == sandbox.Python {
		if v, dropped := droppedVerdict(KindTests, sub.Task, code); dropped {
			return v
		}
	}
	prog := joinProgram(code, spec.Code)
	res, err := v.run(ctx, lang, prog.source, nil)
	if err != nil {
		return unsure(KindTests, err.Error())
	}
	if res.OK() {
		return pass(KindTests, fmt.Sprintf("the tests passed (%s)", res.Wall.Round(time.Millisecond)))
	}
	if res.Reason == sandbox.Canceled || ctx.Err() != nil {
		return unsure(KindTests, "the verification was cancelled before the tests finished")
	}
	return fail(KindTests, v.failure(res, lang, prog))
}

// program is submitted code and tests joined into one source.
type program struct {
	source    string
	codeLines int // lines 1..codeLines are the submission's; the tests start after sepLines more
	lines     []string
}

// sepLines is how many blank lines separate the code from the tests.
const sepLines = 2

func joinProgram(code, tests string) program {
	code = strings.TrimRight(code, "\n") + "\n"
	src := code + strings.Repeat("\n", sepLines) + tests
	if !strings.HasSuffix(src, "\n") {
		src += "\n"
	}
	return program{source: src, codeLines: strings.Count(code, "\n"), lines: strings.Split(src, "\n")}
}

// where names line n of the program: the submission's or the tests'.
func (p program) where(n int) (file string, line int) {
	if n <= p.codeLines {
		return "submission", n
	}
	return "tests", n - p.codeLines - sepLines
}

// errNoSandbox is the evidence of a code-running verifier without one.
var errNoSandbox = errors.New("no sandbox: this process cannot run submitted code, so it was not checked")

// run runs source in the sandbox with the verifiers' limits. Its error
// says why the sandbox could not run it.
func (v *Verifiers) run(ctx context.Context, lang sandbox.Lang, source string, stdin []byte) (*sandbox.Result, error) {
	if v.sb == nil {
		return nil, errNoSandbox
	}
	res, err := v.sb.Run(ctx, sandbox.Spec{Lang: lang, Source: source, Stdin: stdin, Limits: v.limits()})
	if err != nil {
		return nil, fmt.Errorf("the sandbox failed, so the code was not checked: %w", err)
	}
	return res, nil
}

// limits returns the limits a run of v has: v.Limits over the sandbox's,
// with a wall-clock limit, when v.Limits sets none, of three times the CPU
// limit. CPU time bounds what an answer computes; the wall clock only has
// to catch an answer that sleeps, and must not fail a right one that a
// machine busy with many verifications slows down.
func (v *Verifiers) limits() sandbox.Limits {
	d := sandbox.DefaultLimits
	if v.sb != nil {
		d = v.sb.Limits()
	}
	l := v.Limits
	if l.Wall <= 0 {
		l.Wall = 3 * l.WithDefaults(d).CPU
	}
	return l.WithDefaults(d)
}

// failure is the evidence of a failed run.
func (v *Verifiers) failure(res *sandbox.Result, lang sandbox.Lang, p program) string {
	l := v.limits()
	var b strings.Builder
	switch res.Reason {
	case sandbox.WallTimeout:
		fmt.Fprintf(&b, "timed out after %s (an infinite loop, or far too slow)", l.Wall)
	case sandbox.CPULimit:
		fmt.Fprintf(&b, "timed out: used its %s of CPU time (an infinite loop, or far too slow)", l.CPU.Round(time.Second))
	case sandbox.MemoryLimit:
		fmt.Fprintf(&b, "ran out of memory (limit %s)", bytesOf(l.Memory))
	case sandbox.OutputLimit:
		fmt.Fprintf(&b, "output too long: wrote more than %s", bytesOf(int64(l.Output)))
	case sandbox.FileLimit:
		fmt.Fprintf(&b, "wrote more than %s of files", bytesOf(l.Disk))
	case sandbox.Signaled:
		fmt.Fprintf(&b, "killed by signal %s", res.Signal)
	default:
		fmt.Fprintf(&b, "the tests failed (exit status %d)", res.ExitCode)
	}
	stderr := string(res.Stderr)
	switch {
	case res.Reason == sandbox.OutputLimit:
		// The flood itself is no use to the model; its start may be.
		if out := strings.TrimSpace(string(res.Stdout)); out != "" {
			fmt.Fprintf(&b, "\nstdout began:\n%s", headTail(firstLines(out, 5), 300))
		}
		return b.String()
	case lang == sandbox.Python:
		stderr = pythonError(stderr, p, maxEvidence-400)
	default:
		stderr = tailOf(stderr, maxEvidence-400)
	}
	if stderr = strings.TrimRight(stderr, "\n"); stderr != "" {
		b.WriteString("\n")
		b.WriteString(stderr)
	}
	if out := strings.TrimSpace(string(res.Stdout)); out != "" {
		fmt.Fprintf(&b, "\nstdout (end):\n%s", tailOf(out, 300))
	}
	return strings.ToValidUTF8(b.String(), "")
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func bytesOf(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// pyFileRef matches a traceback's reference to the program's file.
var pyFileRef = regexp.MustCompile(`File "(?:/box/)?main\.py", line (\d+)`)

// pythonError trims a Python traceback to about budget bytes, keeping what
// a model repairs from: the exception (always), then the last frames, as
// many as fit. References to the program file become "submission" or
// "tests" with their own line numbers, and an assert with no message gets
// its source line named.
func pythonError(stderr string, p program, budget int) string {
	text := pyFileRef.ReplaceAllStringFunc(stderr, func(m string) string {
		n, _ := strconv.Atoi(pyFileRef.FindStringSubmatch(m)[1])
		file, line := p.where(n)
		return fmt.Sprintf("File %q, line %d", file, line)
	})
	start := strings.LastIndex(text, "Traceback (most recent call last):")
	var header string
	if start >= 0 {
		header = "Traceback (most recent call last):"
		text = text[start+len(header):]
	}
	var frames [][]string
	var exc []string
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		switch {
		case exc != nil:
			exc = append(exc, line)
		case strings.HasPrefix(line, "  File "):
			frames = append(frames, []string{line})
		case strings.HasPrefix(line, "  ") && len(frames) > 0:
			frames[len(frames)-1] = append(frames[len(frames)-1], line)
		case strings.TrimSpace(line) == "":
		default:
			exc = append(exc, line)
		}
	}
	if len(frames) == 0 && len(exc) == 0 {
		return ""
	}
	if len(frames) == 0 {
		// Not a traceback: whatever the program wrote last.
		return tailOf(strings.Join(exc, "\n"), budget)
	}
	excText := headTail(strings.Join(exc, "\n"), budget/2)
	if len(exc) > 0 && strings.TrimSpace(exc[0]) == "AssertionError" && len(exc) == 1 {
		if src := assertSource(frames[len(frames)-1], p); src != "" {
			excText = fmt.Sprintf("AssertionError (no message) from: %s", src)
		}
	}
	room := budget - len(excText) - len(header) - 64
	var kept []string
	cut := 0
	for i := len(frames) - 1; i >= 0; i-- {
		f := strings.Join(frames[i], "\n")
		if i == len(frames)-1 && len(f) > room {
			f = headTail(f, max(room, 200))
		}
		if len(f)+1 > room && i != len(frames)-1 {
			cut = i + 1
			break
		}
		room -= len(f) + 1
		kept = append(kept, f)
	}
	var b strings.Builder
	if header != "" {
		b.WriteString(header + "\n")
	}
	if cut > 0 {
		fmt.Fprintf(&b, "  [… %d earlier frames cut …]\n", cut)
	}
	for i := len(kept) - 1; i >= 0; i-- {
		b.WriteString(kept[i] + "\n")
	}
	b.WriteString(excText)
	return b.String()
}

// frameLine reads the file and line of a rewritten frame header.
var frameLine = regexp.MustCompile(`File "(submission|tests)", line (\d+)`)

// assertSource returns the source of the failing assert of a frame: the
// line the traceback shows, or the program's own line when it shows none.
func assertSource(frame []string, p program) string {
	if len(frame) > 1 {
		return fmt.Sprintf("%s (%s)", strings.TrimSpace(frame[1]), strings.TrimSpace(strings.TrimPrefix(frame[0], "  ")))
	}
	m := frameLine.FindStringSubmatch(frame[0])
	if m == nil {
		return ""
	}
	n, _ := strconv.Atoi(m[2])
	if m[1] == "tests" {
		n += p.codeLines + sepLines
	}
	if n < 1 || n > len(p.lines) {
		return ""
	}
	return fmt.Sprintf("%s (%s)", strings.TrimSpace(p.lines[n-1]), strings.TrimSpace(frame[0]))
}
