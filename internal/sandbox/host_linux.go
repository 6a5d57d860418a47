package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// runProcess runs a program in a child process.
func (s *Sandbox) runProcess(ctx context.Context, spec Spec) (*Result, error) {
	tmp, err := os.MkdirTemp("", "hive-sandbox-")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer os.RemoveAll(tmp)
	in := filepath.Join(tmp, "work")
	if err := writeInput(in, spec); err != nil {
		return nil, fmt.Errorf("sandbox: write files: %w", err)
	}
	isolated := s.cfg.Mode == ModeNamespaces
	workDir, tmpDir := "/box", "/tmp"
	if !isolated {
		workDir, tmpDir = in, filepath.Join(in, ".tmp")
		if err := os.Mkdir(tmpDir, 0o700); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	cfg := &initConfig{
		Root:    filepath.Join(tmp, "root"),
		Input:   in,
		Binds:   append([]string{}, systemDirs...),
		Dir:     workDir,
		Disk:    spec.Limits.Disk,
		Rlimits: rlimits(spec.Limits),
		NoNS:    !isolated,
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
	if err := os.Mkdir(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}

	var cg *cgroupRun
	if isolated && s.cgroup != nil {
		extra := initThreads
		if cfg.Program != "" {
			extra += goThreads
		}
		if cg, err = s.cgroup.start(spec.Limits, extra); err != nil {
			s.log.Warn("sandbox: cgroup limits not applied; sampling memory", "err", err)
			cg = nil
		} else {
			defer cg.close()
		}
	}
	memMode := MemoryPerProcess
	switch {
	case cg != nil && cg.v2:
		memMode = MemoryCgroupV2
	case cg != nil:
		memMode, cfg.Hold = MemoryCgroupV1, true
	case isolated:
		memMode = MemorySampled
	}

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
	cmd, err := s.command(cfg, isolated, cg)
	if err != nil {
		return nil, err
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
	var hold *os.File // held open until the init is in its v1 cgroups
	if cfg.Hold {
		hr, hw, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		defer hr.Close()
		hold = hw
		defer hold.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, hr)
	}

	start := time.Now()
	err = cmd.Start()
	rw.Close()
	if err != nil {
		return nil, s.startError(err)
	}
	if hold != nil {
		if err := cg.attach(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		hold.Close()
	}
	k.set(cmd.Process, !isolated)
	wall := time.AfterFunc(spec.Limits.Wall, func() { k.kill(WallTimeout) })
	stop := context.AfterFunc(ctx, func() { k.kill(Canceled) })
	var smp *sampler
	switch {
	case memMode == MemorySampled:
		pid, limit := cmd.Process.Pid, spec.Limits.Memory
		smp = startSampler(func() (int64, bool) { t := treeMemory(pid); return t, t > limit }, func() { k.kill(MemoryLimit) })
	case cg != nil:
		smp = startSampler(func() (int64, bool) { return 0, cg.oomKilled() }, func() { k.kill(MemoryLimit) })
	}
	waitErr := cmd.Wait()
	elapsed := time.Since(start)
	wall.Stop()
	stop()
	var sampled int64
	if smp != nil {
		sampled = smp.stop()
	}
	k.stop()
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) && !errors.Is(waitErr, exec.ErrWaitDelay) {
		return nil, fmt.Errorf("sandbox: wait: %w", waitErr)
	}

	res := &Result{Wall: elapsed, Isolated: isolated, ExitCode: -1, MemoryMode: memMode}
	res.Stdout, res.StdoutTruncated = stdout.result()
	res.Stderr, res.StderrTruncated = stderr.result()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		res.Memory = ru.Maxrss * 1024
	}
	reports, err := readReports(rep)
	if err != nil {
		return nil, err
	}
	var last *report
	for i := range reports {
		if reports[i].Error != "" && k.reason() == "" {
			return nil, fmt.Errorf("sandbox: %s", reports[i].Error)
		}
		if reports[i].Status != nil {
			last = &reports[i]
		}
	}
	if last != nil {
		res.CPU = time.Duration(last.UTime+last.STime) * time.Microsecond
		res.Memory = last.MaxRSS * 1024
	}
	if cg != nil {
		if peak := cg.peak(); peak > 0 {
			res.Memory = peak
		}
	}
	res.Memory = max(res.Memory, sampled)
	switch {
	case k.reason() != "":
		res.Reason, res.Signal = k.reason(), "killed"
	case last != nil:
		res.classify(unix.WaitStatus(*last.Status), spec)
	case !isolated:
		res.classify(unix.WaitStatus(cmd.ProcessState.Sys().(syscall.WaitStatus)), spec)
	default:
		// The init died without a word: a program in an unprivileged
		// sandbox (which shares its uid) may have killed it.
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() {
			return nil, fmt.Errorf("sandbox: init exited with %v without a report", cmd.ProcessState)
		}
		res.classify(unix.WaitStatus(ws), spec)
	}
	if cg != nil && cg.oomKilled() && res.Reason != WallTimeout && res.Reason != Canceled && res.Reason != OutputLimit {
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

// command builds the child of the host: the init in new namespaces, or
// the exec stage directly in mode none.
func (s *Sandbox) command(cfg *initConfig, isolated bool, cg *cgroupRun) (*exec.Cmd, error) {
	root := os.Geteuid() == 0
	if isolated {
		if root {
			cfg.UID, cfg.GID, cfg.Groups = inNSUID, inNSUID, true
		}
	} else {
		cfg.UID, cfg.GID = os.Geteuid(), os.Getegid()
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	stage := stageInit
	if !isolated {
		stage = stageExec
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{"hive-sandbox-" + stage},
		Env:  []string{stageEnv + "=" + stage, configEnv + "=" + string(b), stageGORACE},
	}
	if !isolated {
		cmd.Dir = cfg.Dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		return cmd, nil
	}
	cmd.SysProcAttr = namespaceAttr(root)
	if cg != nil && cg.v2 {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cg.fd()
	}
	return cmd, nil
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
func readReports(r *os.File) ([]report, error) {
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
	cfg := &initConfig{Root: filepath.Join(tmp, "root"), Input: filepath.Join(tmp, "work"),
		Binds: systemDirs, Disk: 1 << 20, Probe: true}
	for _, d := range []string{cfg.Root, cfg.Input} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
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
