package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/sandbox"
)

const sandboxUsage = `Usage:
  hive sandbox check [--json]      which isolation features work on this machine
  hive sandbox run [flags] FILE    run FILE in the sandbox and print its outcome

Run "hive sandbox run -h" for the flags of run.`

// runSandbox is "hive sandbox": check the sandbox, or run a file in it.
func runSandbox(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(env.Stderr, sandboxUsage)
		return usageErrorf("sandbox: missing subcommand (want check or run)")
	}
	switch args[0] {
	case "check":
		return runSandboxCheck(ctx, env, args[1:])
	case "run":
		return runSandboxRun(ctx, env, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(env.Stdout, sandboxUsage)
		return nil
	}
	return usageErrorf("sandbox: unknown subcommand %q (want check or run)", args[0])
}

func runSandboxCheck(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "sandbox check", "[--json]")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var g globalFlags
	g.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("sandbox check: unexpected argument %q", fs.Arg(0))
	}
	cfg, _, log, err := g.load(env)
	if err != nil {
		return err
	}
	rep := sandbox.Check(ctx, sandboxConfig(cfg), log)
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, f := range rep.Features {
			mark := "ok  "
			if !f.OK {
				mark = "no  "
			}
			fmt.Fprintf(env.Stdout, "%s %-22s %s\n", mark, f.Name, f.Detail)
		}
		if rep.Safe {
			fmt.Fprintln(env.Stdout, "\ncode runs isolated on this machine")
		}
	}
	if !rep.Safe {
		msg := "code cannot run isolated on this machine"
		if rep.Error != "" {
			msg += ": " + oneLine(rep.Error)
		}
		return errors.New(msg)
	}
	return nil
}

func runSandboxRun(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "sandbox run", "[flags] FILE")
	lang := fs.String("lang", "", "python, javascript, shell or a registered program (default: from the file's extension)")
	timeout := fs.Duration("timeout", 0, "wall-clock limit (default 10s)")
	memory := fs.String("memory", "", "memory limit, e.g. 512M or 1G (default 1G)")
	stdinPath := fs.String("stdin", "", "file to give the program as stdin")
	mode := fs.String("sandbox", "namespaces", "isolation: namespaces, or none to run WITHOUT isolation")
	cgroups := fs.String("cgroups", "", "auto: a cgroup per run when this machine allows; off: sample memory instead (default: [sandbox] cgroups of hive.toml, else auto)")
	asJSON := fs.Bool("json", false, "print the outcome as JSON")
	var g globalFlags
	g.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, log, err := g.load(env)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("sandbox run: want one FILE to run (see hive sandbox run -h)")
	}
	file := fs.Arg(0)
	src, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("sandbox run: %v (give the path of a program)", err)
	}
	l, err := langOf(*lang, file)
	if err != nil {
		return usageErrorf("sandbox run: %v", err)
	}
	m, err := sandbox.ParseMode(*mode)
	if err != nil {
		return usageErrorf("sandbox run: %v", err)
	}
	spec := sandbox.Spec{Lang: l, Source: string(src), Limits: sandbox.Limits{Wall: *timeout, CPU: *timeout}}
	if *memory != "" {
		if spec.Limits.Memory, err = config.ParseBytes(*memory); err != nil {
			return usageErrorf("sandbox run: --memory: %v", err)
		}
		if spec.Limits.Memory < 16<<20 {
			return usageErrorf("sandbox run: --memory %s: give at least 16M (a size takes a unit: 512M, 1G)", *memory)
		}
	}
	if *stdinPath != "" {
		if spec.Stdin, err = os.ReadFile(*stdinPath); err != nil {
			return fmt.Errorf("sandbox run: %v (fix --stdin)", err)
		}
	}
	if *cgroups != "" && *cgroups != "auto" && *cgroups != "off" {
		return usageErrorf("sandbox run: --cgroups %q: want auto or off", *cgroups)
	}
	sc := sandboxConfig(cfg) // hive.toml's limits and ceiling; the flags above override
	sc.Mode = m
	sc.Warm = -1 // one run: no sandbox to keep started for the next
	if *cgroups != "" {
		sc.Cgroups = *cgroups
	}
	sb, err := sandbox.New(ctx, sc, log)
	if err != nil {
		return fmt.Errorf("sandbox run: %s", oneLine(err.Error()))
	}
	res, err := sb.Run(ctx, spec)
	if err != nil {
		return fmt.Errorf("sandbox run: %s (run \"hive sandbox check\" to see what works here)", oneLine(err.Error()))
	}
	if *asJSON {
		if err := json.NewEncoder(env.Stdout).Encode(res); err != nil {
			return err
		}
	} else {
		printResult(env.Stdout, res)
	}
	if !res.OK() {
		return errSilent
	}
	return nil
}

// printResult prints a run's outcome for a person.
func printResult(w io.Writer, res *sandbox.Result) {
	section := func(name string, b []byte, truncated bool) {
		fmt.Fprintf(w, "--- %s (%d bytes)\n", name, len(b))
		if len(b) > 0 {
			w.Write(b)
			if b[len(b)-1] != '\n' {
				fmt.Fprintln(w)
			}
		}
		if truncated {
			fmt.Fprintf(w, "[%s truncated]\n", name)
		}
	}
	section("stdout", res.Stdout, res.StdoutTruncated)
	section("stderr", res.Stderr, res.StderrTruncated)
	fmt.Fprintln(w, "---")
	outcome := fmt.Sprintf("exit %d", res.ExitCode)
	if res.Signal != "" {
		outcome = "signal " + res.Signal
	}
	fmt.Fprintf(w, "stopped: %s (%s)\n", res.Reason, outcome)
	fmt.Fprintf(w, "wall: %v  cpu: %v  peak memory: %.1f MiB (%s)\n",
		res.Wall.Round(time.Millisecond), res.CPU.Round(time.Millisecond), float64(res.Memory)/(1<<20), res.MemoryMode)
	if !res.Isolated {
		fmt.Fprintln(w, "isolation: NONE (--sandbox=none)")
	}
}

// langOf returns the language named by flag, or guessed from the file name.
func langOf(flag, file string) (sandbox.Lang, error) {
	if flag != "" {
		return sandbox.ParseLang(flag)
	}
	switch strings.ToLower(filepath.Ext(file)) {
	case ".py":
		return sandbox.Python, nil
	case ".js", ".mjs":
		return sandbox.JavaScript, nil
	case ".sh":
		return sandbox.Shell, nil
	}
	return "", fmt.Errorf("cannot tell the language of %s: pass --lang python, javascript or shell", file)
}
