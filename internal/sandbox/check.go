package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Feature is one isolation feature or interpreter and whether it works
// here.
type Feature struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Report is what [Check] found.
type Report struct {
	Features []Feature `json:"features"`
	// Safe is true when code can run isolated: every namespace, seccomp
	// and no_new_privs were seen active from inside a sandbox.
	Safe  bool   `json:"safe"`
	Error string `json:"error,omitempty"` // why not, when New failed
}

// checkScript prints, from inside a sandbox, what isolates it.
const checkScript = `for n in user pid net mnt ipc uts; do echo "ns $n $(readlink /proc/self/ns/$n)"; done
grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status
echo "ifaces $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
`

// Check starts sandboxes with cfg (in ModeNamespaces whatever cfg.Mode
// says) and reports which isolation features are active on this machine,
// as seen from inside, and which interpreters run.
func Check(ctx context.Context, cfg Config, log *slog.Logger) *Report {
	cfg.Mode = ModeNamespaces
	rep := &Report{}
	add := func(name string, ok bool, detail string, args ...any) {
		rep.Features = append(rep.Features, Feature{Name: name, OK: ok, Detail: fmt.Sprintf(detail, args...)})
	}
	sb, err := New(ctx, cfg, log)
	if err != nil {
		rep.Error = err.Error()
		add("namespaces", false, "%v", err)
		checkInterpreters(ctx, nil, cfg, add)
		return rep
	}
	res, err := sb.Run(ctx, Spec{Lang: Shell, Source: checkScript})
	if err != nil || !res.OK() {
		rep.Error = fmt.Sprintf("the check program did not run: %v", errOrResult(err, res))
		add("namespaces", false, "%s", rep.Error)
		checkInterpreters(ctx, sb, cfg, add)
		return rep
	}
	inside := map[string]string{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "ns":
			inside["ns "+f[1]] = f[2]
		case len(f) >= 2:
			inside[strings.TrimSuffix(f[0], ":")] = strings.Join(f[1:], " ")
		}
	}
	safe := true
	for _, n := range []string{"user", "pid", "net", "mnt", "ipc", "uts"} {
		host, _ := os.Readlink("/proc/self/ns/" + n)
		in := inside["ns "+n]
		ok := in != "" && in != host
		safe = safe && ok
		add(n+" namespace", ok, "inside %s, host %s", in, host)
	}
	seccomp := inside["Seccomp"] == "2"
	nnp := inside["NoNewPrivs"] == "1"
	safe = safe && seccomp && nnp
	add("seccomp filter", seccomp, "Seccomp: %s (an allow list: other calls fail with ENOSYS, dangerous ones with EPERM)", inside["Seccomp"])
	add("no_new_privs", nnp, "NoNewPrivs: %s", inside["NoNewPrivs"])
	add("capabilities dropped", inside["CapEff"] == "0000000000000000", "CapEff: %s", inside["CapEff"])
	add("network", inside["ifaces"] == "lo", "interfaces inside: %s", inside["ifaces"])
	add("rlimits", true, "cpu, address space, processes, file size, open files, no core")
	if sb.cgroup != nil {
		add("cgroup limits", true, "%s memory and pids per run in %s", sb.cgroup.mode(), sb.cgroup.dir())
	} else {
		add("cgroup limits", false, "%s (rlimits still apply)", sb.cgNote)
	}
	add("memory", true, "%s", memoryModeDetail(sb))
	rep.Safe = safe
	checkInterpreters(ctx, sb, cfg, add)
	return rep
}

// checkInterpreters reports the interpreters, run inside sb when there is
// one.
func checkInterpreters(ctx context.Context, sb *Sandbox, cfg Config, add func(string, bool, string, ...any)) {
	if cfg.Python == "" {
		cfg.Python = "python3"
	}
	if cfg.Shell == "" {
		cfg.Shell = "/bin/sh"
	}
	py, err := resolvePython(cfg.Python)
	switch {
	case err != nil:
		add("python", false, "%v", err)
	case sb == nil:
		add("python", true, "%s %s (not run: no sandbox)", py.Exe, py.Version)
	default:
		res, err := sb.Run(ctx, Spec{Lang: Python, Source: "import sys; print(sys.version.split()[0])"})
		ok := err == nil && res.OK()
		add("python", ok, "%s %s, in the sandbox: %s", py.Exe, py.Version, errOrResult(err, res))
	}
	sh, err := shellInfo(cfg.Shell)
	if err != nil {
		add("shell", false, "%v", err)
	} else {
		add("shell", true, "%s", sh)
	}
	if sb == nil {
		add("javascript", true, "goja, in the sandbox's child (not run: no sandbox)")
		return
	}
	res, err := sb.Run(ctx, Spec{Lang: JavaScript, Source: "console.log(1 + 1)"})
	if err == nil && res.OK() && strings.TrimSpace(string(res.Stdout)) == "2" {
		add("javascript", true, "goja, in the sandbox's child (no file system, no network): ran 1 + 1")
	} else {
		add("javascript", false, "goja, in the sandbox's child: %s", errOrResult(err, res))
	}
}

// memoryModeDetail says how sb limits memory and what that means.
func memoryModeDetail(sb *Sandbox) string {
	ceiling := fmt.Sprintf("; runs in progress may together reserve at most %d MiB (ceiling)", sb.MemoryCeiling()>>20)
	switch sb.MemoryMode() {
	case MemoryCgroupV2, MemoryCgroupV1:
		return fmt.Sprintf("mode %s: each run's total memory is limited by its own cgroup, and each process's address space by RLIMIT_AS%s", sb.MemoryMode(), ceiling)
	case MemorySampled:
		return fmt.Sprintf("mode sampled: memory is limited per process (RLIMIT_AS); the run's total is sampled every %v from /proc and the run killed past its limit (a burst between samples can pass)%s", sampleEvery, ceiling)
	}
	return "mode per_process: only each process's address space is limited (RLIMIT_AS), not the run's total" + ceiling
}

func errOrResult(err error, res *Result) string {
	if err != nil {
		return err.Error()
	}
	if res.OK() {
		return strings.TrimSpace(string(res.Stdout))
	}
	return fmt.Sprintf("%s (exit %d): %s", res.Reason, res.ExitCode, strings.TrimSpace(string(lastLines(res.Stderr, 2))))
}
