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
// process limit applies to it. Memory and pids limits of a cgroup are
// added when this process may create cgroups (see Memory below).
//
// Because the binary re-executes itself, every main (and every TestMain of
// a package whose tests run the sandbox) must call [Init] first thing.
//
// JavaScript runs the same way, in goja, as the built-in [Program]
// "javascript": Go code the child runs in place of an interpreter, after
// the same rlimits, seccomp filter, cgroup and dropped privileges, so Hive
// can check JavaScript on a machine without Python and a hostile script
// cannot stall or bloat Hive. Callers register their own programs with
// [Init]. [Exec] runs a command line (a trusted verifier such as pytest)
// in the same sandbox.
//
// # Memory
//
// Limits.Memory bounds each process's address space (RLIMIT_AS) and, when
// Hive can make cgroups (as root, or in a delegated cgroup v2 subtree),
// the whole run's memory in its own cgroup. Without cgroups the host adds
// up the private resident memory of the run's processes every few
// milliseconds and kills the run when the total passes the limit. Either
// way Result.Memory is the total of the run, and Result.MemoryMode says
// how it was kept. Config.MemoryCeiling bounds the sum of the memory limits
// of the runs in progress: a run waits for room.
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

	"golang.org/x/sync/semaphore"
)

// Lang is the language of a program.
type Lang string

// The languages a [Sandbox] runs.
const (
	Python     Lang = "python"
	JavaScript Lang = "javascript"
	Shell      Lang = "shell"
	// Exec runs Spec.Argv: argv[0] is looked up in the sandbox's PATH,
	// which sees the host's system directories read-only.
	Exec Lang = "exec"
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
	case "exec":
		return Exec, nil
	}
	if _, ok := lookupProgram(Lang(s)); ok {
		return Lang(s), nil
	}
	want := []string{"python", "javascript", "shell", "exec"}
	for _, n := range programNames() {
		if Lang(n) != JavaScript {
			want = append(want, n)
		}
	}
	return "", fmt.Errorf("unknown language %q (want %s)", s, strings.Join(want, ", "))
}

// Spec is one program to run.
type Spec struct {
	Lang   Lang
	Source string // the program; unused (and must be empty) with Exec
	// Argv is the command line of an Exec run (Exec only): argv[0] is a
	// path or a name looked up in the sandbox's PATH.
	Argv []string
	// Env holds KEY=VALUE pairs added to the scrubbed environment of the
	// run (a default of the same name is replaced). PATH and HOME may not
	// be set.
	Env   []string
	Stdin []byte
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
	Memory    int64         // bytes of the whole run (cgroup or sampled) and of address space per process (see [Program] for Go)
	Procs     int           // processes (RLIMIT_NPROC, and cgroup pids.max when delegated)
	Output    int           // bytes kept of stdout and of stderr each; more ends the run
	Disk      int64         // bytes of the writable work dir and of /tmp each, and largest file
	OpenFiles int           // open files per process
}

// DefaultWarm is how many sandboxes a [Sandbox] keeps started per set of
// binds when Config.Warm is 0.
const DefaultWarm = 2

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
	Memory int64         `json:"peak_bytes"` // peak memory of the whole run, as MemoryMode measures it
	// MemoryMode says how the run's memory was limited and measured: one
	// of MemoryCgroupV2, MemoryCgroupV1, MemorySampled, MemoryPerProcess.
	MemoryMode string `json:"memory_mode,omitempty"`

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

// How a run's memory is limited and measured (Result.MemoryMode).
const (
	// MemoryCgroupV2 and MemoryCgroupV1: the run has its own cgroup whose
	// memory limit is Limits.Memory; Result.Memory is the cgroup's peak.
	MemoryCgroupV2 = "cgroup_v2"
	MemoryCgroupV1 = "cgroup_v1"
	// MemorySampled: no cgroup; each process's address space is limited
	// and the host adds up the private resident memory of the run's
	// processes every few milliseconds, killing the run (memory_limit)
	// when the total passes Limits.Memory. A burst shorter than the
	// sampling period may pass unseen.
	MemorySampled = "sampled"
	// MemoryPerProcess: only each process's address space is limited
	// (ModeNone); Result.Memory is the largest process's peak.
	MemoryPerProcess = "per_process"
)

// sampleEvery is how often, without a cgroup, the host adds up the memory
// of a run's processes (and, with one, looks for an out-of-memory kill).
const sampleEvery = 10 * time.Millisecond

// Config configures a [Sandbox]. The zero value is ready: namespaces,
// DefaultLimits, "python3" and "/bin/sh" from the host, cgroups when
// available, a memory ceiling of half the machine's RAM.
type Config struct {
	Mode   Mode
	Limits Limits // defaults for zero fields of Spec.Limits; zero fields take DefaultLimits
	// Python is the Python interpreter to run, a path or a name looked up
	// in PATH; default "python3". It is resolved once (through pyenv shims
	// and virtualenvs) to the real executable and its prefixes.
	Python string
	// Shell is the shell that runs shell programs; default "/bin/sh".
	Shell string
	// Cgroups is "auto" (the default, ""): give each run its own cgroup
	// when this process may (as root, with cgroup v2 or the v1 memory and
	// pids controllers, or in a delegated cgroup v2 subtree); or "off":
	// never, and sample the runs' memory instead.
	Cgroups string
	// MemoryCeiling bounds the sum of Limits.Memory of the runs in
	// progress; a run waits (honoring its context) until its limit fits.
	// Default: half of the physical memory.
	MemoryCeiling int64
	// Warm is how many sandboxes are kept started ahead of the runs
	// (namespaces made, root built, waiting for a program), for each set
	// of host paths a root binds: one for Python and exec runs, one for
	// shell and JavaScript on most machines. Each run still gets one of
	// its own, used once. Default 2; negative keeps none (each run
	// starts its sandbox when it needs it). [Sandbox.Close] stops them.
	Warm int
}

// Sandbox runs programs. It is safe for concurrent use; every Run is
// isolated from the others.
type Sandbox struct {
	cfg    Config
	log    *slog.Logger
	limits Limits

	python  func() (*pythonInfo, error) // resolved once
	cgroup  *cgroupParent               // nil when cgroups are not used
	cgNote  string                      // why cgroups are not used
	ceiling int64
	mem     *semaphore.Weighted // of ceiling bytes; each run holds its Limits.Memory
	warm    int                 // sandboxes kept ready per set of binds
	pool    warmPool
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
	switch cfg.Cgroups {
	case "", "auto":
		cfg.Cgroups = "auto"
	case "off":
	default:
		return nil, fmt.Errorf("sandbox: unknown cgroups setting %q (want auto or off)", cfg.Cgroups)
	}
	if cfg.MemoryCeiling < 0 {
		return nil, fmt.Errorf("sandbox: negative memory ceiling %d", cfg.MemoryCeiling)
	}
	if cfg.MemoryCeiling == 0 {
		cfg.MemoryCeiling = physicalMemory() / 2
	}
	s := &Sandbox{cfg: cfg, log: log, limits: cfg.Limits.WithDefaults(DefaultLimits), ceiling: cfg.MemoryCeiling, warm: cfg.Warm}
	if s.warm == 0 {
		s.warm = DefaultWarm
	}
	s.warm = max(s.warm, 0)
	s.mem = semaphore.NewWeighted(s.ceiling)
	s.python = sync.OnceValues(func() (*pythonInfo, error) { return resolvePython(cfg.Python) })
	if cfg.Mode == ModeNone {
		log.Warn("sandbox: running code WITHOUT isolation (mode none): programs can read the user's files and reach the network")
		return s, nil
	}
	if err := probe(ctx); err != nil {
		return nil, err
	}
	if cfg.Cgroups == "off" {
		s.cgNote = "cgroups are off by configuration (cgroups = \"off\"): memory is sampled"
	} else {
		s.cgroup, s.cgNote = findCgroup()
	}
	if s.cgroup == nil {
		log.Debug("sandbox: cgroup limits not used", "why", s.cgNote)
	}
	return s, nil
}

// Limits returns the default limits of s.
func (s *Sandbox) Limits() Limits { return s.limits }

// MemoryMode returns how runs' memory is limited and measured: one of
// MemoryCgroupV2, MemoryCgroupV1, MemorySampled, MemoryPerProcess.
func (s *Sandbox) MemoryMode() string {
	switch {
	case s.cfg.Mode == ModeNone:
		return MemoryPerProcess
	case s.cgroup != nil:
		return s.cgroup.mode()
	}
	return MemorySampled
}

// MemoryCeiling returns the bound on the sum of the memory limits of the
// runs in progress.
func (s *Sandbox) MemoryCeiling() int64 { return s.ceiling }

// Run runs spec and returns its outcome. The error is for failures of the
// sandbox (a bad Spec, a setup step that failed), not of the program.
// Run first waits until spec's memory limit fits under the ceiling; a
// context that ends meanwhile gives a Canceled result.
func (s *Sandbox) Run(ctx context.Context, spec Spec) (*Result, error) {
	spec.Limits = spec.Limits.WithDefaults(s.limits)
	if err := checkSpec(spec); err != nil {
		return nil, err
	}
	weight := min(spec.Limits.Memory, s.ceiling)
	if err := s.mem.Acquire(ctx, weight); err != nil {
		return &Result{Reason: Canceled, ExitCode: -1, Isolated: s.cfg.Mode == ModeNamespaces, MemoryMode: s.MemoryMode()}, nil
	}
	defer s.mem.Release(weight)
	return s.runProcess(ctx, spec)
}

// checkSpec rejects a Spec of an unknown language, a misplaced Argv or
// Source, a bad environment and file names that would land outside the
// work dir or collide with the program's own file.
func checkSpec(spec Spec) error {
	switch spec.Lang {
	case Python, Shell:
	case Exec:
		if len(spec.Argv) == 0 || spec.Argv[0] == "" {
			return errors.New("sandbox: an exec run needs Argv")
		}
		if spec.Source != "" {
			return errors.New("sandbox: an exec run takes Argv, not Source")
		}
	default:
		if _, ok := lookupProgram(spec.Lang); !ok {
			return fmt.Errorf("sandbox: unknown language %q (neither built in nor a Program registered with sandbox.Init)", spec.Lang)
		}
	}
	if spec.Lang != Exec && len(spec.Argv) > 0 {
		return fmt.Errorf("sandbox: Argv is for exec runs, not %s", spec.Lang)
	}
	for _, s := range spec.Argv {
		if strings.ContainsRune(s, 0) {
			return fmt.Errorf("sandbox: argument %q holds a NUL byte", s)
		}
	}
	if err := checkEnv(spec.Env); err != nil {
		return err
	}
	for name := range spec.Files {
		clean := path.Clean(name)
		if name == "" || path.IsAbs(name) || clean != name || clean == "." || strings.HasPrefix(clean, "../") || clean == ".." || strings.ContainsRune(name, 0) {
			return fmt.Errorf("sandbox: bad file name %q: want a clean relative path", name)
		}
		if spec.Lang != Exec && clean == mainFile(spec.Lang) {
			return fmt.Errorf("sandbox: file name %q is reserved for the program", name)
		}
	}
	return nil
}

// checkEnv rejects entries of Spec.Env that are not NAME=VALUE with a
// valid name, and PATH and HOME, which the sandbox sets.
func checkEnv(env []string) error {
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || !validEnvName(name) || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("sandbox: bad environment entry %q: want NAME=VALUE", kv)
		}
		if name == "PATH" || name == "HOME" {
			return fmt.Errorf("sandbox: the environment may not set %s: the sandbox sets it", name)
		}
	}
	return nil
}

func validEnvName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// mainFile is the name of the program's source in the work dir.
func mainFile(l Lang) string {
	switch l {
	case Python:
		return "main.py"
	case Shell:
		return "main.sh"
	case JavaScript:
		return "main.js"
	}
	return "main." + string(l)
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
