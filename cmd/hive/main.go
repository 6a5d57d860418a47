// Command hive runs swarms of language models: a lead model splits a job
// and dispatches workers, Hive verifies, repairs, prices and journals every
// call. Run "hive help" for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/verify"
)

// A command is one subcommand: its name, a one-line summary, and its Run.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

func commands() []command {
	return []command{
		{"demo", "run the offline demo: a cascade on HumanEval with real recorded answers", runDemo},
		{"run", "run a swarm on a task", runRun},
		{"ask", "send one prompt to one model and stream the answer", runAsk},
		{"runs", "list runs", runRuns},
		{"show", "show a run's tree with status, tokens and cost", runShow},
		{"apply", "write a run's patch into its workspace", runApply},
		{"resume", "continue a run that was stopped or killed", runResume},
		{"cancel", "cancel a run", runCancel},
		{"policy", "print the policy hive.toml sets and check the configuration against it", runPolicyCmd},
		{"approvals", "list what runs wait for a person to approve", runApprovals},
		{"approve", "approve or deny what a run waits for", runApprove},
		{"audit", "verify, export and sign the tamper-evident record of runs", runAudit},
		{"eval", "evaluate strategies on recorded benchmark answers", runEval},
		{"models", "list configured models with prices and limits", runModels},
		{"sandbox", "check or use the code sandbox", runSandbox},
		{"data", "fetch benchmark data sets", runData},
		{"serve", "serve the HTTP API and the live web view", runServe},
		{"mcp", "serve Hive's tools to an MCP client over stdio", runMCP},
	}
}

// Env is what a command may touch of the outside world, so tests can run
// commands in-process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// Environ lists the environment (os.Environ), for finding the
	// secrets that must never be printed; nil lists nothing.
	Environ func() []string
}

// exitError carries an exit code chosen by a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports bad command-line use (exit code 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// errSilent ends a command with a non-zero code after it has already said
// what went wrong.
var errSilent = errors.New("silent")

func main() {
	sandbox.Init(verify.Programs()...) // the sandbox re-executes hive as its init; returns at once otherwise
	mcp.Init()                         // so does an MCP server's network namespace
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Environ: os.Environ}
	code := Main(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}

// Main runs hive with args and returns the exit code.
func Main(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		return report(env.Stderr, err)
	}
	fmt.Fprintf(env.Stderr, "hive: unknown command %q; run \"hive help\" for the list\n", args[0])
	return 2
}

// report prints err as one line and returns the exit code for it.
func report(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if !errors.Is(err, errSilent) {
		fmt.Fprintf(w, "hive: %v\n", err)
	}
	return code
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Hive runs swarms of language models.\n\nUsage: hive COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"hive COMMAND -h\" for a command's flags.")
}
