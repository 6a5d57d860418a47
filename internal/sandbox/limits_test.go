//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLimitsAccounting checks that a run killed by the host still reports
// what its processes used.
func TestLimitsAccounting(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	// The program says when its 64 MiB are filled, then spins until the
	// wall limit kills it. Filling takes about 50 ms on a quiet machine,
	// but in a virtual machine whose host backs memory lazily, a loaded
	// host made it take over 2 s; 5 s leaves room for that.
	res := run(t, sb, Spec{Lang: Python, Source: "x = b'x' * (64 << 20)\nprint('filled', flush=True)\nwhile True: pass",
		Limits: Limits{Wall: 5 * time.Second, CPU: 30 * time.Second}})
	if res.Reason != WallTimeout {
		t.Errorf("reason %s, want wall_timeout", res.Reason)
	}
	if !strings.Contains(string(res.Stdout), "filled") {
		t.Fatalf("the program was killed before it filled its memory, in %v of wall and %v of CPU: the machine is too busy for this test", res.Wall, res.CPU)
	}
	// Starting Python and filling 64 MiB take about 50 ms of CPU; what
	// the spinning adds depends on how busy the machine is, but over
	// seconds it is well past that even with every core shared many ways.
	if res.CPU < 150*time.Millisecond {
		t.Errorf("cpu %v of a program that spun until killed", res.CPU)
	}
	if res.Memory < 64<<20 || res.Memory > 256<<20 {
		t.Errorf("peak memory %d, want about 64 MiB plus the interpreter", res.Memory)
	}
}

func TestFileLimit(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	res := run(t, sb, Spec{Lang: Shell, Source: "head -c 4194304 /dev/zero > /box/big; echo $?",
		Limits: Limits{Disk: 1 << 20}})
	if res.Reason != Exited || strings.TrimSpace(string(res.Stdout)) == "0" {
		t.Errorf("writing 4 MiB with a 1 MiB limit: %s %q", res.Reason, res.Stdout)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	res, err := sb.Run(ctx, Spec{Lang: Shell, Source: "sleep 30"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reason != Canceled || time.Since(start) > 5*time.Second {
		t.Errorf("reason %s after %v", res.Reason, time.Since(start))
	}
}

func TestJavaScriptLimits(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	tests := []struct {
		name   string
		src    string
		limits Limits
		want   Reason
		check  func(*Result) bool
	}{
		{"loop", "while (true) {}", Limits{Wall: 300 * time.Millisecond}, WallTimeout, nil},
		// The CPU limit is whole seconds; a long wall limit lets it end
		// the run however loaded the machine.
		{"cpu", "for (;;) {}", Limits{Wall: 30 * time.Second, CPU: 200 * time.Millisecond}, CPULimit, nil},
		{"output", "for (;;) console.log('xxxxxxxxxxxxxxxx')", Limits{Output: 4096}, OutputLimit,
			func(r *Result) bool { return r.StdoutTruncated && len(r.Stdout) == 4096 }},
		{"memory", "let a = []; for (;;) a.push('x'.repeat(1 << 22) + a.length)", Limits{Memory: 64 << 20, Wall: 30 * time.Second, CPU: 30 * time.Second}, MemoryLimit, nil},
		{"no host", "console.log(typeof require, typeof process, typeof fetch, typeof setTimeout)", Limits{}, Exited,
			func(r *Result) bool { return string(r.Stdout) == "undefined undefined undefined undefined\n" }},
		{"recursion", "function f() { return f() + 1 } f()", Limits{}, Exited,
			func(r *Result) bool { return r.ExitCode == 1 && len(r.Stderr) > 0 }},
		{"syntax", "let = ;", Limits{}, Exited, func(r *Result) bool { return r.ExitCode == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, sb, Spec{Lang: JavaScript, Source: tt.src, Limits: tt.limits})
			if res.Reason != tt.want {
				t.Errorf("reason %s, want %s", res.Reason, tt.want)
			}
			if tt.check != nil && !tt.check(res) {
				t.Errorf("unexpected result %+v", res)
			}
		})
	}
}

// TestModeNone runs without isolation: it works, says so, and still kills
// on the wall limit.
func TestModeNone(t *testing.T) {
	t.Parallel()
	sb, err := New(context.Background(), Config{Mode: ModeNone}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, sb, Spec{Lang: Shell, Source: "echo $HOME; sleep 30", Limits: Limits{Wall: 4 * time.Second}})
	if res.Isolated || res.Reason != WallTimeout || !bytes.Contains(res.Stdout, []byte("hive-sandbox-")) {
		t.Errorf("got %+v", res)
	}
	res = run(t, sb, Spec{Lang: Python, Source: "print(6*7)"})
	if !res.OK() || string(res.Stdout) != "42\n" {
		t.Errorf("got %+v", res)
	}
}

func TestBadSpec(t *testing.T) {
	sb := newSandbox(t)
	for _, spec := range []Spec{
		{Lang: "cobol", Source: "x"},
		{Lang: Python, Files: map[string][]byte{"../x": nil}},
		{Lang: Python, Files: map[string][]byte{"/etc/x": nil}},
		{Lang: Python, Files: map[string][]byte{"main.py": nil}},
		{Lang: Python, Files: map[string][]byte{"a//b": nil}},
	} {
		if _, err := sb.Run(context.Background(), spec); err == nil {
			t.Errorf("Run(%+v) succeeded", spec)
		}
	}
}

func TestDiagnose(t *testing.T) {
	tests := []struct {
		name    string
		euid    int
		sysctls map[string]string
		err     error
		want    string
	}{
		{"userns clone off", 1000, map[string]string{"/proc/sys/kernel/unprivileged_userns_clone": "0"}, syscall.EPERM, "kernel.unprivileged_userns_clone=1"},
		{"apparmor", 1000, map[string]string{"/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1"}, syscall.EACCES, "apparmor_restrict_unprivileged_userns=0"},
		{"max zero", 0, map[string]string{"/proc/sys/user/max_user_namespaces": "0"}, syscall.ENOSPC, "user.max_user_namespaces"},
		{"container", 0, nil, syscall.EPERM, "seccomp=unconfined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := diagnose(tt.err, tt.euid, func(p string) string { return tt.sysctls[p] })
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, tt.err) {
				t.Errorf("%v does not match ErrUnavailable and %v", err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--sandbox=none") {
				t.Errorf("%q lacks %q or the way out", err, tt.want)
			}
		})
	}
}

func TestResultJSON(t *testing.T) {
	b, err := json.Marshal(&Result{Reason: Exited, Stdout: []byte("hi\n"), Wall: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["stdout"] != "hi\n" || m["reason"] != "exited" || m["wall_ns"] != float64(time.Second) {
		t.Errorf("JSON %s", b)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	rep := Check(context.Background(), Config{}, slog.New(slog.DiscardHandler))
	for _, f := range rep.Features {
		t.Logf("%-22s %v %s", f.Name, f.OK, f.Detail)
	}
	if !rep.Safe {
		t.Fatalf("not safe: %s", rep.Error)
	}
	ok := map[string]bool{}
	for _, f := range rep.Features {
		ok[f.Name] = f.OK
	}
	for _, name := range []string{"user namespace", "pid namespace", "net namespace", "mnt namespace", "ipc namespace",
		"uts namespace", "seccomp filter", "no_new_privs", "capabilities dropped", "network", "shell", "javascript"} {
		if !ok[name] {
			t.Errorf("%s not active", name)
		}
	}
}
