//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// hostileCase is one program that tries to do harm; check asserts it was
// contained and reported.
type hostileCase struct {
	name   string
	lang   Lang
	source string
	limits Limits
	check  func(t *testing.T, res *Result)
}

// wantOut fails t unless stdout holds every one of want.
func wantOut(want ...string) func(t *testing.T, res *Result) {
	return func(t *testing.T, res *Result) {
		t.Helper()
		for _, w := range want {
			if !bytes.Contains(res.Stdout, []byte(w)) {
				t.Errorf("stdout lacks %q:\n%s\nstderr:\n%s", w, trunc(res.Stdout), trunc(res.Stderr))
			}
		}
	}
}

func wantReason(r Reason, also ...func(t *testing.T, res *Result)) func(t *testing.T, res *Result) {
	return func(t *testing.T, res *Result) {
		t.Helper()
		if res.Reason != r {
			t.Errorf("reason = %s, want %s (stderr %q)", res.Reason, r, trunc(res.Stderr))
		}
		for _, f := range also {
			f(t, res)
		}
	}
}

// hostileCases returns the suite. home and repo are host directories the
// program must not see; port is a host loopback listener.
func hostileCases(home, repo string, homeEntries []string, port int) []hostileCase {
	return []hostileCase{
		{name: "read /etc/shadow", lang: Python, source: `
for p in ["/etc/shadow", "/etc/gshadow", "/etc/sudoers"]:
    try:
        print("READ", p, open(p).read()[:20])
    except OSError as e:
        print("DENIED", p, type(e).__name__)`,
			check: func(t *testing.T, res *Result) {
				wantOut("DENIED /etc/shadow", "DENIED /etc/gshadow")(t, res)
				if bytes.Contains(res.Stdout, []byte("READ")) {
					t.Errorf("read a secret: %s", res.Stdout)
				}
			}},
		{name: "read host home", lang: Python, source: fmt.Sprintf(`
import os
for name in %q.split("\n"):
    if not name: continue
    p = os.path.join(%q, name)
    print("VISIBLE" if os.path.lexists(p) else "HIDDEN", p)
print("DONE")`, strings.Join(homeEntries, "\n"), home),
			check: func(t *testing.T, res *Result) {
				wantOut("DONE")(t, res)
				if bytes.Contains(res.Stdout, []byte("VISIBLE")) {
					t.Errorf("host home visible:\n%s", res.Stdout)
				}
			}},
		{name: "read the repository", lang: Shell, source: fmt.Sprintf(`
ls %[1]q >/dev/null 2>&1 && echo VISIBLE || echo HIDDEN
cat %[1]q/sandbox.go >/dev/null 2>&1 && echo READ || echo UNREADABLE`, repo),
			check: wantOut("HIDDEN", "UNREADABLE")},
		{name: "write outside work dir", lang: Python, source: `
import os, sys
targets = ["/x", "/etc/x", "/usr/x", "/bin/x", os.path.join(sys.prefix, "x"), "/dev/x", "/proc/x", "/proc/sys/kernel/hostname"]
for p in targets:
    try:
        with open(p, "w") as f: f.write("pwned")
        print("WROTE", p)
    except OSError as e:
        print("DENIED", p, type(e).__name__)
for p in ["/box/ok", "/tmp/ok"]:
    open(p, "w").write("fine"); print("OK", p)`,
			check: func(t *testing.T, res *Result) {
				wantOut("OK /box/ok", "OK /tmp/ok", "DENIED /etc/x", "DENIED /usr/x", "DENIED /x")(t, res)
				if bytes.Contains(res.Stdout, []byte("WROTE")) {
					t.Errorf("wrote outside the work dir:\n%s", res.Stdout)
				}
			}},
		{name: "connect host loopback", lang: Python, source: fmt.Sprintf(`
import socket
try:
    s = socket.create_connection(("127.0.0.1", %d), timeout=2)
    s.sendall(b"leak"); print("CONNECTED")
except OSError as e:
    print("BLOCKED", type(e).__name__, e.errno)
print("IFACES", sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]))`, port),
			check: wantOut("BLOCKED PermissionError 1", "IFACES ['lo']")},
		{name: "connect host loopback from bash", lang: Shell, source: fmt.Sprintf(`
bash -c 'echo leak > /dev/tcp/127.0.0.1/%d' 2>/dev/null && echo CONNECTED || echo BLOCKED`, port),
			check: wantOut("BLOCKED")},
		{name: "connect public address", lang: Python, source: `
import socket
for fam, typ in [(socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET6, socket.SOCK_STREAM), (socket.AF_PACKET, socket.SOCK_RAW), (socket.AF_NETLINK, socket.SOCK_RAW)]:
    try:
        s = socket.socket(fam, typ)
        s.settimeout(1); s.connect(("1.1.1.1", 53)); s.send(b"x"); print("SENT", fam)
    except OSError as e:
        print("BLOCKED", fam.name, type(e).__name__)
a, b = socket.socketpair(); a.send(b"unix ok"); print(b.recv(10).decode())`,
			check: wantOut("BLOCKED AF_INET PermissionError", "BLOCKED AF_INET6 PermissionError", "BLOCKED AF_PACKET", "BLOCKED AF_NETLINK", "unix ok")},
		{name: "resolve DNS", lang: Python, source: `
import socket
try:
    print("RESOLVED", socket.getaddrinfo("example.com", 443))
except OSError as e:
    print("NO DNS", type(e).__name__)`,
			check: wantOut("NO DNS")},
		{name: "fork until refused", lang: Python, limits: Limits{Procs: 20, Wall: 20 * time.Second}, source: `
import os, time
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(60); os._exit(0)
        n += 1
    print("UNLIMITED", n)
except OSError as e:
    print("REFUSED after", n, e.errno)`,
			check: func(t *testing.T, res *Result) {
				wantOut("REFUSED after")(t, res)
				var n int
				if i := bytes.Index(res.Stdout, []byte("after ")); i >= 0 {
					fmt.Sscanf(string(res.Stdout[i+6:]), "%d", &n)
				}
				if n > 20 {
					t.Errorf("forked %d processes, limit 20", n)
				}
			}},
		{name: "fork bomb", lang: Shell, limits: Limits{Wall: 2 * time.Second}, source: `b() { b | b & }; b; sleep 10`,
			check: func(t *testing.T, res *Result) {
				if res.Reason != WallTimeout && res.Reason != Exited {
					t.Errorf("reason = %s", res.Reason)
				}
				if res.Wall > 6*time.Second {
					t.Errorf("took %v", res.Wall)
				}
			}},
		{name: "memory bomb", lang: Python, limits: Limits{Memory: 160 << 20}, source: `
a = []
while True:
    a.append(bytearray(16 << 20))`,
			check: wantReason(MemoryLimit)},
		{name: "infinite loop", lang: Python, limits: Limits{CPU: time.Second, Wall: 20 * time.Second}, source: `while True: pass`,
			check: wantReason(CPULimit, func(t *testing.T, res *Result) {
				if res.Wall > 10*time.Second || res.CPU < 500*time.Millisecond {
					t.Errorf("wall %v cpu %v", res.Wall, res.CPU)
				}
			})},
		{name: "sleep past wall", lang: Python, limits: Limits{Wall: 4 * time.Second}, source: `import time; print("start", flush=True); time.sleep(100)`,
			check: wantReason(WallTimeout, wantOut("start"), func(t *testing.T, res *Result) {
				if res.Wall > 10*time.Second {
					t.Errorf("wall %v", res.Wall)
				}
			})},
		{name: "kill -9 -1", lang: Shell, source: `sleep 30 & kill -9 -1; echo survived`,
			check: wantReason(Exited, wantOut("survived"))},
		{name: "ptrace and escapes", lang: Python, source: `
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    r = getattr(libc, name)(*args)
    print(name, "OK" if r >= 0 else "DENIED", ctypes.get_errno())
call("ptrace", 16, 1, 0, 0)          # PTRACE_ATTACH to init
call("ptrace", 0, 0, 0, 0)           # PTRACE_TRACEME
call("unshare", 0x10000000)          # CLONE_NEWUSER
call("mount", b"none", b"/tmp", b"tmpfs", 0, None)
call("chroot", b"/tmp")
call("syscall", 321, 0, 0, 0)        # bpf
status = open("/proc/self/status").read()
for k in ("Seccomp:", "NoNewPrivs:", "CapEff:", "CapPrm:"):
    print(k, [l.split()[1] for l in status.splitlines() if l.startswith(k)][0])`,
			check: wantOut("ptrace DENIED 1\nptrace DENIED 1", "unshare DENIED 1", "mount DENIED 1", "chroot DENIED 1",
				"Seccomp: 2", "NoNewPrivs: 1", "CapEff: 0000000000000000", "CapPrm: 0000000000000000")},
	}
}

// unprivileged reports whether this run is the suite re-run as uid 65534.
func unprivileged() bool { return os.Getenv("HIVE_SANDBOX_TEST_UNPRIV") == "1" }

func TestHostile(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	repo, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "/" {
		home = t.TempDir()
	}
	homeEntries := hiddenEntries(t, sb, home)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	// The programs mostly wait (on limits, on the kernel), so they run
	// four at a time whatever -test.parallel says; then each is checked.
	cases := hostileCases(home, repo, homeEntries, port)
	results := make([]*Result, len(cases))
	errs := make([]error, len(cases))
	var g errgroup.Group
	g.SetLimit(4)
	for i, c := range cases {
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			results[i], errs[i] = sb.Run(ctx, Spec{Lang: c.lang, Source: c.source, Limits: c.limits})
			return nil
		})
	}
	g.Wait()
	t.Run("cases", func(t *testing.T) {
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				res, err := results[i], errs[i]
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				t.Logf("reason=%s exit=%d signal=%s wall=%v cpu=%v mem=%d stdout=%q stderr=%q",
					res.Reason, res.ExitCode, res.Signal, res.Wall, res.CPU, res.Memory, trunc(res.Stdout), trunc(res.Stderr))
				if !res.Isolated {
					t.Error("not isolated")
				}
				c.check(t, res)
			})
		}
	})
	ln.Close()
	wg.Wait()
	if n := accepted.Load(); n != 0 {
		t.Errorf("the host loopback listener accepted %d connections from sandboxes", n)
	}
}

// hiddenEntries lists home's entries that the sandbox must hide: all but
// those on the way to the Python interpreter, which is bound read-only.
func hiddenEntries(t *testing.T, sb *Sandbox, home string) []string {
	entries, _ := os.ReadDir(home)
	var binds []string
	if py, err := sb.python(); err == nil {
		binds = py.Binds
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(home, e.Name())
		needed := false
		for _, b := range binds {
			if b == p || strings.HasPrefix(b, p+"/") {
				needed = true
			}
		}
		if !needed {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 { // make one, so the case proves something
		f := filepath.Join(t.TempDir(), "secret")
		os.WriteFile(f, []byte("s"), 0o600)
		return nil
	}
	return out
}

// TestOutputFlood writes 1 GiB; the host keeps the cap and stops the run.
func TestOutputFlood(t *testing.T) {
	sb := newSandbox(t)
	for _, lang := range []Lang{Python, Shell} {
		t.Run(string(lang), func(t *testing.T) {
			src := "import sys\nb = b'x' * (1 << 20)\nfor _ in range(1024): sys.stdout.buffer.write(b)\n"
			if lang == Shell {
				src = "head -c 1073741824 /dev/zero"
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res := run(t, sb, Spec{Lang: lang, Source: src, Limits: Limits{Output: 64 << 10}})
			runtime.ReadMemStats(&after)
			if res.Reason != OutputLimit || !res.StdoutTruncated || len(res.Stdout) != 64<<10 {
				t.Errorf("reason %s truncated %v len %d, want output_limit, truncated, 64 KiB", res.Reason, res.StdoutTruncated, len(res.Stdout))
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
				t.Errorf("host allocated %d MiB for the output", grew>>20)
			}
		})
	}
}

// TestDaemonGone starts a daemon that tries to outlive the run and checks
// that no process of it is left on the host once Run returns.
func TestDaemonGone(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	marker := fmt.Sprintf("hive-daemon-%d-%d", os.Getpid(), time.Now().UnixNano())
	src := fmt.Sprintf(`setsid sh -c 'sleep 1000; echo %s' </dev/null >/dev/null 2>&1 &
sh -c 'trap "" HUP TERM; sleep 1000; echo %s' </dev/null >/dev/null 2>&1 &
sleep 0.3; echo started`, marker, marker)
	res := run(t, sb, Spec{Lang: Shell, Source: src})
	if res.Reason != Exited || !bytes.Contains(res.Stdout, []byte("started")) {
		t.Fatalf("got %s %q", res.Reason, res.Stdout)
	}
	if pids := findProcesses(marker); len(pids) > 0 {
		t.Errorf("processes %v outlived the run", pids)
	}
}

// findProcesses returns host pids whose command line holds s.
func findProcesses(s string) []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, d.Name())
		}
	}
	return out
}

// TestKillAllSparesHost runs kill -9 -1 in a sandbox while a host process
// of the same user is alive, and checks it still is.
func TestKillAllSparesHost(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	host := exec.Command("sleep", "60")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { host.Process.Kill(); host.Wait() }()
	res := run(t, sb, Spec{Lang: Shell, Source: "kill -9 -1; kill -9 1; echo done"})
	if res.Reason != Exited {
		t.Errorf("reason %s", res.Reason)
	}
	if err := host.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("host process killed: %v", err)
	}
}

// TestCrossSandbox runs two sandboxes at once; the second looks for the
// first one's files and processes.
func TestCrossSandbox(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	token := fmt.Sprintf("secret%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type out struct {
		res *Result
		err error
	}
	first := make(chan out, 1)
	go func() {
		res, err := sb.Run(ctx, Spec{Lang: Shell, Limits: Limits{Wall: 20 * time.Second}, Source: fmt.Sprintf(
			"echo %[1]s > /box/%[1]s; echo %[1]s > /tmp/%[1]s; echo %[1]s > /dev/shm/%[1]s; echo ready; sleep 3", token)})
		first <- out{res, err}
	}()
	time.Sleep(time.Second) // let the first one write
	res := run(t, sb, Spec{Lang: Shell, Source: fmt.Sprintf(`
find / -xdev -name '%[1]s*' 2>/dev/null | head
find /box /tmp /dev/shm -name '%[1]s*' 2>/dev/null
grep -rl --exclude=main.sh %[1]s /box /tmp /dev/shm 2>/dev/null
ls /proc | grep -c '^[0-9]'
echo searched`, token)})
	if !bytes.Contains(res.Stdout, []byte("searched")) || bytes.Contains(res.Stdout, []byte(token)) {
		t.Errorf("second sandbox output %q", res.Stdout)
	}
	// Its own /proc shows only its init, the shell and ls/grep.
	if n := strings.Fields(string(res.Stdout)); len(n) < 2 || atoi(n[len(n)-2]) > 5 {
		t.Errorf("second sandbox sees processes: %q", res.Stdout)
	}
	o := <-first
	if o.err != nil || !bytes.Contains(o.res.Stdout, []byte("ready")) {
		t.Errorf("first sandbox: %v %+v", o.err, o.res)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1 << 30
	}
	return n
}
