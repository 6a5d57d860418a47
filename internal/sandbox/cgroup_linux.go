package sandbox

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupParent is a cgroup v2 directory where this process may create
// children with the memory and pids controllers: one per run.
type cgroupParent struct{ dir string }

// findCgroup looks for a delegated cgroup v2 directory, or says why there
// is none.
func findCgroup() (*cgroupParent, string) {
	mount := ""
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, "cannot read /proc/self/mountinfo"
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				mount = fields[4]
			}
		}
		if mount != "" {
			break
		}
	}
	f.Close()
	if mount == "" {
		return nil, "no cgroup v2 hierarchy is mounted"
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, "cannot read /proc/self/cgroup"
	}
	rel := ""
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel = p
		}
	}
	if rel == "" {
		return nil, "this process is in no cgroup v2 group"
	}
	dir := filepath.Join(mount, rel)
	ctl, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	have := strings.Fields(string(ctl))
	for _, want := range []string{"memory", "pids"} {
		if !contains(have, want) {
			avail, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
			return nil, fmt.Sprintf("the %s controller is not delegated to %s (enabled for children: %q; available: %q); run hive under 'systemd-run --user --scope -p Delegate=yes' to get cgroup limits",
				want, dir, strings.TrimSpace(string(ctl)), strings.TrimSpace(string(avail)))
		}
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return nil, fmt.Sprintf("%s is not writable by this user", dir)
	}
	return &cgroupParent{dir: dir}, ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cgroupRun is the cgroup of one run.
type cgroupRun struct {
	dir string
	f   *os.File
}

// start creates a child cgroup with l's memory and process limits.
func (c *cgroupParent) start(l Limits) (*cgroupRun, error) {
	var b [8]byte
	rand.Read(b[:])
	dir := filepath.Join(c.dir, "hive-sandbox-"+hex.EncodeToString(b[:]))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	run := &cgroupRun{dir: dir}
	for file, val := range map[string]string{
		"memory.max":      strconv.FormatInt(l.Memory, 10),
		"memory.swap.max": "0",
		"pids.max":        strconv.Itoa(l.Procs + 2), // the init and the exec stage
	} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0); err != nil && file != "memory.swap.max" {
			run.close()
			return nil, fmt.Errorf("write %s: %w", file, err)
		}
	}
	f, err := os.Open(dir)
	if err != nil {
		run.close()
		return nil, err
	}
	run.f = f
	return run, nil
}

func (r *cgroupRun) fd() int { return int(r.f.Fd()) }

// peak returns the peak memory of the run, or 0 if unknown.
func (r *cgroupRun) peak() int64 {
	b, err := os.ReadFile(filepath.Join(r.dir, "memory.peak"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// oomKilled reports whether the kernel killed a process of the run for
// memory.
func (r *cgroupRun) oomKilled() bool {
	b, _ := os.ReadFile(filepath.Join(r.dir, "memory.events"))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok && v != "0" {
			return true
		}
	}
	return false
}

// close removes the cgroup; its processes are gone by then, but the
// kernel may take a moment to notice.
func (r *cgroupRun) close() {
	if r.f != nil {
		r.f.Close()
	}
	for i := 0; i < 50; i++ {
		if err := os.Remove(r.dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
