package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sandbox runs in three processes: the host, the init (pid 1 of the new
// namespaces, which builds the root and reaps), and the exec stage (which
// sets rlimits, no_new_privs and seccomp on itself and execs the
// interpreter). Both inner stages are this same binary, told apart by
// stageEnv, and they report to the host as JSON lines on file descriptor 3.
//
// Both are started before there is a program to run, so that a sandbox
// can be kept warm (see warm_linux.go): the init starts the exec stage,
// builds the root, and once the exec stage is up reports {"ready":true}.
// Then the init reads the run (an initConfig holding the program, its
// files and limits) from jobFD, mounts the run's /box, /tmp and /dev/shm
// at the run's size, writes the files into /box and hands the run on to
// the exec stage over a socket (its fd 4, execSockFD). What does not
// change from run to run (the binds, the ids, the cgroup hold) travels in
// configEnv; so does the whole of a run in mode none, where the exec
// stage is started directly on the host.
const (
	stageEnv   = "HIVE_SANDBOX_STAGE"
	configEnv  = "HIVE_SANDBOX_CONFIG"
	stageInit  = "init"
	stageExec  = "exec"
	stageNoop  = "noop"
	reportFD   = 3
	jobFD      = 4 // the init's: the run, from the host
	holdFD     = 5 // the init's, with Hold
	execSockFD = 4 // the exec stage's: the run, from the init
	// stageGORACE keeps a race-detector build of the stages from
	// sleeping a second as it exits (ignored by other builds).
	stageGORACE = "GORACE=atexit_sleep_ms=0"
)

// initConfig is what the host tells the inner stages.
type initConfig struct {
	Root     string   // host dir to mount the new root on
	Binds    []string // host paths bound read-only at the same place
	Argv     []string // the interpreter and its arguments
	Env      []string // the program's whole environment
	Dir      string   // the program's working directory
	UID, GID int      // in-namespace ids the program runs as
	Groups   bool     // whether setgroups is allowed (to clear supplementary groups)
	Disk     int64    // size of /box and /tmp
	Rlimits  []rlimit
	Probe    bool // build the root, then report and exit
	NoNS     bool // mode none: the exec stage runs on the host
	// Program names the registered [Program] the exec stage runs in
	// place of exec'ing Argv; Argv[0] is then its source file.
	Program string
	Lookup  bool // look Argv[0] up in the PATH of Env (Exec)
	// Hold: the init waits for EOF on holdFD before it starts the exec
	// stage, while the host moves it into its cgroup v1 groups.
	Hold bool
	// Job: the exec stage reads its run from execSockFD.
	Job bool
	// Files are the run's files, written into /box by the init.
	Files map[string][]byte `json:",omitempty"`
}

type rlimit struct {
	Resource int
	Cur, Max uint64
}

// report is one line from an inner stage to the host.
type report struct {
	Error  string `json:"error,omitempty"`  // the sandbox failed at this step
	Ready  bool   `json:"ready,omitempty"`  // the init waits for its run
	Status *int   `json:"status,omitempty"` // the program's wait status
	UTime  int64  `json:"utime_us,omitempty"`
	STime  int64  `json:"stime_us,omitempty"`
	MaxRSS int64  `json:"maxrss_kb,omitempty"`
}

// Init registers programs (see [Program]), then turns this process into a
// sandbox stage when it was started as one, and never returns then;
// otherwise it does nothing more. Call it first thing in main, and in
// TestMain of every package whose tests run the sandbox, with the same
// programs in every binary that runs them:
//
//	func main() { sandbox.Init(myprog.Program); ... }
func Init(programs ...Program) {
	sealInherited()
	register(programs)
	stage := os.Getenv(stageEnv)
	if stage == "" {
		return
	}
	if stage == stageNoop {
		os.Exit(0)
	}
	out := os.NewFile(reportFD, "report")
	unix.CloseOnExec(reportFD)
	fail := func(err error) {
		b, _ := json.Marshal(report{Error: err.Error()})
		out.Write(append(b, '\n'))
		os.Exit(125)
	}
	var cfg initConfig
	if err := json.Unmarshal([]byte(os.Getenv(configEnv)), &cfg); err != nil {
		fail(fmt.Errorf("read config: %w", err))
	}
	switch stage {
	case stageInit:
		if err := runInit(&cfg, out); err != nil {
			fail(err)
		}
	case stageExec:
		if cfg.Job {
			job, err := awaitJob()
			if err != nil {
				fail(err)
			}
			if job == nil {
				os.Exit(0) // the sandbox was put away unused
			}
			cfg = *job
		}
		fail(runExec(&cfg)) // returns only on failure
	default:
		fail(fmt.Errorf("unknown stage %q", stage))
	}
	os.Exit(0)
}

// closeRangeCloexec is close_range(2)'s CLOSE_RANGE_CLOEXEC (Linux 5.11).
const closeRangeCloexec = 1 << 2

// sealInherited marks every descriptor from 3 up close-on-exec. Go opens
// its own that way, but one this process inherited without the flag, from
// whatever started Hive (a shell, a supervisor, a test runner), would
// pass through every child it starts, and through the sandbox's stages
// into the program. Children get what they are given explicitly: stdio,
// exec.Cmd's ExtraFiles, syscall.ProcAttr's Files.
func sealInherited() {
	if unix.CloseRange(3, ^uint(0)>>1, closeRangeCloexec) == nil {
		return
	}
	// Before Linux 5.11: one by one.
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

// ignoredSignals are ignored by the init: signals a program sends to pid 1
// of its namespace are dropped unless pid 1 handles them, and Go handles
// them all by default. The exec stage restores them before exec.
var ignoredSignals = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT,
	syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGALRM,
	syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGXCPU, syscall.SIGXFSZ,
	syscall.SIGVTALRM, syscall.SIGPROF}

// runInit is pid 1 of the new namespaces: it starts the exec stage, builds
// the root, waits for the run, and reaps every process until the program
// exits, then reports.
func runInit(cfg *initConfig, out *os.File) error {
	for _, s := range ignoredSignals {
		if s != syscall.SIGTERM {
			signal.Ignore(s)
		}
	}
	// SIGTERM from the host (wall timeout, output limit, cancel) kills
	// every process of the namespace; the loop below then reports.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		unix.Kill(-1, unix.SIGKILL)
	}()
	if cfg.Probe {
		if err := buildRoot(cfg); err != nil {
			return err
		}
		_, err := out.Write([]byte("{}\n"))
		return err
	}
	if cfg.Hold {
		var b [1]byte
		for {
			_, err := unix.Read(holdFD, b[:])
			if err != unix.EINTR {
				break
			}
		}
		unix.Close(holdFD)
	}
	// Nothing the program does may grant it capabilities: exec as root
	// gives none, and this process's memory is not readable through /proc.
	const secbits = 1<<0 | 1<<1 | 1<<2 | 1<<3 // NOROOT, NO_SETUID_FIXUP and their locks
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, secbits, 0, 0, 0); err != nil {
		return fmt.Errorf("set securebits: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("set dumpable: %w", err)
	}
	// The exec stage starts now, while the root is built, so that its
	// start-up overlaps the init's. From "/", its root and working
	// directory move with the init's into the new root at pivot_root.
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	sock, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	env := []string{stageEnv + "=" + stageExec, configEnv + `={"Job":true}`, stageGORACE}
	attr := &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2, reportFD, uintptr(sock[1])},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Credential: &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), NoSetGroups: !cfg.Groups},
		},
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"hive-sandbox-exec"}, attr)
	unix.Close(sock[1])
	if err != nil {
		return fmt.Errorf("start exec stage: %w", err)
	}
	exec := os.NewFile(uintptr(sock[0]), "exec stage")
	if err := buildRoot(cfg); err != nil {
		return err
	}
	// The exec stage says it is up; then the host may send the run.
	var b [1]byte
	if _, err := io.ReadFull(exec, b[:]); err != nil {
		return fmt.Errorf("the exec stage did not start: %w", err)
	}
	if _, err := out.Write([]byte(`{"ready":true}` + "\n")); err != nil {
		return err
	}
	job, err := readJob(os.NewFile(jobFD, "job"))
	if err != nil {
		return err
	}
	if job == nil {
		// Put away unused: the exec stage reads EOF and exits.
		exec.Close()
		unix.Wait4(pid, nil, 0, nil)
		os.Exit(0)
	}
	if err := mountBox(job, cfg.UID, cfg.GID); err != nil {
		return err
	}
	job.Files = nil // written; the exec stage needs the rest
	b2, err := json.Marshal(job)
	if err != nil {
		return err
	}
	if _, err := exec.Write(b2); err != nil {
		return fmt.Errorf("hand the run to the exec stage: %w", err)
	}
	exec.Close()
	// Reap every process until the program is gone, then kill and reap
	// what it left behind, adding up what they all used.
	var status *int
	var utime, stime, maxrss int64
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		got, err := unix.Wait4(-1, &ws, 0, &ru)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECHILD {
			break
		}
		if err != nil {
			return fmt.Errorf("wait: %w", err)
		}
		utime += ru.Utime.Sec*1e6 + ru.Utime.Usec
		stime += ru.Stime.Sec*1e6 + ru.Stime.Usec
		maxrss = max(maxrss, ru.Maxrss)
		if got == pid {
			st := int(ws)
			status = &st
			unix.Kill(-1, unix.SIGKILL)
		}
	}
	if status == nil {
		return errors.New("the program vanished")
	}
	b3, _ := json.Marshal(report{Status: status, UTime: utime, STime: stime, MaxRSS: maxrss})
	_, err = out.Write(append(b3, '\n'))
	return err
}

// readJob reads a run from r until EOF: nil when there is none.
func readJob(r *os.File) (*initConfig, error) {
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read the run: %w", err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	var job initConfig
	if err := json.Unmarshal(b, &job); err != nil {
		return nil, fmt.Errorf("read the run: %w", err)
	}
	return &job, nil
}

// collected says the exec stage has stopped the garbage collector after a
// whole cycle.
var collected bool

// awaitJob is the exec stage's wait for its run: it tells the init it is
// up, then reads the run from the init (nil when the sandbox was put away
// unused).
func awaitJob() (*initConfig, error) {
	unix.CloseOnExec(execSockFD)
	// The collection runExec needs before exec (see there), done while
	// there is no run to wait for it; the run's few allocations start
	// no new cycle.
	debug.SetGCPercent(-1)
	runtime.GC()
	collected = true
	f := os.NewFile(execSockFD, "init")
	if _, err := f.Write([]byte{1}); err != nil {
		return nil, fmt.Errorf("tell the init: %w", err)
	}
	return readJob(f)
}

// mountBox mounts the run's /dev/shm, /tmp and /box at its size and
// writes its files into /box, owned by uid:gid.
func mountBox(job *initConfig, uid, gid int) error {
	size := strconv.FormatInt(job.Disk, 10)
	owner := fmt.Sprintf("uid=%d,gid=%d", uid, gid)
	for _, m := range []struct{ dst, data string }{
		{"/dev/shm", "size=" + size + ",mode=1777"},
		{"/tmp", "size=" + size + ",mode=1777"},
		{"/box", "size=" + size + ",mode=0755," + owner},
	} {
		if err := unix.Mount("tmpfs", m.dst, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, m.data); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	if err := writeFiles("/box", job.Files, uid, gid); err != nil {
		return fmt.Errorf("write files into /box: %w", err)
	}
	return nil
}

// writeFiles writes files (by clean relative slash path) under dir, with
// the directories they need, all owned by uid:gid.
func writeFiles(dir string, files map[string][]byte, uid, gid int) error {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		to := dir
		parts := strings.Split(name, "/")
		for _, p := range parts[:len(parts)-1] {
			to = filepath.Join(to, p)
			if err := os.Mkdir(to, 0o755); err != nil {
				if errors.Is(err, fs.ErrExist) {
					continue
				}
				return err
			}
			if err := os.Lchown(to, uid, gid); err != nil {
				return err
			}
		}
		to = filepath.Join(to, parts[len(parts)-1])
		if err := os.WriteFile(to, files[name], 0o644); err != nil {
			return err
		}
		if err := os.Lchown(to, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// buildRoot mounts the new root on cfg.Root and pivots into it.
func buildRoot(cfg *initConfig) error {
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return step("make mounts private", err)
	}
	root := cfg.Root
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=4m,nr_inodes=4096,mode=0755"); err != nil {
		return step("mount root tmpfs", err)
	}
	for _, p := range cfg.Binds {
		if err := bindPath(root, p); err != nil {
			return err
		}
	}
	// /dev: the few harmless devices, bound from the host (a user
	// namespace cannot create device nodes).
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return step("mkdir /dev", err)
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom"} {
		dst := filepath.Join(dev, d)
		if err := os.WriteFile(dst, nil, 0o644); err != nil {
			return step("create /dev/"+d, err)
		}
		if err := unix.Mount("/dev/"+d, dst, "", unix.MS_BIND, ""); err != nil {
			return step("bind /dev/"+d, err)
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return step("symlink /dev/"+name, err)
		}
	}
	// /dev/shm, /tmp and /box are mounted for the run, at its size
	// (mountBox), on the places made here.
	for _, d := range []string{"dev/shm", "tmp", "box", "proc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return step("mkdir /"+d, err)
		}
	}
	if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return step("mount /proc", err)
	}
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return step("mkdir /etc", err)
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nsandbox:x:%d:%d:sandbox:/box:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", cfg.UID, cfg.GID)
	group := fmt.Sprintf("root:x:0:\nsandbox:x:%d:\nnogroup:x:65534:\n", cfg.GID)
	if cfg.UID == 0 {
		passwd = "root:x:0:0:root:/box:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
		group = "root:x:0:\nnogroup:x:65534:\n"
	}
	for name, body := range map[string]string{"passwd": passwd, "group": group, "hostname": "sandbox\n",
		"hosts": "127.0.0.1 localhost sandbox\n"} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(body), 0o644); err != nil {
			return step("write /etc/"+name, err)
		}
	}
	if err := unix.Sethostname([]byte("sandbox")); err != nil {
		return step("set hostname", err)
	}
	if err := unix.Setdomainname([]byte("sandbox")); err != nil {
		return step("set domain name", err)
	}
	if err := unix.Chdir(root); err != nil {
		return step("chdir to new root", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return step("pivot_root", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return step("detach old root", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return step("chdir /", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return step("make root read-only", err)
	}
	return nil
}

// bindPath makes host path p appear read-only at the same place under
// root: a symlink is recreated, a directory or file is bound.
func bindPath(root, p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil // absent on this machine
	}
	dst := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("mkdir for %s: %w", p, err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("read link %s: %w", p, err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("symlink %s: %w", p, err)
		}
		return nil
	case fi.IsDir():
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", p, err)
		}
	default:
		if err := os.WriteFile(dst, nil, 0o644); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	if err := unix.Mount(p, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", p, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(-1, dst, unix.AT_RECURSIVE, attr); err == nil {
		return nil
	}
	// Older kernels: remount the top mount read-only, keeping the flags
	// the user namespace may not clear.
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", p, err)
	}
	flags := uintptr(unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV) |
		uintptr(st.Flags)&(unix.MS_NOEXEC|unix.MS_NOATIME|unix.MS_NODIRATIME|unix.MS_RELATIME)
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		return fmt.Errorf("make %s read-only: %w", p, err)
	}
	return nil
}

// runExec is the exec stage: it limits itself and becomes the interpreter.
// It returns only on failure.
func runExec(cfg *initConfig) error {
	if cfg.Program != "" {
		return runProgram(cfg)
	}
	runtime.LockOSThread()
	// No garbage collector work from here to exec: once the address-space
	// limit is set, a mark worker or the sweeper mapping memory on another
	// thread fails and crashes the stage (SIGSEGV or "cannot allocate
	// memory" in the runtime, seen in about 1 run in 150 with two dozen
	// sandboxes at once). So: no new cycle, and one whole cycle, sweep
	// included, finished now.
	if !collected {
		debug.SetGCPercent(-1)
		runtime.GC()
	}
	for _, s := range ignoredSignals {
		if err := setDefaultSignal(s); err != nil {
			return fmt.Errorf("reset signal %v: %w", s, err)
		}
	}
	if err := unix.Chdir(cfg.Dir); err != nil {
		return fmt.Errorf("chdir %s: %w", cfg.Dir, err)
	}
	prog, err := buildFilter()
	if err != nil {
		return err
	}
	exe := cfg.Argv[0]
	if cfg.Lookup {
		path, ok := lookPath(exe, cfg.Env)
		if !ok {
			fmt.Fprintf(os.Stderr, "hive-sandbox: %s: command not found\n", exe)
			os.Exit(127)
		}
		exe = path
	}
	argv0, err := syscall.BytePtrFromString(exe)
	if err != nil {
		return err
	}
	argv, err := syscall.SlicePtrFromStrings(cfg.Argv)
	if err != nil {
		return err
	}
	envv, err := syscall.SlicePtrFromStrings(cfg.Env)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	for _, l := range cfg.Rlimits {
		// syscall.Setrlimit, so that the runtime does not restore its own
		// RLIMIT_NOFILE on exec.
		if err := syscall.Setrlimit(l.Resource, &syscall.Rlimit{Cur: l.Cur, Max: l.Max}); err != nil {
			return fmt.Errorf("set rlimit %d: %w", l.Resource, err)
		}
	}
	if err := installFilter(prog); err != nil {
		return err
	}
	// From here on no allocation: the address-space limit is in force.
	_, _, errno := syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(argv0)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])))
	return fmt.Errorf("exec %s: %w", exe, errno)
}

// setDefaultSignal sets sig's disposition to SIG_DFL behind the runtime's
// back, just before exec, so the program does not inherit SIG_IGN.
func setDefaultSignal(sig syscall.Signal) error {
	var act [4]uint64 // struct kernel_sigaction: handler, flags, restorer, mask
	_, _, errno := syscall.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
