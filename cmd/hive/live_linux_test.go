package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of 100×40 and returns its two ends.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 100}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestRunLiveOnTerminal runs hive with stderr on a terminal: the tree is
// drawn live there, in colour and in place, and stdout has the answer only.
func TestRunLiveOnTerminal(t *testing.T) {
	w := newWorld(t)
	master, tty := openPTY(t)
	cmd := exec.Command(os.Args[0], "run", "count to three")
	cmd.Env = []string{"HIVE_TEST_AS_MAIN=1", "HIVE_CONFIG=" + w.cfg, "HOME=" + w.dir, "PATH=" + os.Getenv("PATH")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&screen, master); close(copied) }()
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("exit %d", code)
	}
	tty.Close() // the reader sees EIO once the last writer is gone
	<-copied
	s := screen.String()
	if out.String() != "three reports\n" {
		t.Fatalf("stdout = %q", out.String())
	}
	if !strings.Contains(s, "\x1b[32mdone\x1b[0m") {
		t.Fatalf("no coloured status on the terminal:\n%q", s)
	}
	if !strings.Contains(s, "F\x1b[J") {
		t.Logf("terminal output:\n%q", s)
		t.Fatal("the tree was never redrawn in place")
	}
	if !strings.Contains(s, "4 nodes: 4 done") {
		t.Fatalf("final tree missing:\n%q", s)
	}
}
