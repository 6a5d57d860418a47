//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dop251/goja"
	"golang.org/x/sys/unix"
)

// goWorkloadEnv makes this test binary, copied into a sandbox, run
// goWorkload instead of its tests: a Go program (the runtime, goroutines,
// signals, a child process, goja) under the seccomp filter, as a
// re-executed hive binary running JavaScript will be.
const goWorkloadEnv = "HIVE_SECCOMP_GO_WORKLOAD"

func init() {
	if os.Getenv(goWorkloadEnv) == "1" {
		if err := goWorkload(); err != nil {
			fmt.Println("GO FAILED:", err)
			os.Exit(1)
		}
		fmt.Println("GO OK")
		os.Exit(0)
	}
}

func goWorkload() error {
	// Goroutines on many threads, channels, timers.
	var wg sync.WaitGroup
	ch := make(chan int, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%8 == 0 {
				runtime.LockOSThread() // forces new threads
				defer runtime.UnlockOSThread()
			}
			time.Sleep(time.Millisecond)
			ch <- i
		}()
	}
	wg.Wait()
	close(ch)
	sum := 0
	for v := range ch {
		sum += v
	}
	if sum != 64*63/2 {
		return fmt.Errorf("sum %d", sum)
	}
	// Garbage: the collector maps, unmaps and advises memory.
	var keep [][]byte
	for i := range 200 {
		b := make([]byte, 256<<10)
		b[0] = byte(i)
		if i%10 == 0 {
			keep = append(keep, b)
		}
	}
	runtime.GC()
	runtime.KeepAlive(keep)
	// Signals.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	select {
	case <-sig:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("no SIGUSR1")
	}
	// Files, a child process, a Unix socket through the netpoller.
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		return err
	}
	out, err := exec.Command("/bin/sh", "-c", "echo child").Output()
	if err != nil || string(out) != "child\n" {
		return fmt.Errorf("child: %q %v", out, err)
	}
	sock := filepath.Join(os.TempDir(), "go.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("pong"))
			c.Close()
		}
	}()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	buf := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil || string(buf) != "pong" {
		return fmt.Errorf("unix socket: %q %v", buf, err)
	}
	c.Close()
	// JavaScript.
	v, err := goja.New().RunString(`[1, 2, 3].map(x => x * 2).join(",")`)
	if err != nil || v.String() != "2,4,6" {
		return fmt.Errorf("goja: %v %v", v, err)
	}
	return nil
}

// seccompWorkloads are ordinary programs the filter must let run.
var seccompWorkloads = []struct {
	name   string
	lang   Lang
	source string
	want   string
}{
	{"python stdlib", Python, `
import json, re, sqlite3, hashlib, random, datetime, decimal, fractions, statistics, pathlib
import tempfile, shutil, zipfile, gzip, csv, uuid, logging, struct, io, pickle, copy, heapq
import bisect, itertools, functools, collections, textwrap, argparse, string, math, base64
import unittest, locale, platform, sysconfig, urllib.parse, html, xml.etree.ElementTree as ET
import mmap, fcntl, resource, select, selectors, signal, socket, ctypes, os, sys, time
db = sqlite3.connect(":memory:")
db.execute("create table t (a)"); db.executemany("insert into t values (?)", [(i,) for i in range(100)])
f = sqlite3.connect(os.path.join(tempfile.gettempdir(), "x.db")); f.execute("create table t (a)"); f.commit(); f.close()
assert db.execute("select sum(a) from t").fetchone()[0] == 4950
assert json.loads(json.dumps({"a": [1, 2]})) == {"a": [1, 2]}
assert re.sub(r"\d+", "#", "a1b22") == "a#b#"
d = tempfile.mkdtemp(); p = pathlib.Path(d, "f.txt"); p.write_text("hi")
shutil.copy(p, pathlib.Path(d, "g.txt")); shutil.copytree(d, d + "2"); shutil.rmtree(d + "2")
with zipfile.ZipFile(pathlib.Path(d, "z.zip"), "w") as z: z.write(p)
with gzip.open(pathlib.Path(d, "z.gz"), "wb") as g: g.write(b"x" * 1000)
os.symlink(p, pathlib.Path(d, "l")); os.link(p, pathlib.Path(d, "h")); os.chmod(p, 0o600)
os.utime(p, None); os.rename(pathlib.Path(d, "g.txt"), pathlib.Path(d, "k.txt")); os.truncate(p, 1)
with open(p, "a") as fh:
    fcntl.flock(fh, fcntl.LOCK_EX); fh.write("x"); fh.flush(); os.fsync(fh.fileno())
m = mmap.mmap(-1, 4096); m[:2] = b"ok"
print(sorted(e.name for e in os.scandir(d)), list(os.walk(d))[0][0] == d)
print(uuid.uuid4().version, len(os.urandom(8)), random.random() < 1, hashlib.sha256(b"").hexdigest()[:4])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0, os.times().user >= 0, os.cpu_count() > 0)
print(time.process_time() >= 0, time.thread_time() >= 0, time.monotonic() > 0, len(os.sched_getaffinity(0)) > 0)
print(platform.system(), os.uname().sysname, os.getloadavg()[0] >= 0, os.getuid(), os.getgroups() is not None)
print(ctypes.CDLL(None).getpid() == os.getpid())
print("STDLIB OK")`, "STDLIB OK"},
	{"python threads", Python, `
import threading, queue, time, concurrent.futures as cf
q = queue.Queue(); ev = threading.Event(); cond = threading.Condition(); lock = threading.Lock()
def work(i):
    with lock: pass
    with cond: cond.wait(0.01)
    q.put(i * i)
ts = [threading.Thread(target=work, args=(i,)) for i in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
assert sorted(q.get() for _ in range(16)) == [i * i for i in range(16)]
assert not ev.wait(0.01)
threading.Timer(0.01, ev.set).start(); assert ev.wait(5)
with cf.ThreadPoolExecutor(8) as ex: assert sum(ex.map(lambda x: x, range(100))) == 4950
time.sleep(0.01)
print("THREADS OK")`, "THREADS OK"},
	{"python processes", Python, `
import os, sys, subprocess, signal, time, multiprocessing as mp, concurrent.futures as cf
def sq(x): return x * x
if __name__ == "__main__":
    assert subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout == "hi\n"
    assert subprocess.check_output("ls / | grep -c box", shell=True).strip() == b"1"
    p = subprocess.Popen([sys.executable, "-c", "import sys; print(sys.stdin.read())"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.communicate(b"x", timeout=10)[0] == b"x\n"
    try: subprocess.run(["sleep", "5"], timeout=0.2)
    except subprocess.TimeoutExpired: pass
    pid = os.fork()
    if pid == 0: os._exit(7)
    assert os.waitpid(pid, 0)[1] >> 8 == 7
    pid = os.posix_spawn("/bin/true", ["true"], os.environ)
    assert os.waitpid(pid, 0)[1] == 0
    r, w = os.pipe(); os.dup2(w, 9); os.write(9, b"p"); assert os.read(r, 1) == b"p"
    for method in ("fork", "spawn", "forkserver"):
        ctx = mp.get_context(method)
        with ctx.Pool(2) as pool: assert pool.map(sq, range(10)) == [x * x for x in range(10)], method
        q = ctx.Queue(); pr = ctx.Process(target=q.put, args=(method,)); pr.start(); assert q.get(timeout=20) == method; pr.join()
        l = ctx.Lock(); l.acquire(); l.release()
    with cf.ProcessPoolExecutor(2) as ex: assert list(ex.map(sq, range(5))) == [0, 1, 4, 9, 16]
    signal.signal(signal.SIGALRM, lambda *a: None); signal.setitimer(signal.ITIMER_REAL, 0.01); time.sleep(0.05)
    signal.signal(signal.SIGUSR1, lambda *a: None); os.kill(os.getpid(), signal.SIGUSR1)
    print("PROCESSES OK")`, "PROCESSES OK"},
	{"python sockets and asyncio", Python, `
import socket, os, select, selectors, asyncio, tempfile
a, b = socket.socketpair(); a.sendall(b"x"); assert b.recv(1) == b"x"
path = os.path.join(tempfile.gettempdir(), "s")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); srv.bind(path); srv.listen()
cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); cli.connect(path)
conn, _ = srv.accept(); cli.send(b"y"); assert select.select([conn], [], [], 5)[0]; assert conn.recv(1) == b"y"
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d.bind(path + "d"); socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"z", path + "d"); assert d.recv(1) == b"z"
p = select.poll(); p.register(conn, select.POLLIN); p.poll(0)
ep = select.epoll(); ep.register(conn.fileno(), select.EPOLLIN); ep.poll(0)
async def main():
    async def handle(r, w):
        w.write(await r.read(3)); await w.drain(); w.close()
    s = await asyncio.start_unix_server(handle, path + "a")
    r, w = await asyncio.open_unix_connection(path + "a"); w.write(b"abc"); await w.drain()
    assert await r.read(3) == b"abc"; w.close(); s.close()
    await asyncio.sleep(0.01)
    proc = await asyncio.create_subprocess_exec("echo", "async", stdout=asyncio.subprocess.PIPE)
    assert (await proc.communicate())[0] == b"async\n"
    assert await asyncio.get_running_loop().run_in_executor(None, sum, [1, 2]) == 3
asyncio.run(main())
print("SOCKETS OK")`, "SOCKETS OK"},
	{"shell pipelines", Shell, `
set -e
cd "$(mktemp -d)"
seq 1 2000 | sort -rn | head -5 | tail -2 | wc -l
printf 'b 2\na 1\nc 3\nb 2\n' > f.txt
sort f.txt | uniq -c | awk '{s += $1} END {print "awk", s}'
grep -c b f.txt; sed -n 's/a/A/p' f.txt; cut -d' ' -f2 f.txt | tr '\n' ','; echo
ls -la . | grep -q f.txt; cat f.txt | md5sum | cut -c1-4; sha256sum f.txt > /dev/null; base64 f.txt | base64 -d > g.txt; cmp f.txt g.txt
mkdir -p a/b; cp f.txt a/b/; mv a/b/f.txt a/b/h.txt; ln -s a/b/h.txt l; ln f.txt hard; chmod 600 f.txt; touch -d '2020-01-01' f.txt
find . -name '*.txt' | sort | xargs -n1 basename | tr '\n' ' '; echo
stat -c %s f.txt; du -s . > /dev/null; df . > /dev/null || true; od -c f.txt | head -1 > /dev/null
seq 1 100000 > big; sort --parallel=4 -S 1M big | tail -1; split -l 50000 big part; cat part* | wc -l
timeout 5 sleep 0.1; timeout 0.1 sleep 5 || echo timed out
date +%Y > /dev/null; id -u; uname -s; nproc > /dev/null; env | grep -q PATH; readlink -f l > /dev/null; realpath . > /dev/null
sleep 2 & pid=$!; kill $pid; wait $pid || echo killed
trap 'echo trapped' USR1; kill -USR1 $$
x=$(echo sub | tr a-z A-Z); echo $x; yes | head -3 | tr -d '\n'; echo
read line < f.txt; echo "$line" | tee t.txt > /dev/null
cat <<EOF
heredoc
EOF
bash -c 'echo bash $((1+2)); cat < <(echo procsub); echo {a,b}'
diff f.txt f.txt && echo same; rm -r a; rm -f part*
echo SHELL OK`, "SHELL OK"},
}

// The seccomp tests that run the sandbox are not parallel at the top: they
// are done before the parallel tests start, so that their many forks do
// not hold the unprivileged suite's freshly written binary open (ETXTBSY).

func TestSeccompWorkloads(t *testing.T) {
	sb := newSandbox(t)
	for _, w := range seccompWorkloads {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			res := run(t, sb, Spec{Lang: w.lang, Source: w.source, Limits: Limits{Wall: 60 * time.Second}})
			if !res.OK() || !bytes.Contains(res.Stdout, []byte(w.want)) {
				t.Errorf("got %s exit %d, want %q\nstdout:\n%s\nstderr:\n%s", res.Reason, res.ExitCode, w.want, res.Stdout, res.Stderr)
			}
		})
	}
}

// TestSeccompGoRuntime runs this test binary inside the sandbox as a Go
// program (see goWorkload).
func TestSeccompGoRuntime(t *testing.T) {
	sb := newSandbox(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	// Memory: this cgo-linked binary with a dozen threads does not start
	// within the default 1 GiB of address space (pthread_create fails).
	res := run(t, sb, Spec{Lang: Shell, Source: "chmod +x gobin && " + goWorkloadEnv + "=1 GOMAXPROCS=4 ./gobin",
		Files:  map[string][]byte{"gobin": bin},
		Limits: Limits{Wall: 60 * time.Second, Procs: 256, Memory: 4 << 30, Disk: int64(len(bin)) + 64<<20}})
	if !res.OK() || !strings.Contains(string(res.Stdout), "GO OK") {
		t.Errorf("got %s exit %d\nstdout:\n%s\nstderr:\n%s", res.Reason, res.ExitCode, res.Stdout, trunc(res.Stderr))
	}
}

// TestSeccompRefuses issues calls the filter refuses, from Python in the
// sandbox. Each is chosen so that the kernel itself would answer
// differently (with zero arguments: EFAULT, EINVAL or success), so the
// answer is the filter's.
func TestSeccompRefuses(t *testing.T) {
	sb := newSandbox(t)
	var calls strings.Builder
	call := func(name string, nr uint32, want string, args ...uint64) {
		a := make([]string, len(args))
		for i, x := range args {
			a[i] = fmt.Sprint(x)
		}
		fmt.Fprintf(&calls, "(%q, %d, %q, [%s]),\n", name, nr, want, strings.Join(a, ", "))
	}
	// Not on the list: a newer kernel's calls, and an unused number.
	call("listmount", unix.SYS_LISTMOUNT, "ENOSYS")
	call("statmount", unix.SYS_STATMOUNT, "ENOSYS")
	call("mseal", unix.SYS_MSEAL, "ENOSYS")
	call("lsm_list_modules", unix.SYS_LSM_LIST_MODULES, "ENOSYS")
	call("cachestat", unix.SYS_CACHESTAT, "ENOSYS")
	call("unused", 1000, "ENOSYS")
	call("clone3", unix.SYS_CLONE3, "ENOSYS")
	// Dangerous: every denied call.
	for _, nr := range append(slices.Clone(deniedSyscalls), archDenied...) {
		call("denied", nr, "EPERM")
	}
	call("clone newuser", unix.SYS_CLONE, "EPERM", unix.CLONE_NEWUSER|uint64(unix.SIGCHLD))
	call("clone newns", unix.SYS_CLONE, "EPERM", unix.CLONE_NEWNS|uint64(unix.SIGCHLD))
	call("socket inet", unix.SYS_SOCKET, "EPERM", unix.AF_INET, unix.SOCK_STREAM)
	call("socket netlink", unix.SYS_SOCKET, "EPERM", unix.AF_NETLINK, unix.SOCK_RAW)
	call("personality read_implies_exec", unix.SYS_PERSONALITY, "EPERM", 0x0400000)
	call("personality query", unix.SYS_PERSONALITY, "OK", personalityQuery)
	call("personality linux", unix.SYS_PERSONALITY, "OK", personalityLinux)
	call("getppid", unix.SYS_GETPPID, "OK")
	src := `
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
calls = [
` + calls.String() + `]
for name, nr, want, args in calls:
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
    if r == 0 and nr == ` + fmt.Sprint(unix.SYS_CLONE) + `:
        os._exit(0)  # a child: the filter let clone through
    got = "OK" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    print("PASS" if got == want else "FAIL", name, nr, "got", got, "want", want)
try:
    os.memfd_create("x")
    print("FAIL memfd_create from Python")
except PermissionError:
    print("PASS memfd_create from Python")
print("DONE")`
	res := run(t, sb, Spec{Lang: Python, Source: src})
	if !res.OK() || !bytes.Contains(res.Stdout, []byte("DONE")) {
		t.Fatalf("got %s exit %d\nstdout:\n%s\nstderr:\n%s", res.Reason, res.ExitCode, res.Stdout, res.Stderr)
	}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if strings.HasPrefix(line, "FAIL") {
			t.Error(line)
		}
	}
}

// TestSeccompPytest runs a small pytest suite (fixtures, output capture,
// faulthandler, a subprocess) with the first interpreter found that has
// pytest, and is skipped when none has.
func TestSeccompPytest(t *testing.T) {
	var py string
	for _, c := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(c, "-c", "import pytest").Run() == nil {
			py = c
			break
		}
	}
	if py == "" {
		t.Skip("no python3 with pytest")
	}
	sb, err := New(context.Background(), Config{Python: py}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	tests := `
import subprocess, sys, time, pytest

@pytest.fixture
def data(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("x")
    return p

def test_tmp_path(data):
    assert data.read_text() == "x"

def test_capture(capfd):
    print("out"); subprocess.run(["echo", "fd"])
    assert capfd.readouterr().out == "out\nfd\n"

def test_monkeypatch(monkeypatch):
    monkeypatch.setenv("X", "1"); monkeypatch.setattr(time, "time", lambda: 0)
    assert time.time() == 0

@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert n > 0

def test_raises():
    with pytest.raises(ZeroDivisionError):
        1 / 0
`
	res := run(t, sb, Spec{Lang: Python, Source: "import sys, pytest\nsys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'test_x.py']))",
		Files: map[string][]byte{"test_x.py": []byte(tests)}, Limits: Limits{Wall: 60 * time.Second}})
	if !res.OK() || !strings.Contains(string(res.Stdout), "7 passed") {
		t.Errorf("got %s exit %d\nstdout:\n%s\nstderr:\n%s", res.Reason, res.ExitCode, res.Stdout, res.Stderr)
	}
}
