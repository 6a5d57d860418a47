package swarm

import (
	"context"
	"fmt"
	"strings"

	"github.com/hive-swarm/hive/internal/sandbox"
)

// SandboxRunner runs the run_code tool's programs in a sandbox.
type SandboxRunner struct{ Sandbox *sandbox.Sandbox }

// RunCode runs code and describes the outcome as a model reads it.
func (s SandboxRunner) RunCode(ctx context.Context, lang, code, stdin string) (string, bool, error) {
	l, err := sandbox.ParseCodeLang(lang)
	if err != nil {
		return err.Error(), true, nil
	}
	res, err := s.Sandbox.Run(ctx, sandbox.Spec{Lang: l, Source: code, Stdin: []byte(stdin)})
	if err != nil {
		return "", true, err
	}
	var b strings.Builder
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
