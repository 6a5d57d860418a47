//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Two runs given sandboxes kept warm see nothing of each other: not the
// files the first left in /box, /tmp and /dev/shm, nor the process it
// left running, nor its pid namespace; and each run uses its sandbox
// once. Not parallel: it counts this process's children.
func TestWarmRunsShareNothing(t *testing.T) {
	sb, err := New(context.Background(), Config{Warm: 2}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	marker := fmt.Sprintf("hive-warm-%d", os.Getpid())
	// The first run fills the pool as it ends.
	first := run(t, sb, Spec{Lang: Shell, Source: fmt.Sprintf(`echo a > /box/%[1]s; echo a > /tmp/%[1]s; echo a > /dev/shm/%[1]s
(exec -a %[1]s sleep 1000) </dev/null >/dev/null 2>&1 &
echo $$`, marker)})
	if !first.OK() {
		t.Fatalf("first run: %s", summary(first))
	}
	sb.pool.wg.Wait()
	warm := sb.warmPids()
	if len(warm) != 2 {
		t.Fatalf("%d sandboxes kept warm, want 2", len(warm))
	}
	second := run(t, sb, Spec{Lang: Shell, Source: `ls -A /box /tmp /dev/shm; for p in /proc/[0-9]*; do cat $p/cmdline | tr '\0' ' '; echo; done`})
	if !second.OK() {
		t.Fatalf("second run: %s", summary(second))
	}
	if strings.Contains(string(second.Stdout), marker) {
		t.Errorf("the second run sees the first's files or processes:\n%s", second.Stdout)
	}
	procs := 0
	for _, line := range strings.Split(string(second.Stdout), "\n") {
		if strings.HasPrefix(line, "hive-sandbox-") || strings.HasPrefix(line, "/bin/sh") || strings.HasPrefix(line, "cat ") || strings.HasPrefix(line, "tr ") {
			procs++
		}
	}
	if procs == 0 || procs > 5 {
		t.Errorf("the second run's /proc lists %d processes of its own:\n%s", procs, second.Stdout)
	}
	// It ran in one of the warm sandboxes, which is used up.
	sb.pool.wg.Wait()
	now := sb.warmPids()
	used := 0
	for _, pid := range warm {
		if !slices.Contains(now, pid) {
			used++
		}
	}
	if used != 1 {
		t.Errorf("warm sandboxes %v before the second run, %v after: %d used, want 1", warm, now, used)
	}
	if pids := findProcesses(marker); len(pids) > 0 {
		t.Errorf("the first run's process outlived it: %v", pids)
	}
	// Put away, the sandboxes kept warm are gone; a run after that
	// starts its own and leaves nothing either.
	sb.Close()
	if left := leftBehind(); len(left) > 0 {
		t.Errorf("processes left once closed: %v", left)
	}
	if res := run(t, sb, Spec{Lang: Shell, Source: "echo after"}); string(res.Stdout) != "after\n" {
		t.Errorf("a run after Close: %s", summary(res))
	}
	if left := leftBehind(); len(left) > 0 {
		t.Errorf("processes left by a run after Close: %v", left)
	}
}

// A program in a warm sandbox holds no descriptor but its stdin, stdout
// and stderr: not the pipe its run came through, nor the socket between
// the init and the exec stage, nor the report pipe.
func TestWarmDescriptors(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	for range 2 { // the second from the pool the first filled
		res := run(t, sb, Spec{Lang: Shell, Source: `ls -l /proc/$$/fd`})
		if !res.OK() {
			t.Fatalf("%s", summary(res))
		}
		for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[len(f)-2] != "->" {
				continue
			}
			if fd := f[len(f)-3]; fd != "0" && fd != "1" && fd != "2" && (strings.Contains(line, "pipe:") || strings.Contains(line, "socket:")) {
				t.Errorf("the program holds %s", line)
			}
		}
	}
}

// With Warm < 0 no sandbox is kept started: each run starts its own.
func TestWarmOff(t *testing.T) {
	t.Parallel()
	sb, err := New(context.Background(), Config{Warm: -1}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if res := run(t, sb, Spec{Lang: Python, Source: "print(1)"}); !res.OK() {
		t.Fatalf("%s", summary(res))
	}
	sb.pool.wg.Wait()
	if pids := sb.warmPids(); len(pids) != 0 {
		t.Errorf("warm sandboxes %v with Warm -1", pids)
	}
}

// fdLeakEnv makes the test binary fdLeakChild.
const fdLeakEnv = "HIVE_SANDBOX_TEST_FDLEAK"

// fdLeakChild runs a program that prints every file it can reach through
// its descriptors, in a sandbox of a process that inherited one it was
// not meant to pass on.
func fdLeakChild() int {
	sb, err := New(context.Background(), Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sb.Close()
	for range 2 { // started for the run, then warm
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		res, err := sb.Run(ctx, Spec{Lang: Shell, Source: `ls -l /proc/$$/fd; for f in /proc/$$/fd/*; do cat $f </dev/null 2>/dev/null; done; true`})
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Stdout.Write(res.Stdout)
	}
	return 0
}

// A descriptor Hive inherited from whatever started it, open without
// close-on-exec (a shell's redirection, a supervisor's socket), does not
// reach the programs it runs: here a file holding a secret, on fd 23 of a
// Hive process.
func TestInheritedDescriptorsSealed(t *testing.T) {
	t.Parallel()
	secret := fmt.Sprintf("inherited-secret-%d", time.Now().UnixNano())
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fdLeakEnv+"=1")
	// fd 23 of the child, without close-on-exec: above those the sandbox
	// gives its stages, which would shadow it.
	cmd.ExtraFiles = append(make([]*os.File, 20), f)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "/box/main.sh") {
		t.Fatalf("the program did not run:\n%s", out)
	}
	if strings.Contains(string(out), secret) || strings.Contains(string(out), path) {
		t.Errorf("the program reached the inherited file:\n%s", out)
	}
}
