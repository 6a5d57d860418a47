package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sandboxUID is the host uid programs run as when the host runs as root,
// so that the process limit applies to them (it never applies to root).
const sandboxUID = 65534

// inNSUID is the uid a program has inside its namespace when the host is
// root (the init is uid 0 there); an unprivileged host maps only itself,
// as uid 0.
const inNSUID = 1000

// Threads the process limits allow on top of Limits.Procs: the init and
// the exec stage are Go processes with threads of their own, and a
// Program runs in the Go runtime.
const (
	initThreads = 16
	goThreads   = 16
)

// runProcess runs a program in a child process: in a sandbox of its own
// (warm_linux.go), or, in mode none, as the exec stage on the host.
func (s *Sandbox) runProcess(ctx context.Context, spec Spec) (*Result, error) {
	if s.cfg.Mode == ModeNamespaces {
		return s.runIsolated(ctx, spec)
	}
	tmp, err := os.MkdirTemp("", "hive-sandbox-")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer os.RemoveAll(tmp)
	in := filepath.Join(tmp, "work")
	if err := writeInput(in, spec); err != nil {
		return nil, fmt.Errorf("sandbox: write files: %w", err)
	}
	tmpDir := filepath.Join(in, ".tmp")
	if err := os.Mkdir(tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	cfg, err := s.runConfig(spec, in, tmpDir)
	if err != nil {
		return nil, err
	}
	cfg.NoNS = true
	cfg.UID, cfg.GID = os.Geteuid(), os.Getegid()

	var stdin *os.File
	if len(spec.Stdin) > 0 {
		p := filepath.Join(tmp, "stdin")
		if err := os.WriteFile(p, spec.Stdin, 0o600); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		if stdin, err = os.Open(p); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		defer stdin.Close()
	}
	k := &killer{}
	stdout := newCapped(spec.Limits.Output, func() { k.kill(OutputLimit) })
	stderr := newCapped(spec.Limits.Output, func() { k.kill(OutputLimit) })
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{"hive-sandbox-" + stageExec},
		Env:         []string{stageEnv + "=" + stageExec, configEnv + "=" + string(b), stageGORACE},
		Dir:         cfg.Dir,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 2 * time.Second
	rep, rw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer rep.Close()
	cmd.ExtraFiles = []*os.File{rw}

	start := time.Now()
	err = cmd.Start()
	rw.Close()
	if err != nil {
		return nil, s.startError(err)
	}
	k.set(cmd.Process, true)
	wall := time.AfterFunc(spec.Limits.Wall, func() { k.kill(WallTimeout) })
	stop := context.AfterFunc(ctx, func() { k.kill(Canceled) })
	waitErr := cmd.Wait()
	elapsed := time.Since(start)
	wall.Stop()
	stop()
	k.stop()
	reports, err := readReports(rep)
	if err != nil {
		return nil, err
	}
	return collect(spec, outcome{state: cmd.ProcessState, waitErr: waitErr, elapsed: elapsed, stdout: stdout, stderr: stderr,
		reports: reports, killed: k.reason(), memMode: MemoryPerProcess})
}

// runConfig returns what the exec stage needs to run spec with workDir
// as its working directory: the interpreter's command line, the
// environment, the limits, and the host paths it needs bound.
func (s *Sandbox) runConfig(spec Spec, workDir, tmpDir string) (*initConfig, error) {
	cfg := &initConfig{
		Binds:   append([]string{}, systemDirs...),
		Dir:     workDir,
		Disk:    spec.Limits.Disk,
		Rlimits: rlimits(spec.Limits),
		// PYTHONHASHSEED=0: the same code iterates its sets and dicts of
		// strings in the same order on every run, so that a verdict does
		// not change from one run to the next.
		Env: mergeEnv([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + workDir, "TMPDIR=" + tmpDir,
			"LANG=C.UTF-8", "LC_ALL=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8", "PYTHONHASHSEED=0"}, spec.Env),
	}
	switch spec.Lang {
	case Python:
		py, err := s.python()
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		for _, b := range py.Binds {
			cfg.Binds = appendPath(cfg.Binds, b)
		}
		// No -E: the environment is the sandbox's own (above), and its
		// PYTHON* settings must apply.
		cfg.Argv = []string{py.Exe, "-s", filepath.Join(workDir, "main.py")}
	case Shell:
		sh, err := shellInfo(s.cfg.Shell)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		if real, err := filepath.EvalSymlinks(sh); err == nil && !underSystem(real) {
			cfg.Binds = appendPath(cfg.Binds, filepath.Dir(real))
		}
		cfg.Argv = []string{sh, filepath.Join(workDir, "main.sh")}
	case Exec:
		// A verifier such as pytest may need the Python the sandbox
		// runs; bind it when there is one.
		if py, err := s.python(); err == nil {
			for _, b := range py.Binds {
				cfg.Binds = appendPath(cfg.Binds, b)
			}
		}
		cfg.Argv, cfg.Lookup = append([]string(nil), spec.Argv...), true
	default:
		cfg.Program = string(spec.Lang)
		cfg.Argv = []string{filepath.Join(workDir, mainFile(spec.Lang))}
		// The process limit counts threads, and the Go runtime of a
		// Program needs a few of its own.
		for i := range cfg.Rlimits {
			if cfg.Rlimits[i].Resource == unix.RLIMIT_NPROC {
				cfg.Rlimits[i].Cur += goThreads
				cfg.Rlimits[i].Max += goThreads
			}
		}
	}
	return cfg, nil
}

// outcome is what the host saw of a run, for collect.
type outcome struct {
	state          *os.ProcessState
	waitErr        error
	elapsed        time.Duration
	stdout, stderr *capped
	reports        []report
	killed         Reason // why the host stopped it, if it did
	isolated       bool
	memMode        string
	cg             *cgroupRun // nil without one
	sampled        int64      // the sampler's peak, 0 without one
}

// collect makes the Result of a run from what the host saw.
func collect(spec Spec, o outcome) (*Result, error) {
	var ee *exec.ExitError
	if o.waitErr != nil && !errors.As(o.waitErr, &ee) && !errors.Is(o.waitErr, exec.ErrWaitDelay) {
		return nil, fmt.Errorf("sandbox: wait: %w", o.waitErr)
	}
	res := &Result{Wall: o.elapsed, Isolated: o.isolated, ExitCode: -1, MemoryMode: o.memMode}
	res.Stdout, res.StdoutTruncated = o.stdout.result()
	res.Stderr, res.StderrTruncated = o.stderr.result()
	if ru, ok := o.state.SysUsage().(*syscall.Rusage); ok {
		res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		res.Memory = ru.Maxrss * 1024
	}
	var last *report
	for i := range o.reports {
		if o.reports[i].Error != "" && o.killed == "" {
			return nil, fmt.Errorf("sandbox: %s", o.reports[i].Error)
		}
		if o.reports[i].Status != nil {
			last = &o.reports[i]
		}
	}
	if last != nil {
		res.CPU = time.Duration(last.UTime+last.STime) * time.Microsecond
		res.Memory = last.MaxRSS * 1024
	}
	if o.cg != nil {
		if peak := o.cg.peak(); peak > 0 {
			res.Memory = peak
		}
	}
	res.Memory = max(res.Memory, o.sampled)
	switch {
	case o.killed != "":
		res.Reason, res.Signal = o.killed, "killed"
	case last != nil:
		res.classify(unix.WaitStatus(*last.Status), spec)
	case !o.isolated:
		res.classify(unix.WaitStatus(o.state.Sys().(syscall.WaitStatus)), spec)
	default:
		// The init died without a word: a program in an unprivileged
		// sandbox (which shares its uid) may have killed it.
		ws := o.state.Sys().(syscall.WaitStatus)
		if !ws.Signaled() {
			return nil, fmt.Errorf("sandbox: init exited with %v without a report", o.state)
		}
		res.classify(unix.WaitStatus(ws), spec)
	}
	if o.cg != nil && o.cg.oomKilled() && res.Reason != WallTimeout && res.Reason != Canceled && res.Reason != OutputLimit {
		res.Reason = MemoryLimit
	}
	return res, nil
}

// mergeEnv returns base with the entries of extra added, replacing those
// of the same name.
func mergeEnv(base, extra []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range extra {
		name, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if strings.HasPrefix(b, name+"=") {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// physicalMemory returns the machine's RAM in bytes (1 GiB if unknown).
func physicalMemory() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil || si.Totalram == 0 {
		return 1 << 30
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// classify fills Reason, ExitCode and Signal from the program's status.
func (r *Result) classify(ws unix.WaitStatus, spec Spec) {
	switch {
	case ws.Exited():
		r.Reason, r.ExitCode = Exited, ws.ExitStatus()
		if _, ok := lookupProgram(spec.Lang); ok && r.ExitCode == 2 {
			r.Stderr = trimGoTrace(r.Stderr)
		}
		// An interpreter that could not get memory says so and exits 1;
		// the Go runtime of a Program throws and exits 2 (66 when the
		// race detector's allocator fails first).
		if r.ExitCode != 0 && bytes.Contains(lastLines(r.Stderr, 3), []byte("MemoryError")) ||
			(r.ExitCode == 2 || r.ExitCode == 66) && goOutOfMemory(r.Stderr) {
			r.Reason = MemoryLimit
		}
	case ws.Signaled():
		sig := ws.Signal()
		r.Reason, r.Signal = Signaled, unix.SignalName(sig)
		switch {
		case sig == unix.SIGXCPU, sig == unix.SIGKILL && r.CPU >= spec.Limits.CPU*9/10:
			r.Reason = CPULimit
		case sig == unix.SIGXFSZ:
			r.Reason = FileLimit
		}
	}
}

// trimGoTrace cuts the goroutine stacks off a Go runtime crash of a
// [Program] (fatal errors print every goroutine, whatever GOTRACEBACK
// says): tens of KB of Hive's source paths that tell whoever reads the
// output nothing, keeping the "fatal error" line above them.
func trimGoTrace(stderr []byte) []byte {
	i := bytes.Index(append([]byte{'\n'}, stderr...), []byte("\nfatal error: "))
	if i < 0 {
		return stderr
	}
	j := bytes.IndexByte(stderr[i:], '\n') // the end of the fatal error's line
	if j < 0 || i+j+1 == len(stderr) {
		return stderr
	}
	return append(stderr[:i+j+1:i+j+1], "[the Go runtime's trace is cut]\n"...)
}

// goOutOfMemory reports whether stderr ends with a Go runtime crash for
// want of memory: an allocation the address-space limit refused, or a
// goroutine stack grown past its maximum.
func goOutOfMemory(stderr []byte) bool {
	for _, msg := range []string{"\nfatal error: runtime: out of memory", "\nfatal error: out of memory",
		"\nfatal error: stack overflow", "\nfatal error: runtime: cannot allocate memory",
		"\nfatal error: too many address space collisions for -race mode", "ERROR: ThreadSanitizer failed to allocate"} {
		if bytes.Contains(append([]byte{'\n'}, stderr...), []byte(msg)) {
			return true
		}
	}
	return false
}

// namespaceAttr starts a child in new namespaces. As root, the namespace
// maps root to root (for the init) and inNSUID to sandboxUID (for the
// program); otherwise it maps the caller's ids to 0.
func namespaceAttr(root bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
		Pdeathsig: syscall.SIGKILL,
	}
	if root {
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: inNSUID, HostID: sandboxUID, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: inNSUID, HostID: sandboxUID, Size: 1}}
		attr.GidMappingsEnableSetgroups = true
	} else {
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	return attr
}

// rlimits are the per-process limits the exec stage sets on the program.
func rlimits(l Limits) []rlimit {
	cpu := uint64((l.CPU + time.Second - 1) / time.Second)
	return []rlimit{
		{unix.RLIMIT_CORE, 0, 0},
		{unix.RLIMIT_CPU, cpu, cpu + 1},
		{unix.RLIMIT_AS, uint64(l.Memory), uint64(l.Memory)},
		{unix.RLIMIT_NPROC, uint64(l.Procs), uint64(l.Procs)},
		{unix.RLIMIT_FSIZE, uint64(l.Disk), uint64(l.Disk)},
		{unix.RLIMIT_NOFILE, uint64(l.OpenFiles), uint64(l.OpenFiles)},
		{unix.RLIMIT_MEMLOCK, 0, 0},
		{unix.RLIMIT_MSGQUEUE, 0, 0},
	}
}

// writeInput writes the program and its files into dir.
func writeInput(dir string, spec Spec) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{}
	if spec.Lang != Exec {
		files[mainFile(spec.Lang)] = []byte(spec.Source)
	}
	for k, v := range spec.Files {
		files[k] = v
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, body, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// readReports reads the JSON lines the inner stages wrote.
func readReports(r io.Reader) ([]report, error) {
	var out []report
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rep report
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			return nil, fmt.Errorf("sandbox: bad report %q: %w", sc.Text(), err)
		}
		out = append(out, rep)
	}
	return out, sc.Err()
}

// killer stops the child once, remembering the first reason. A reason
// that comes before the child started is applied when it starts.
type killer struct {
	mu     sync.Mutex // guards the fields below
	proc   *os.Process
	group  bool // mode none: kill the process group
	done   bool // the child was waited for: kill nothing any more
	why    Reason
	queued Reason
	hard   *time.Timer
}

func (k *killer) set(p *os.Process, group bool) {
	k.mu.Lock()
	k.proc, k.group = p, group
	q := k.queued
	k.mu.Unlock()
	if q != "" {
		k.kill(q)
	}
}

func (k *killer) kill(why Reason) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.done || k.why != "":
		return
	case k.proc == nil:
		if k.queued == "" {
			k.queued = why
		}
		return
	}
	k.why = why
	if k.group {
		syscall.Kill(-k.proc.Pid, syscall.SIGKILL)
		k.proc.Kill()
		return
	}
	// The init kills every process of its namespace on SIGTERM and
	// reports what they used; if it does not exit promptly, killing it
	// makes the kernel kill them all.
	k.proc.Signal(syscall.SIGTERM)
	p := k.proc
	k.hard = time.AfterFunc(time.Second, func() { p.Kill() })
}

// stop is called once the child was waited for. In mode none it kills
// what the program left in its process group.
func (k *killer) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.group && k.proc != nil {
		syscall.Kill(-k.proc.Pid, syscall.SIGKILL)
	}
	if k.hard != nil {
		k.hard.Stop()
	}
	k.done = true
}

func (k *killer) reason() Reason {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.why
}

// probe starts one empty sandbox to learn whether this machine can.
func probe(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "hive-sandbox-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg := &initConfig{Root: filepath.Join(tmp, "root"), Binds: systemDirs, Probe: true}
	if err := os.Mkdir(cfg.Root, 0o700); err != nil {
		return err
	}
	root := os.Geteuid() == 0
	if root {
		cfg.UID, cfg.GID, cfg.Groups = inNSUID, inNSUID, true
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	rep, rw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer rep.Close()
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{"hive-sandbox-probe"}
	cmd.Env = []string{stageEnv + "=" + stageInit, configEnv + "=" + string(b), stageGORACE}
	cmd.SysProcAttr = namespaceAttr(root)
	cmd.ExtraFiles = []*os.File{rw}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Start()
	rw.Close()
	if err != nil {
		return startError(err)
	}
	waitErr := cmd.Wait()
	reports, _ := readReports(rep)
	for _, r := range reports {
		if r.Error != "" {
			return setupError(r.Error)
		}
	}
	if waitErr != nil || len(reports) == 0 {
		if strings.Contains(stderr.String(), "hive-sandbox") || waitErr == nil {
			waitErr = fmt.Errorf("%v: %s", waitErr, strings.TrimSpace(stderr.String()))
		}
		return &UnavailableError{Cause: "the sandbox init did not start (does main call sandbox.Init first?)", Err: waitErr,
			Fix: "call sandbox.Init() at the top of main and of TestMain"}
	}
	return nil
}

func (s *Sandbox) startError(err error) error { return startError(err) }

// startError explains why new namespaces could not be created.
func startError(err error) error {
	return diagnose(err, os.Geteuid(), func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	})
}

// diagnose explains err, a failure to create namespaces, from the sysctls
// that read returns.
func diagnose(err error, euid int, read func(path string) string) error {
	none := " or run with --sandbox=none to run code without isolation"
	switch {
	case read("/proc/sys/user/max_user_namespaces") == "0":
		return &UnavailableError{Cause: "user namespaces are disabled (user.max_user_namespaces=0)", Err: err,
			Fix: "run 'sudo sysctl -w user.max_user_namespaces=10000'" + none}
	case euid != 0 && read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
		return &UnavailableError{Cause: "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0)", Err: err,
			Fix: "run 'sudo sysctl -w kernel.unprivileged_userns_clone=1'" + none}
	case euid != 0 && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
		return &UnavailableError{Cause: "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)", Err: err,
			Fix: "run 'sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0' or give hive an AppArmor profile with 'userns,'" + none}
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENOSYS):
		return &UnavailableError{Cause: "creating namespaces is denied (a container without CAP_SYS_ADMIN, or a seccomp profile that blocks clone/unshare)", Err: err,
			Fix: "run the container with --security-opt seccomp=unconfined --security-opt apparmor=unconfined (or --privileged)" + none}
	}
	return &UnavailableError{Cause: "cannot create namespaces", Err: err, Fix: "check the kernel supports user namespaces," + none}
}

// setupError explains a failure of the init while building the root.
func setupError(msg string) error {
	err := errors.New(msg)
	none := " or run with --sandbox=none to run code without isolation"
	switch {
	case strings.HasPrefix(msg, "mount /proc"):
		return &UnavailableError{Cause: "mounting a new /proc is denied (the container masks parts of /proc)", Err: err,
			Fix: "run the container with --privileged or with an unmasked /proc (--security-opt systempaths=unconfined)" + none}
	case strings.Contains(msg, "operation not permitted") || strings.Contains(msg, "permission denied"):
		return &UnavailableError{Cause: "building the sandbox's root is denied", Err: err,
			Fix: "run the container with --security-opt apparmor=unconfined (or --privileged)" + none}
	}
	return &UnavailableError{Cause: "building the sandbox's root failed", Err: err, Fix: "report this as a bug," + none}
}
