package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// pythonInfo is the real Python interpreter behind a name such as
// "python3", which may be a pyenv shim (a shell script) or a virtualenv.
type pythonInfo struct {
	Exe        string   // real executable, symlinks resolved
	Version    string   // e.g. "3.11.7"
	Binds      []string // host paths to bind read-only: prefixes, the executable
	Executable string   // sys.executable as Python reports it
}

// pythonProbe prints what the sandbox needs to know of an interpreter.
const pythonProbe = `import json, sys, platform
print(json.dumps({"executable": sys.executable, "prefix": sys.prefix,
  "base_prefix": sys.base_prefix, "exec_prefix": sys.exec_prefix,
  "base_exec_prefix": getattr(sys, "base_exec_prefix", sys.exec_prefix),
  "version": platform.python_version()}))`

// resolvePython runs name once on the host (it is the host's own,
// trusted interpreter) and asks it where it lives.
func resolvePython(name string) (*pythonInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exe, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("python interpreter %q not found: %w", name, err)
	}
	out, err := exec.CommandContext(ctx, exe, "-E", "-s", "-c", pythonProbe).Output()
	if err != nil {
		return nil, fmt.Errorf("python interpreter %s does not run: %w", exe, err)
	}
	var p struct {
		Executable, Prefix, Version string
		BasePrefix                  string `json:"base_prefix"`
		ExecPrefix                  string `json:"exec_prefix"`
		BaseExecPrefix              string `json:"base_exec_prefix"`
	}
	if err := json.Unmarshal(out, &p); err != nil || p.Executable == "" {
		return nil, fmt.Errorf("python interpreter %s: unexpected answer %q", exe, out)
	}
	real, err := filepath.EvalSymlinks(p.Executable)
	if err != nil {
		return nil, fmt.Errorf("python interpreter %s: %w", p.Executable, err)
	}
	info := &pythonInfo{Exe: real, Version: p.Version, Executable: p.Executable}
	for _, dir := range []string{p.Prefix, p.BasePrefix, p.ExecPrefix, p.BaseExecPrefix, filepath.Dir(p.Executable), filepath.Dir(real)} {
		if dir == "" || underSystem(dir) {
			continue
		}
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			dir = r
		}
		info.Binds = appendPath(info.Binds, dir)
	}
	return info, nil
}

// systemDirs are bound read-only into every sandbox.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime"}

// underSystem reports whether dir is already inside the system binds.
func underSystem(dir string) bool {
	for _, s := range []string{"/usr", "/bin", "/lib", "/lib64"} {
		if dir == s || strings.HasPrefix(dir, s+"/") {
			return true
		}
	}
	return false
}

// appendPath adds dir to dirs unless it or a parent of it is there, and
// drops entries that dir contains.
func appendPath(dirs []string, dir string) []string {
	var out []string
	for _, d := range dirs {
		if d == dir || strings.HasPrefix(dir, d+"/") {
			return dirs
		}
		if !strings.HasPrefix(d, dir+"/") {
			out = append(out, d)
		}
	}
	return append(out, dir)
}

// shellInfo checks that the shell exists and is executable.
func shellInfo(sh string) (string, error) {
	p, err := exec.LookPath(sh)
	if err != nil {
		return "", fmt.Errorf("shell %q not found: %w", sh, err)
	}
	if !filepath.IsAbs(p) {
		p, _ = filepath.Abs(p)
	}
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}
