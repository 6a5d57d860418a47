//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostileUnprivileged re-runs the hostile suite as uid/gid 65534, the
// way a user without privileges runs Hive. It needs root to drop to that
// user; when the tests already run unprivileged, TestHostile is that run.
func TestHostileUnprivileged(t *testing.T) {
	t.Parallel()
	if unprivileged() {
		return // this is the unprivileged run
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: TestHostile already ran unprivileged")
	}
	// The test binary must be readable and executable by the user.
	dir, err := os.MkdirTemp("", "hive-sandbox-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sandbox.test")
	if err := copyFile(bin, os.Args[0]); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	repo, _ := os.Getwd()
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run", "^(TestHostile|TestDaemonGone|TestKillAllSparesHost|TestProgram|TestJavaScriptLimits|TestMemoryTotal|TestExecHostile)$", "-test.v", "-test.count=1")
	cmd.Dir = repo
	cmd.Env = []string{"HIVE_SANDBOX_TEST_UNPRIV=1", "HOME=" + home, "TMPDIR=" + os.TempDir(),
		"PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	// A child that a parallel test forked while the copy was open for
	// writing holds it until it execs: "text file busy". Try again.
	for i := 0; i < 20 && errors.Is(err, syscall.ETXTBSY); i++ {
		time.Sleep(50 * time.Millisecond)
		retry := exec.CommandContext(ctx, bin, cmd.Args[1:]...)
		retry.Dir, retry.Env, retry.SysProcAttr = cmd.Dir, cmd.Env, cmd.SysProcAttr
		out, err = retry.CombinedOutput()
	}
	t.Logf("unprivileged run:\n%s", tail(out, 6000))
	if err != nil {
		if bytes.Contains(out, []byte("sandbox unavailable")) {
			t.Fatalf("this machine does not allow unprivileged user namespaces: %v", err)
		}
		t.Fatalf("unprivileged suite failed: %v", err)
	}
	for _, name := range []string{"TestHostile/cases/read_/etc/shadow", "TestHostile/cases/read_host_home",
		"TestHostile/cases/connect_host_loopback", "TestHostile/cases/fork_until_refused",
		"TestHostile/cases/memory_bomb", "TestHostile/cases/infinite_loop", "TestHostile/cases/ptrace_and_escapes",
		"TestHostile/cases/kill_-9_-1", "TestDaemonGone", "TestKillAllSparesHost"} {
		if !bytes.Contains(out, []byte("--- PASS: "+name+" ")) {
			t.Errorf("%s did not pass as uid 65534", name)
		}
	}
	if bytes.Contains(out, []byte("--- SKIP: TestHostile/")) {
		t.Error("hostile cases were skipped as uid 65534")
	}
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func tail(b []byte, n int) string {
	s := string(b)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
