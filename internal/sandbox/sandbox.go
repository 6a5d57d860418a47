// Package sandbox runs untrusted, model-written code with limits, on Linux,
// with nothing to install.
//
// The API is shaped like os/exec but takes a context first: a [Spec] names
// the language, the source, stdin, extra files and [Limits]; [Sandbox.Run]
// returns a [Result] with the exit status, capped stdout and stderr, wall
// and CPU time, peak memory and the [Reason] the program stopped. Run's
// error is for failures of the sandbox itself, never of the program: a
// program that crashes, loops or floods its output is a Result.
//
// # How a program is contained
//
// Python and shell programs run in a child process built from the same
// kernel mechanisms bubblewrap uses. The host re-executes its own binary
// (/proc/self/exe) as a tiny init inside new user, pid, network, mount, IPC
// and UTS namespaces. The init mounts a fresh tmpfs root holding read-only
// bind mounts of what the interpreter needs (/usr, the Python prefix, the
// dynamic loader's cache), a minimal /dev, a new /proc, a private /tmp and
// a private writable /box (a size-limited tmpfs holding the source and the
// spec's files), then pivot_roots into it. The network namespace has only a
// loopback that is down. The init then starts a second stage of the binary
// that sets the rlimits (CPU, address space, processes, file size, open
// files, no core), no_new_privs and a seccomp BPF filter, and execs the
// interpreter. The init is pid 1 of the namespace: it reaps every orphan;
// when the program exits or the host stops the run (wall timeout, output
// limit, cancel), it kills every process left in the namespace, reaps them
// and reports what they all used. Should it not exit, the host kills it,
// and the kernel takes the whole namespace down with it. When the host
// runs as root the program runs as an unprivileged host uid (65534), so the
// process limit applies to it. cgroup v2 memory and pids limits are added
// when the machine delegates those controllers to this process.
//
// Because the binary re-executes itself, every main (and every TestMain of
// a package whose tests run the sandbox) must call [Init] first thing.
//
// JavaScript runs in-process in goja, with no host access (no require, no
// file system), a wall-clock interrupt and an approximate heap guard, so
// Hive can check JavaScript on a machine without Python.
//
// Where user namespaces are not available, [New] fails with an
// [*UnavailableError] that names the cause and the fix; code runs
// unsandboxed only with [ModeNone], and that is logged.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"
)

// Lang is the language of a program.
type Lang string

// The languages a [Sandbox] runs.
const (
	Python     Lang = "python"
	JavaScript Lang = "javascript"
	Shell      Lang = "shell"
)

// ParseLang returns the Lang named by s ("python", "py", "javascript",
// "js", "shell", "sh", "bash").
func ParseLang(s string) (Lang, error) {
	switch strings.ToLower(s) {
	case "python", "python3", "py":
		return Python, nil
	case "javascript", "js":
		return JavaScript, nil
	case "shell", "sh", "bash":
		return Shell, nil
	}
	return "", fmt.Errorf("unknown language %q (want python, javascript or shell)", s)
}

// Spec is one program to run.
type Spec struct {
	Lang   Lang
	Source string
	Stdin  []byte
	// Files are written into the work directory before the program starts,
	// keyed by a relative slash-separated path.
	Files map[string][]byte
	// Limits left zero take the sandbox's defaults.
	Limits Limits
}

// Limits bound one run. A zero field means the default of the [Sandbox].
type Limits struct {
	Wall      time.Duration // wall-clock time, then the whole run is killed
	CPU       time.Duration // CPU time of each process (RLIMIT_CPU, rounded up to seconds)
	Memory    int64         // bytes of address space per process, and of the cgroup when delegated
	Procs     int           // processes (RLIMIT_NPROC, and cgroup pids.max when delegated)
	Output    int           // bytes kept of stdout and of stderr each; more ends the run
	Disk      int64         // bytes of the writable work dir and of /tmp each, and largest file
	OpenFiles int           // open files per process
}

// DefaultLimits are the limits of a [Sandbox] whose Config leaves them zero.
var DefaultLimits = Limits{
	Wall:      10 * time.Second,
	CPU:       10 * time.Second,
	Memory:    1 << 30,
	Procs:     64,
	Output:    1 << 20,
	Disk:      64 << 20,
	OpenFiles: 256,
}

// WithDefaults fills zero fields of l from d.
func (l Limits) WithDefaults(d Limits) Limits {
	if l.Wall <= 0 {
		l.Wall = d.Wall
	}
	if l.CPU <= 0 {
		l.CPU = d.CPU
	}
	if l.Memory <= 0 {
		l.Memory = d.Memory
	}
	if l.Procs <= 0 {
		l.Procs = d.Procs
	}
	if l.Output <= 0 {
		l.Output = d.Output
	}
	if l.Disk <= 0 {
		l.Disk = d.Disk
	}
	if l.OpenFiles <= 0 {
		l.OpenFiles = d.OpenFiles
	}
	return l
}

// Reason says why a program stopped.
type Reason string

// The reasons a program stops.
const (
	Exited      Reason = "exited"       // it exited on its own; see Result.ExitCode
	Signaled    Reason = "signal"       // a signal killed it; see Result.Signal
	WallTimeout Reason = "wall_timeout" // it ran past Limits.Wall
	CPULimit    Reason = "cpu_limit"    // it used Limits.CPU of CPU time
	MemoryLimit Reason = "memory_limit" // it failed to get memory within Limits.Memory
	OutputLimit Reason = "output_limit" // it wrote more than Limits.Output
	FileLimit   Reason = "file_limit"   // it wrote a file past Limits.Disk
	Canceled    Reason = "canceled"     // the caller's context ended first
)

// Result is the outcome of one run.
type Result struct {
	Reason   Reason `json:"reason"`
	ExitCode int    `json:"exit_code"`        // -1 when a signal ended the program
	Signal   string `json:"signal,omitempty"` // e.g. "killed", when a signal ended it

	Stdout          []byte `json:"-"` // as a string in JSON
	Stderr          []byte `json:"-"`
	StdoutTruncated bool   `json:"stdout_truncated,omitempty"`
	StderrTruncated bool   `json:"stderr_truncated,omitempty"`

	Wall   time.Duration `json:"wall_ns"`
	CPU    time.Duration `json:"cpu_ns"`     // user + system of every process of the run
	Memory int64         `json:"peak_bytes"` // peak resident memory of the largest process (or of the cgroup)

	Isolated bool `json:"isolated"` // false when the run used ModeNone
}

// MarshalJSON writes Stdout and Stderr as strings.
func (r *Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		*plain
		Stdout string `json:"stdout"`
		Stderr string `json:"stderr"`
	}{(*plain)(r), string(r.Stdout), string(r.Stderr)})
}

// OK reports whether the program exited with status 0.
func (r *Result) OK() bool { return r.Reason == Exited && r.ExitCode == 0 }

// Mode chooses how programs are isolated.
type Mode int

const (
	// ModeNamespaces isolates with namespaces, seccomp, rlimits and
	// cgroups where delegated. It is the zero value.
	ModeNamespaces Mode = iota
	// ModeNone runs programs as plain child processes with rlimits and
	// seccomp but no namespaces: they can read what the user can read and
	// reach the network. Only for machines where namespaces are not
	// available, and only when asked for.
	ModeNone
)

func (m Mode) String() string {
	if m == ModeNone {
		return "none"
	}
	return "namespaces"
}

// ParseMode parses "namespaces" (or "" or "on") and "none".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "namespaces", "on":
		return ModeNamespaces, nil
	case "none", "off":
		return ModeNone, nil
	}
	return 0, fmt.Errorf("unknown sandbox mode %q (want namespaces or none)", s)
}

// Config configures a [Sandbox]. The zero value is ready: namespaces,
// DefaultLimits, "python3" and "/bin/sh" from the host.
type Config struct {
	Mode   Mode
	Limits Limits // defaults for zero fields of Spec.Limits; zero fields take DefaultLimits
	// Python is the Python interpreter to run, a path or a name looked up
	// in PATH; default "python3". It is resolved once (through pyenv shims
	// and virtualenvs) to the real executable and its prefixes.
	Python string
	// Shell is the shell that runs shell programs; default "/bin/sh".
	Shell string
}

// Sandbox runs programs. It is safe for concurrent use; every Run is
// isolated from the others.
type Sandbox struct {
	cfg    Config
	log    *slog.Logger
	limits Limits

	python func() (*pythonInfo, error) // resolved once
	cgroup *cgroupParent               // nil when cgroups are not delegated
	cgNote string                      // why cgroups are not used
}

// New returns a Sandbox. With ModeNamespaces it checks, by starting one
// empty sandbox, that this machine can isolate code, and returns an
// [*UnavailableError] saying why and what to do if not.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Sandbox, error) {
	if log == nil {
		return nil, errors.New("sandbox: nil logger")
	}
	if cfg.Python == "" {
		cfg.Python = "python3"
	}
	if cfg.Shell == "" {
		cfg.Shell = "/bin/sh"
	}
	s := &Sandbox{cfg: cfg, log: log, limits: cfg.Limits.WithDefaults(DefaultLimits)}
	s.python = sync.OnceValues(func() (*pythonInfo, error) { return resolvePython(cfg.Python) })
	if cfg.Mode == ModeNone {
		log.Warn("sandbox: running code WITHOUT isolation (mode none): programs can read the user's files and reach the network")
		return s, nil
	}
	if err := probe(ctx); err != nil {
		return nil, err
	}
	s.cgroup, s.cgNote = findCgroup()
	if s.cgroup == nil {
		log.Debug("sandbox: cgroup limits not used", "why", s.cgNote)
	}
	return s, nil
}

// Limits returns the default limits of s.
func (s *Sandbox) Limits() Limits { return s.limits }

// Run runs spec and returns its outcome. The error is for failures of the
// sandbox (a bad Spec, a setup step that failed), not of the program.
func (s *Sandbox) Run(ctx context.Context, spec Spec) (*Result, error) {
	spec.Limits = spec.Limits.WithDefaults(s.limits)
	if err := checkFiles(spec.Files); err != nil {
		return nil, err
	}
	switch spec.Lang {
	case JavaScript:
		return runJS(ctx, spec)
	case Python, Shell:
		return s.runProcess(ctx, spec)
	}
	return nil, fmt.Errorf("sandbox: unknown language %q", spec.Lang)
}

// checkFiles rejects file names that would land outside the work dir or
// collide with the program's own file.
func checkFiles(files map[string][]byte) error {
	for name := range files {
		clean := path.Clean(name)
		if name == "" || path.IsAbs(name) || clean != name || clean == "." || strings.HasPrefix(clean, "../") || clean == ".." || strings.ContainsRune(name, 0) {
			return fmt.Errorf("sandbox: bad file name %q: want a clean relative path", name)
		}
		if clean == "main.py" || clean == "main.sh" {
			return fmt.Errorf("sandbox: file name %q is reserved for the program", name)
		}
	}
	return nil
}

// ErrUnavailable is matched (errors.Is) by every [*UnavailableError].
var ErrUnavailable = errors.New("sandbox unavailable")

// UnavailableError says why code cannot be isolated on this machine and
// what to do about it.
type UnavailableError struct {
	Cause string // what is missing
	Fix   string // what the user can do
	Err   error  // the underlying failure
}

func (e *UnavailableError) Error() string {
	msg := "sandbox unavailable: " + e.Cause
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }
