//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testProgram is a [Program] registered by TestMain. Its source is a
// command: "echo" (source and stdin back), "env NAME", "spin", "alloc MiB",
// "exit N".
var testProgram = Program{Name: "testprog", Main: func(source, stdin []byte, stdout, stderr io.Writer) int {
	cmd, arg, _ := strings.Cut(strings.TrimSpace(string(source)), " ")
	switch cmd {
	case "echo":
		fmt.Fprintf(stdout, "%s|%s|uid=%d|%s\n", source, stdin, os.Getuid(), mustWd())
	case "env":
		fmt.Fprintln(stdout, os.Getenv(arg))
	case "spin":
		for {
		}
	case "alloc":
		mib, _ := strconv.Atoi(arg)
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Fprintln(stdout, len(keep))
	case "vm":
		var rl syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_AS, &rl)
		b, _ := os.ReadFile("/proc/self/status")
		fmt.Fprintf(stdout, "as=%d\n%s", rl.Cur>>10, b)
	case "exit":
		n, _ := strconv.Atoi(arg)
		return n
	default:
		fmt.Fprintln(stderr, "unknown command", cmd)
		return 1
	}
	return 0
}}

func mustWd() string {
	wd, err := os.Getwd()
	if err != nil {
		return err.Error()
	}
	return wd
}

func TestProgram(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	lim := Limits{Wall: 5 * time.Second, CPU: time.Second, Memory: 128 << 20}
	tests := []struct {
		name  string
		spec  Spec
		want  Reason
		check func(*Result) bool
	}{
		{"echo", Spec{Lang: "testprog", Source: "echo", Stdin: []byte("in")}, Exited,
			func(r *Result) bool { return string(r.Stdout) == "echo|in|uid="+strconv.Itoa(wantUID())+"|/box\n" }},
		{"env", Spec{Lang: "testprog", Source: "env GREETING", Env: []string{"GREETING=hi"}}, Exited,
			func(r *Result) bool { return string(r.Stdout) == "hi\n" }},
		{"exit", Spec{Lang: "testprog", Source: "exit 7"}, Exited, func(r *Result) bool { return r.ExitCode == 7 }},
		{"small alloc", Spec{Lang: "testprog", Source: "alloc 40", Limits: Limits{Memory: goMemory(128 << 20)}}, Exited,
			func(r *Result) bool { return string(r.Stdout) == "40\n" }},
		// CPU time, not wall time, ends it, however loaded the machine.
		{"spin", Spec{Lang: "testprog", Source: "spin", Limits: Limits{Wall: 30 * time.Second, CPU: time.Second}}, CPULimit,
			func(r *Result) bool { return r.CPU < 2*time.Second }},
		// Memory, not CPU, ends it: filling pages under -race on a loaded
		// machine took over the 1 s of CPU the other cases get.
		{"alloc past limit", Spec{Lang: "testprog", Source: "alloc 400", Limits: Limits{Wall: 30 * time.Second, CPU: 20 * time.Second, Memory: lim.Memory}}, MemoryLimit,
			func(r *Result) bool { return r.Memory < 400<<20 }},
		{"wall", Spec{Lang: "testprog", Source: "spin", Limits: Limits{Wall: 500 * time.Millisecond}}, WallTimeout,
			func(r *Result) bool { return r.Wall < 2*time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := run(t, sb, tt.spec)
			if res.Reason != tt.want {
				t.Errorf("reason %s, want %s (stderr %q)", res.Reason, tt.want, trunc(lastLines(res.Stderr, 5)))
			}
			if tt.check != nil && !tt.check(res) {
				t.Errorf("unexpected result %s", summary(res))
			}
		})
	}
}

// wantUID is the uid a program has inside the namespace.
func wantUID() int {
	if os.Geteuid() == 0 {
		return inNSUID
	}
	return 0
}

func TestUnknownLang(t *testing.T) {
	t.Parallel()
	_, err := newSandbox(t).Run(context.Background(), Spec{Lang: "cobol", Source: "x"})
	if err == nil || !strings.Contains(err.Error(), "neither built in nor a Program registered") {
		t.Errorf("err = %v", err)
	}
}

// goMemoryFloor: a Go program runs at the default memory limit and at
// 128 MiB, although the Go runtime maps more address space than that.
func TestProgramMemoryFloor(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	for _, tt := range []struct {
		mem int64
		n   int
	}{{0, 2e5}, {128 << 20, 1e5}, {32 << 20, 1e4}} {
		mem := tt.mem
		if mem != 0 {
			mem = goMemory(mem)
		}
		res := run(t, sb, Spec{Lang: JavaScript, Source: fmt.Sprintf("let a = []; for (let i = 0; i < %d; i++) a.push({i}); console.log(a.length)", tt.n),
			// Memory is the test; under -race on a loaded machine 2e5
			// objects took more than the default 10 s of wall.
			Limits: Limits{Memory: mem, Wall: 2 * time.Minute, CPU: time.Minute}})
		if !res.OK() || string(res.Stdout) != fmt.Sprintf("%d\n", tt.n) {
			t.Errorf("memory %d MiB: %s exit %d, stderr %q", tt.mem>>20, res.Reason, res.ExitCode, trunc(res.Stderr))
		}
	}
}

// vmHWM returns the peak resident memory of this process.
func vmHWM(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestJavaScriptAttacks runs the scripts that once stalled Hive and grew
// its memory: now they end within their limits, and Hive stays small.
// Not parallel: it measures this process's memory and its children.
func TestJavaScriptAttacks(t *testing.T) {
	lim := Limits{Wall: 3 * time.Second, CPU: time.Second, Memory: 256 << 20}
	tests := []struct {
		name, src string
		limits    Limits
	}{
		{"regex backtracking", `/^(a+)+(?=b)/.test("a".repeat(34)+"!")`, lim},
		{"String of deep array", `let a = []; for (let i = 0; i < 200000; i++) a = [a]; String(a)`, lim},
		{"JSON.stringify of deep array", `let a = []; for (let i = 0; i < 200000; i++) a = [a]; JSON.stringify(a)`, lim},
		{"huge repeat", `let s = "x".repeat(1<<29); console.log(s.length)`, lim},
		{"deep JSON.parse", `JSON.parse("[".repeat(5e6) + "]".repeat(5e6))`, lim},
		// Killed at the wall limit, as Hive's own SIGTERM once was not.
		{"past the wall", `for (;;) {}`, Limits{Wall: time.Second, CPU: 10 * time.Second, Memory: 256 << 20}},
	}
	runtime.GC()
	before := vmHWM(t)
	for _, cgroups := range []string{"auto", "off"} {
		sb, err := New(context.Background(), Config{Cgroups: cgroups}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(cgroups+"/"+tt.name, func(t *testing.T) {
				res := run(t, sb, Spec{Lang: JavaScript, Source: tt.src, Limits: tt.limits})
				switch res.Reason {
				case CPULimit, WallTimeout, MemoryLimit:
				default:
					t.Errorf("reason %s, want cpu_limit, wall_timeout or memory_limit (stderr %q)", res.Reason, trunc(lastLines(res.Stderr, 3)))
				}
				if res.Wall > tt.limits.Wall+time.Second || res.CPU > tt.limits.CPU+time.Second {
					t.Errorf("ran %v, cpu %v, limits %v, %v", res.Wall, res.CPU, tt.limits.Wall, tt.limits.CPU)
				}
				// What a model reads back: the Go runtime's crash, not its
				// goroutine stacks.
				if bytes.Contains(res.Stderr, []byte("\ngoroutine ")) || len(res.Stderr) > 2048 {
					t.Errorf("stderr of %d bytes holds a goroutine trace: %q", len(res.Stderr), trunc(res.Stderr))
				}
				t.Logf("%s: %s in %v, cpu %v, peak %.1f MiB (%s)", tt.name, res.Reason, res.Wall.Round(time.Millisecond),
					res.CPU.Round(time.Millisecond), float64(res.Memory)/(1<<20), res.MemoryMode)
				if left := leftBehind(sb); len(left) > 0 {
					t.Errorf("processes left: %v", left)
				}
			})
		}
		// Put away, the sandboxes it kept warm are gone too.
		sb.Close()
		if left := leftBehind(); len(left) > 0 {
			t.Errorf("processes left once closed: %v", left)
		}
	}
	if grew := vmHWM(t) - before; grew > goMemory(8<<20) {
		t.Errorf("host peak memory grew %d MiB", grew>>20)
	} else {
		t.Logf("host peak memory grew %d KiB", grew>>10)
	}
}

// leftBehind lists the processes below this one but those of the
// sandboxes sbs and the package's shared one keep warm, once the warm
// sandboxes they are starting are ready. Not for parallel tests: another
// test's run would count.
func leftBehind(sbs ...*Sandbox) []int {
	if shared != nil {
		sbs = append(sbs, shared)
	}
	warm := map[int]bool{}
	for _, sb := range sbs {
		sb.pool.wg.Wait()
		for _, pid := range sb.warmPids() {
			warm[pid] = true
			for _, d := range descendants(pid) {
				warm[d] = true
			}
		}
	}
	var out []int
	for _, pid := range descendants(os.Getpid()) {
		if !warm[pid] {
			out = append(out, pid)
		}
	}
	return out
}

// descendants lists the processes below pid.
func descendants(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/children")
		for _, f := range bytes.Fields(b) {
			if c, err := strconv.Atoi(string(f)); err == nil {
				out = append(out, c)
				out = append(out, descendants(c)...)
			}
		}
	}
	return out
}

// TestCancelJavaScript cancels a busy script: the run ends at once and
// leaves no process. Not parallel: it looks at this process's children.
func TestCancelJavaScript(t *testing.T) {
	sb := newSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	res, err := sb.Run(ctx, Spec{Lang: JavaScript, Source: "for (;;) {}", Limits: Limits{Wall: 20 * time.Second, CPU: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reason != Canceled || time.Since(start) > 2*time.Second {
		t.Errorf("reason %s after %v", res.Reason, time.Since(start))
	}
	if left := leftBehind(sb); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}

func TestExec(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	res := run(t, sb, Spec{Lang: Exec, Argv: []string{"sh", "-c", `echo "$GREETING $1 $LANG"; cat data/in.txt; cat`, "sh", "arg"},
		Env: []string{"GREETING=hello", "LANG=C"}, Files: map[string][]byte{"data/in.txt": []byte("file\n")}, Stdin: []byte("stdin\n")})
	if !res.OK() || string(res.Stdout) != "hello arg C\nfile\nstdin\n" {
		t.Errorf("got %s", summary(res))
	}
	res = run(t, sb, Spec{Lang: Exec, Argv: []string{"no-such-command"}})
	if res.Reason != Exited || res.ExitCode != 127 || !bytes.Contains(res.Stderr, []byte("not found")) {
		t.Errorf("missing command: %s", summary(res))
	}
	res = run(t, sb, Spec{Lang: Exec, Argv: []string{"python3", "-c", "import os; print(os.environ['X'], os.getcwd())"}, Env: []string{"X=1"}})
	if !res.OK() || string(res.Stdout) != "1 /box\n" {
		t.Errorf("python3 by name: %s", summary(res))
	}
}

func TestExecHostile(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	hostFile := wd + "/program_test.go"
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"shadow", []string{"sh", "-c", "cat /etc/shadow 2>&1 || echo denied"}, "denied"},
		{"write outside box", []string{"sh", "-c", "for d in /etc /usr /tmp/../etc /; do touch $d/hive-x 2>/dev/null && echo wrote $d; done; echo done"}, "done"},
		{"network", []string{"python3", "-c", "import socket\ntry:\n socket.create_connection(('1.1.1.1', 80), timeout=2); print('connected')\nexcept OSError as e: print('denied', e)"}, "denied"},
		{"host files", []string{"sh", "-c", "cat " + hostFile + " 2>&1 || echo denied"}, "denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := run(t, sb, Spec{Lang: Exec, Argv: tt.argv})
			out := string(res.Stdout)
			if !strings.Contains(out, tt.want) || strings.Contains(out, "wrote") || strings.Contains(out, "connected") || strings.Contains(out, "root:") {
				t.Errorf("got %q (stderr %q)", out, res.Stderr)
			}
			if strings.Contains(out, "package sandbox") {
				t.Errorf("read a host file: %q", trunc(res.Stdout))
			}
		})
	}
}

func TestSpecChecks(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	for _, spec := range []Spec{
		{Lang: Exec},
		{Lang: Exec, Argv: []string{"true"}, Source: "x"},
		{Lang: Python, Argv: []string{"true"}},
		{Lang: Shell, Env: []string{"PATH=/evil"}},
		{Lang: Shell, Env: []string{"HOME=/"}},
		{Lang: Shell, Env: []string{"NOEQUALS"}},
		{Lang: Shell, Env: []string{"1BAD=x"}},
		{Lang: Shell, Env: []string{"=x"}},
		{Lang: JavaScript, Files: map[string][]byte{"main.js": nil}},
	} {
		if _, err := sb.Run(context.Background(), spec); err == nil {
			t.Errorf("%s %q %q: no error", spec.Lang, spec.Argv, spec.Env)
		}
	}
}

// forkBomb starts 8 processes of 100 MiB each.
const forkBomb = `import os, time
for i in range(8):
    if os.fork() == 0:
        b = b'x' * (100 << 20)
        time.sleep(30)
        os._exit(0)
time.sleep(30)
`

// forkShmBomb is forkBomb in shared anonymous memory (Python's mmap of
// no file), which is shmem, not anonymous, to the kernel's counters.
const forkShmBomb = `import mmap, os, time
for i in range(8):
    if os.fork() == 0:
        m = mmap.mmap(-1, 100 << 20)
        for off in range(0, 100 << 20, 4096):
            m[off] = 1
        time.sleep(30)
        os._exit(0)
time.sleep(30)
`

// TestMemoryTotal: 8 processes of 100 MiB each (private, or shared
// anonymous memory) under a 128 MiB limit end with memory_limit and a
// total that is the tree's, with cgroups and with sampling.
func TestMemoryTotal(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, cgroups, source string }{
		{"auto", "auto", forkBomb}, {"off", "off", forkBomb}, {"off_shared", "off", forkShmBomb}, {"auto_shared", "auto", forkShmBomb},
	} {
		cgroups := c.cgroups
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sb, err := New(context.Background(), Config{Cgroups: cgroups}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sb.Close() })
			if cgroups == "off" && sb.MemoryMode() != MemorySampled {
				t.Fatalf("mode %s with cgroups off", sb.MemoryMode())
			}
			res := run(t, sb, Spec{Lang: Python, Source: c.source, Limits: Limits{Memory: 128 << 20, Wall: 20 * time.Second}})
			t.Logf("mode %s: %s in %v, peak %.1f MiB", res.MemoryMode, res.Reason, res.Wall.Round(time.Millisecond), float64(res.Memory)/(1<<20))
			if res.Reason != MemoryLimit || res.MemoryMode != sb.MemoryMode() {
				t.Errorf("reason %s, mode %s", res.Reason, res.MemoryMode)
			}
			if res.Memory < 120<<20 || res.Wall > 10*time.Second {
				t.Errorf("peak %d MiB after %v: not the tree's total", res.Memory>>20, res.Wall)
			}
		})
	}
}

// TestCeiling: under a 2 GiB ceiling, a third run of 1 GiB waits until
// one of two others ends.
func TestCeiling(t *testing.T) {
	t.Parallel()
	sb, err := New(context.Background(), Config{MemoryCeiling: 2 << 30}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	if sb.MemoryCeiling() != 2<<30 {
		t.Fatalf("ceiling %d", sb.MemoryCeiling())
	}
	// Long enough that the two overlap however slowly a loaded machine
	// starts them (1.5 s did not, under -race on two busy cores).
	lim := Limits{Memory: 1 << 30, Wall: 30 * time.Second}
	var wg sync.WaitGroup
	var firstEnd time.Time
	var mu sync.Mutex
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := sb.Run(context.Background(), Spec{Lang: Shell, Source: "sleep 6.5", Limits: lim})
			if err != nil || !res.OK() {
				t.Errorf("%s %v", summary(res), err)
			}
			mu.Lock()
			if firstEnd.IsZero() {
				firstEnd = time.Now()
			}
			mu.Unlock()
		}()
	}
	// Both hold their part of the ceiling once their programs run.
	for deadline := time.Now().Add(20 * time.Second); sleepers() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the two runs did not start within 20 s")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := sb.Run(ctx, Spec{Lang: Shell, Source: "true", Limits: lim})
	if err != nil || res.Reason != Canceled {
		t.Errorf("a third run did not wait: %s %v", summary(res), err)
	}
	res, err = sb.Run(context.Background(), Spec{Lang: Shell, Source: "true", Limits: lim})
	end := time.Now()
	if err != nil || !res.OK() {
		t.Errorf("%s %v", summary(res), err)
	}
	wg.Wait()
	if firstEnd.IsZero() || end.Before(firstEnd) {
		t.Errorf("the third run ended at %v, before the first of the others (%v)", end, firstEnd)
	}
}

// sleepers counts the processes on this machine running "sleep 6.5".
func sleepers() int {
	n := 0
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline"); err == nil && string(b) == "sleep\x006.5\x00" {
			n++
		}
	}
	return n
}

func TestMemoryMode(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	res := run(t, sb, Spec{Lang: Shell, Source: "true"})
	if res.MemoryMode != sb.MemoryMode() || res.MemoryMode == MemoryPerProcess {
		t.Errorf("result mode %q, sandbox mode %q", res.MemoryMode, sb.MemoryMode())
	}
	t.Logf("memory mode %s, ceiling %d MiB", sb.MemoryMode(), sb.MemoryCeiling()>>20)
}

// goMemory is m, or more under the race detector, whose shadow memory a
// Go child pays for.
func goMemory(m int64) int64 {
	if raceEnabled {
		return 4 * m
	}
	return m
}

// TestProgramThreads: the Go runtime's threads do not count against a
// small process limit, and many Go children run at once.
func TestProgramThreads(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	src := "let a = []; for (let i = 0; i < 1e5; i++) a.push({i}); console.log(a.length)"
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Twelve at once under -race on two cores take more than the
			// default 10 s of wall: the test is of threads, not of time.
			res, err := sb.Run(context.Background(), Spec{Lang: JavaScript, Source: src, Limits: Limits{Procs: 1 + i%4, Wall: 2 * time.Minute, CPU: time.Minute}})
			if err != nil {
				t.Errorf("procs %d: %v", 1+i%4, err)
			} else if !res.OK() {
				t.Errorf("procs %d: %s exit %d: %q", 1+i%4, res.Reason, res.ExitCode, trunc(res.Stderr))
			}
		}()
	}
	wg.Wait()
}

// summary describes res for a test failure.
func summary(res *Result) string {
	if res == nil {
		return "no result"
	}
	return fmt.Sprintf("%s exit %d signal %q wall %v memory %d (%s), stdout %q, stderr %q", res.Reason, res.ExitCode, res.Signal,
		res.Wall, res.Memory, res.MemoryMode, trunc(res.Stdout), trunc(lastLines(res.Stderr, 5)))
}
