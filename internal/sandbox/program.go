package sandbox

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Program is Go code that the sandbox runs in its child, as it runs an interpreter.
//
// Pass it to [Init] in main (and in TestMain) so that both the host and
// the re-executed child know it; a Spec whose Lang is Lang(Name) then
// runs it. The child is set up exactly as for Python — namespaces,
// rlimits, seccomp, cgroup, dropped privileges — and then calls Main in
// place of exec'ing an interpreter, with the source (written to
// /box/main.NAME), stdin, and the child's stdout and stderr; its return
// value is the exit status. A panic or a Go runtime crash is an exit
// status of 2, and a crash for want of memory is a memory_limit Result.
//
// The Go runtime maps far more address space than it uses (about 1.2 GiB
// at start), so a Program's RLIMIT_AS is what its process has mapped
// when Main is called plus Limits.Memory plus 128 MiB; the run's real
// total is held to Limits.Memory by its cgroup or by sampling, and the
// Go runtime's soft limit (debug.SetMemoryLimit) is 3/4 of it. A
// Limits.Memory below 32 MiB counts as 32 MiB. GOMAXPROCS is at most 2,
// and the process limit allows 16 threads more than Limits.Procs.
type Program struct {
	Name string                                                   // also its Lang: Spec{Lang: Lang(Name)}
	Main func(source, stdin []byte, stdout, stderr io.Writer) int // exit code
}

// programs holds the registered programs, built-in ones included. The
// host and the re-executed child both fill it from [Init], so both know
// the same names.
var programs = struct {
	mu sync.RWMutex // guards m
	m  map[Lang]Program
}{m: map[Lang]Program{JavaScript: {Name: string(JavaScript), Main: jsMain}}}

// register adds ps to the registered programs. A name that is a built-in
// language, is not a plain lower-case word, or has no Main panics: it is
// a programming error in main.
func register(ps []Program) {
	programs.mu.Lock()
	defer programs.mu.Unlock()
	for _, p := range ps {
		l := Lang(p.Name)
		switch {
		case p.Main == nil:
			panic(fmt.Sprintf("sandbox: program %q has no Main", p.Name))
		case !validProgramName(p.Name):
			panic(fmt.Sprintf("sandbox: bad program name %q: want lower-case letters, digits, '-' or '_'", p.Name))
		case l == Python || l == Shell || l == Exec || l == JavaScript:
			panic(fmt.Sprintf("sandbox: program name %q is a built-in language", p.Name))
		}
		programs.m[l] = p
	}
}

// lookupProgram returns the program that runs l.
func lookupProgram(l Lang) (Program, bool) {
	programs.mu.RLock()
	defer programs.mu.RUnlock()
	p, ok := programs.m[l]
	return p, ok
}

// programNames lists the registered programs, sorted.
func programNames() []string {
	programs.mu.RLock()
	defer programs.mu.RUnlock()
	var names []string
	for l := range programs.m {
		names = append(names, string(l))
	}
	sort.Strings(names)
	return names
}

func validProgramName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return !strings.HasPrefix(s, "-")
}
