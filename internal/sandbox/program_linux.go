package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The Go runtime reserves address space it does not use: about 1.2 GiB of
// mostly PROT_NONE mappings at start on linux/amd64 (more under the race
// detector, and 64 MiB per heap arena), so an RLIMIT_AS of Limits.Memory
// would stop a Go program before it starts. A [Program] therefore gets
// RLIMIT_AS of what its process has mapped when Main is called plus
// Limits.Memory plus goGrowth (heap arenas are reserved 64 MiB at a time;
// thread stacks, runtime metadata), and
// the Go runtime's soft memory limit (debug.SetMemoryLimit) of 3/4 of
// Limits.Memory, so the collector works hard before an allocation fails.
// The run's total memory is held by its cgroup or by sampling as for any
// program. Limits.Memory below minProgramMemory is raised to it.
const (
	goGrowth         = 128 << 20
	minProgramMemory = 32 << 20
)

// runProgram is the exec stage of a [Program]: it reads the source and
// stdin, limits itself as runExec would before exec, and calls Main in
// place. It returns only on failure.
func runProgram(cfg *initConfig) error {
	p, ok := lookupProgram(Lang(cfg.Program))
	if !ok {
		return fmt.Errorf("program %q is not registered in the sandbox's child (pass it to sandbox.Init in main)", cfg.Program)
	}
	runtime.LockOSThread()
	if err := unix.Chdir(cfg.Dir); err != nil {
		return fmt.Errorf("chdir %s: %w", cfg.Dir, err)
	}
	source, err := os.ReadFile(cfg.Argv[0])
	if err != nil {
		return err
	}
	stdin, err := io.ReadAll(os.Stdin)
	if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	os.Clearenv()
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	prog, err := buildFilter()
	if err != nil {
		return err
	}
	// SIGXCPU at the soft CPU limit: die of it, as an interpreter would
	// (the Go runtime ignores it otherwise).
	xcpu := make(chan os.Signal, 1)
	signal.Notify(xcpu, syscall.SIGXCPU)
	go func() {
		<-xcpu
		setDefaultSignal(syscall.SIGXCPU)
		unix.Kill(os.Getpid(), unix.SIGXCPU)
	}()
	var memory int64
	rlimits := append([]rlimit(nil), cfg.Rlimits...)
	for _, l := range rlimits {
		if l.Resource == unix.RLIMIT_AS {
			memory = max(int64(l.Cur), minProgramMemory)
		}
	}
	if memory > 0 {
		debug.SetMemoryLimit(memory / 4 * 3)
	}
	debug.SetGCPercent(100)
	runtime.GOMAXPROCS(min(runtime.NumCPU(), 2))
	mapped := vmSize()
	for i, l := range rlimits {
		if l.Resource == unix.RLIMIT_AS {
			as := uint64(mapped + memory + goGrowth)
			rlimits[i].Cur, rlimits[i].Max = as, as
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	for _, l := range rlimits {
		if err := syscall.Setrlimit(l.Resource, &syscall.Rlimit{Cur: l.Cur, Max: l.Max}); err != nil {
			return fmt.Errorf("set rlimit %d: %w", l.Resource, err)
		}
	}
	if err := installFilter(prog); err != nil {
		return err
	}
	unix.Close(reportFD) // the program does not report; the init does
	runtime.UnlockOSThread()
	os.Exit(p.Main(source, stdin, os.Stdout, os.Stderr))
	return nil
}

// vmSize returns the address space mapped by this process, in bytes.
func vmSize() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmSize:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// lookPath finds name in the PATH of env, as the program's uid sees it.
func lookPath(name string, env []string) (string, bool) {
	if strings.Contains(name, "/") {
		return name, true
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && unix.Access(p, unix.X_OK) == nil {
			return p, true
		}
	}
	return "", false
}
