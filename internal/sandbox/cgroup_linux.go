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

// cgroupParent is where this process creates one cgroup per run with
// memory and pids limits: a cgroup v2 directory with both controllers
// enabled for its children, or the cgroup v1 memory and pids hierarchies.
type cgroupParent struct {
	v2   string // cgroup v2 parent directory, or ""
	mem  string // cgroup v1 memory parent directory, or ""
	pids string // cgroup v1 pids parent directory, or ""
}

// mode is the Result.MemoryMode of runs in cgroups of c.
func (c *cgroupParent) mode() string {
	if c.v2 != "" {
		return MemoryCgroupV2
	}
	return MemoryCgroupV1
}

// dir describes where runs' cgroups are made.
func (c *cgroupParent) dir() string {
	if c.v2 != "" {
		return c.v2
	}
	return c.mem + " and " + c.pids
}

// mountinfo maps each cgroup mount to its file system type ("cgroup2") or
// its v1 controllers ("memory", "pids", ...).
type cgroupMount struct {
	point string
	v2    bool
	opts  []string
}

func cgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld != "-" || i+3 >= len(fields) || len(fields) <= 4 {
				continue
			}
			switch fields[i+1] {
			case "cgroup2":
				out = append(out, cgroupMount{point: fields[4], v2: true})
			case "cgroup":
				out = append(out, cgroupMount{point: fields[4], opts: strings.Split(fields[i+3], ",")})
			}
		}
	}
	return out, sc.Err()
}

// ownCgroups maps "" (v2) and each v1 controller to this process's cgroup
// path in that hierarchy.
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

// findCgroup looks for a place to create per-run cgroups: this process's
// cgroup v2 directory when memory and pids are delegated; as root, the
// root of the v2 hierarchy (enabling memory and pids for its children) or
// this process's cgroups in the v1 memory and pids hierarchies. Otherwise
// it says why there is none.
func findCgroup() (*cgroupParent, string) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, "cannot read /proc/self/mountinfo"
	}
	own, err := ownCgroups()
	if err != nil {
		return nil, "cannot read /proc/self/cgroup"
	}
	root := os.Geteuid() == 0
	var notes []string
	for _, m := range mounts {
		if !m.v2 {
			continue
		}
		rel, ok := own[""]
		if !ok {
			notes = append(notes, "this process is in no cgroup v2 group")
			break
		}
		p, note := v2Parent(filepath.Join(m.point, rel), root && rel == "/")
		if p == nil && root && rel != "/" {
			// Root may make its groups under the root of the hierarchy,
			// wherever this process lives.
			p, _ = v2Parent(m.point, true)
		}
		if p != nil {
			return p, ""
		}
		notes = append(notes, note)
		break
	}
	if root {
		var mem, pids string
		for _, m := range mounts {
			for _, c := range []string{"memory", "pids"} {
				if !m.v2 && contains(m.opts, c) && own[c] != "" {
					dir := filepath.Join(m.point, own[c])
					if unix.Access(dir, unix.W_OK) == nil {
						if c == "memory" {
							mem = dir
						} else {
							pids = dir
						}
					}
				}
			}
		}
		if mem != "" && pids != "" {
			return &cgroupParent{mem: mem, pids: pids}, ""
		}
		notes = append(notes, "no writable cgroup v1 memory and pids hierarchies")
	} else {
		notes = append(notes, "run hive under 'systemd-run --user --scope -p Delegate=yes' to get cgroup limits")
	}
	if len(notes) == 0 {
		return nil, "no cgroup hierarchy is mounted"
	}
	return nil, strings.Join(notes, "; ")
}

// v2Parent returns dir as a parent of per-run cgroups when memory and pids
// are enabled for its children, enabling them first when enable is set
// (the v2 root, where this process may live alongside child groups).
func v2Parent(dir string, enable bool) (*cgroupParent, string) {
	ctl, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	avail, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	have := strings.Fields(string(ctl))
	for _, want := range []string{"memory", "pids"} {
		if contains(have, want) {
			continue
		}
		if enable && contains(strings.Fields(string(avail)), want) &&
			os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+want), 0) == nil {
			continue
		}
		return nil, fmt.Sprintf("the cgroup v2 %s controller is not delegated to %s (enabled for children: %q; available: %q)",
			want, dir, strings.TrimSpace(string(ctl)), strings.TrimSpace(string(avail)))
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return nil, fmt.Sprintf("%s is not writable by this user", dir)
	}
	return &cgroupParent{v2: dir}, ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cgroupRun is the cgroup (v2) or pair of cgroups (v1 memory, pids) of one
// run.
type cgroupRun struct {
	v2   bool
	dirs []string // v2: the group; v1: memory, then pids
	f    *os.File // v2: the group, for clone's CLONE_INTO_CGROUP
}

// start creates the cgroups of a run with l's memory limit and l.Procs
// plus extra tasks: pids.max counts threads, and the init and the exec
// stage are Go processes with threads of their own.
func (c *cgroupParent) start(l Limits, extra int) (*cgroupRun, error) {
	var b [8]byte
	rand.Read(b[:])
	name := "hive-sandbox-" + hex.EncodeToString(b[:])
	pids := strconv.Itoa(l.Procs + extra)
	mem := strconv.FormatInt(l.Memory, 10)
	type setting struct {
		file, val string
		optional  bool
	}
	run := &cgroupRun{v2: c.v2 != ""}
	var groups [][]setting
	if run.v2 {
		run.dirs = []string{filepath.Join(c.v2, name)}
		groups = [][]setting{{{"memory.max", mem, false}, {"memory.swap.max", "0", true}, {"pids.max", pids, false}}}
	} else {
		run.dirs = []string{filepath.Join(c.mem, name), filepath.Join(c.pids, name)}
		groups = [][]setting{
			{{"memory.limit_in_bytes", mem, false}, {"memory.memsw.limit_in_bytes", mem, true}, {"memory.swappiness", "0", true}},
			{{"pids.max", pids, false}},
		}
	}
	for i, dir := range run.dirs {
		if err := os.Mkdir(dir, 0o755); err != nil {
			run.dirs = run.dirs[:i]
			run.close()
			return nil, err
		}
		for _, s := range groups[i] {
			if err := os.WriteFile(filepath.Join(dir, s.file), []byte(s.val), 0); err != nil && !s.optional {
				run.close()
				return nil, fmt.Errorf("write %s: %w", s.file, err)
			}
		}
	}
	if run.v2 {
		f, err := os.Open(run.dirs[0])
		if err != nil {
			run.close()
			return nil, err
		}
		run.f = f
	}
	return run, nil
}

// setLimits sets the run's memory limit and l.Procs plus extra tasks on
// groups made for a sandbox started before its run.
func (r *cgroupRun) setLimits(l Limits, extra int) error {
	mem, pids := strconv.FormatInt(l.Memory, 10), strconv.Itoa(l.Procs+extra)
	settings := [][2]string{{r.dirs[0], "memory.max"}, {r.dirs[0], "pids.max"}}
	if !r.v2 {
		settings = [][2]string{{r.dirs[0], "memory.limit_in_bytes"}, {r.dirs[1], "pids.max"}}
	}
	if !r.v2 {
		// memsw may not be below the memory limit: raised before it,
		// lowered after it (one of the two writes fails, harmlessly).
		os.WriteFile(filepath.Join(r.dirs[0], "memory.memsw.limit_in_bytes"), []byte(mem), 0)
	}
	for i, s := range settings {
		val := mem
		if i == 1 {
			val = pids
		}
		if err := os.WriteFile(filepath.Join(s[0], s[1]), []byte(val), 0); err != nil {
			return fmt.Errorf("write %s: %w", s[1], err)
		}
	}
	if !r.v2 {
		os.WriteFile(filepath.Join(r.dirs[0], "memory.memsw.limit_in_bytes"), []byte(mem), 0)
	}
	return nil
}

// mode is the Result.MemoryMode of a run in r.
func (r *cgroupRun) mode() string {
	if r.v2 {
		return MemoryCgroupV2
	}
	return MemoryCgroupV1
}

// fd is the v2 group to start the init in, or -1 with v1.
func (r *cgroupRun) fd() int {
	if r.f == nil {
		return -1
	}
	return int(r.f.Fd())
}

// attach moves pid into the v1 groups; the init waits for it before it
// starts the program. With v2 the init was started in its group.
func (r *cgroupRun) attach(pid int) error {
	if r.v2 {
		return nil
	}
	for _, dir := range r.dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("move the sandbox into %s: %w", dir, err)
		}
	}
	return nil
}

// peak returns the peak memory of the run, or 0 if unknown.
func (r *cgroupRun) peak() int64 {
	file := "memory.peak"
	if !r.v2 {
		file = "memory.max_usage_in_bytes"
	}
	b, err := os.ReadFile(filepath.Join(r.dirs[0], file))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// oomKilled reports whether the kernel killed a process of the run for
// memory.
func (r *cgroupRun) oomKilled() bool {
	file := "memory.events"
	if !r.v2 {
		file = "memory.oom_control"
	}
	b, _ := os.ReadFile(filepath.Join(r.dirs[0], file))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok && v != "0" {
			return true
		}
	}
	return false
}

// close removes the cgroups; their processes are gone by then, but the
// kernel may take a moment to notice.
func (r *cgroupRun) close() {
	if r.f != nil {
		r.f.Close()
	}
	for _, dir := range r.dirs {
		for i := 0; i < 50; i++ {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
