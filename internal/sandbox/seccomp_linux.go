package sandbox

import (
	"fmt"
	"slices"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp filter is an allow list in classic BPF. It checks the
// architecture (a foreign one, e.g. 32-bit x86 calls on amd64, kills the
// process; x32 calls are refused), then looks the call up:
//
//   - a call on the allow list runs: what python3 (with threads,
//     subprocess, multiprocessing, sockets, sqlite3), sh with coreutils,
//     and the Go runtime use, and their close relatives;
//   - a call on the deny list fails with EPERM: those that reach outside
//     the sandbox or into the kernel's riskier corners;
//   - a few run only with safe arguments: socket for AF_UNIX, clone
//     without namespace flags, personality only to query or keep the
//     default (else EPERM); clone3, whose flags BPF cannot read, fails
//     with ENOSYS so that libc falls back to clone;
//   - anything else, notably a call added by a newer kernel, fails with
//     ENOSYS, as if the kernel were older, so programs fall back.
//
// The lookup is a binary search over ranges of call numbers with the
// same verdict, so a call runs at most 14 instructions whatever the list
// length; and the kernel (since Linux 5.11) caches which calls are
// allowed whatever their arguments, and lets those skip the filter. The
// lists, in seccomp_lists.go and seccomp_$GOARCH.go, were found by
// tracing (strace -f) the sandbox's own tests and the workloads of
// seccomp_test.go, then completed from what glibc and the Go runtime may
// call.
//
// We write the BPF ourselves rather than use a library: a default of
// ENOSYS, a range-based binary search and the argument checks above take
// about a hundred lines, and github.com/elastic/go-seccomp-bpf, the
// well-kept pure-Go choice, accepts only a plain errno-less
// SECCOMP_RET_ERRNO as a default action (which would make every unknown
// call "succeed" with 0) and compiles the list to a linear chain.

// namespaceFlags may not be passed to clone.
const namespaceFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// personality may only keep the default persona or ask for the current one.
const (
	personalityLinux = 0          // PER_LINUX
	personalityQuery = 0xffffffff // read without changing
)

// verdict is what the filter does with one call number.
type verdict uint8

const (
	verdictNOSYS       verdict = iota // fail with ENOSYS: the default
	verdictAllow                      // run
	verdictEPERM                      // fail with EPERM
	verdictClone                      // run unless arg 0 has a namespace flag
	verdictSocket                     // run for AF_UNIX only
	verdictPersonality                // run only to query or set PER_LINUX
)

// syscallVerdicts returns the verdict of every call that is not the
// default, or an error when a call is listed twice.
func syscallVerdicts() (map[uint32]verdict, error) {
	m := map[uint32]verdict{
		unix.SYS_CLONE:       verdictClone,
		unix.SYS_CLONE3:      verdictNOSYS,
		unix.SYS_SOCKET:      verdictSocket,
		unix.SYS_PERSONALITY: verdictPersonality,
	}
	lists := []struct {
		nrs []uint32
		v   verdict
	}{{allowedSyscalls, verdictAllow}, {archAllowed, verdictAllow}, {deniedSyscalls, verdictEPERM}, {archDenied, verdictEPERM}}
	for _, l := range lists {
		for _, nr := range l.nrs {
			if _, dup := m[nr]; dup {
				return nil, fmt.Errorf("seccomp filter: system call %d listed twice", nr)
			}
			m[nr] = l.v
		}
	}
	return m, nil
}

// Offsets into struct seccomp_data (little-endian arguments).
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16
)

const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retNOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

const (
	bpfLd  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJge = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJst = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfJa  = unix.BPF_JMP | unix.BPF_JA
	bpfRet = unix.BPF_RET | unix.BPF_K
)

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// span is a range of call numbers, from first up to the next span's
// first, with one verdict.
type span struct {
	first uint32
	v     verdict
}

// filterProgram returns the BPF program of the filter.
func filterProgram() ([]unix.SockFilter, error) {
	verdicts, err := syscallVerdicts()
	if err != nil {
		return nil, err
	}
	nrs := make([]uint32, 0, len(verdicts))
	for nr := range verdicts {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	// Merge neighbouring numbers with one verdict; gaps get the default.
	spans := []span{{0, verdictNOSYS}}
	add := func(first uint32, v verdict) {
		switch last := &spans[len(spans)-1]; {
		case last.v == v:
		case last.first == first: // number 0 only
			last.v = v
		default:
			spans = append(spans, span{first, v})
		}
	}
	for i, nr := range nrs {
		add(nr, verdicts[nr])
		if i+1 == len(nrs) || nrs[i+1] != nr+1 {
			add(nr+1, verdictNOSYS)
		}
	}
	p := []unix.SockFilter{
		stmt(bpfLd, offArch),
		jump(bpfJeq, auditArch, 1, 0),
		stmt(bpfRet, retKill),
		stmt(bpfLd, offNr),
	}
	if x32Bit != 0 { // x32 calls share the arch; refuse them
		p = append(p, jump(bpfJge, x32Bit, 0, 1), stmt(bpfRet, retEPERM))
	}
	return append(p, searchSpans(spans)...), nil
}

// searchSpans returns code that, with the call number in the accumulator,
// finds its span by binary search and applies the span's verdict.
func searchSpans(spans []span) []unix.SockFilter {
	if len(spans) == 1 {
		return verdictCode(spans[0].v)
	}
	mid := len(spans) / 2
	low, high := searchSpans(spans[:mid]), searchSpans(spans[mid:])
	var p []unix.SockFilter
	if len(low) <= 255 {
		p = append(p, jump(bpfJge, spans[mid].first, uint8(len(low)), 0))
	} else { // too far for a conditional jump: go through an unconditional one
		p = append(p, jump(bpfJge, spans[mid].first, 0, 1), stmt(bpfJa, uint32(len(low))))
	}
	return append(append(p, low...), high...)
}

// verdictCode returns the code of one verdict; it always returns.
func verdictCode(v verdict) []unix.SockFilter {
	switch v {
	case verdictAllow:
		return []unix.SockFilter{stmt(bpfRet, retAllow)}
	case verdictEPERM:
		return []unix.SockFilter{stmt(bpfRet, retEPERM)}
	case verdictClone: // the flags are arg 0 on amd64 and arm64
		return []unix.SockFilter{
			stmt(bpfLd, offArg0),
			jump(bpfJst, namespaceFlags, 0, 1),
			stmt(bpfRet, retEPERM),
			stmt(bpfRet, retAllow),
		}
	case verdictSocket:
		return []unix.SockFilter{
			stmt(bpfLd, offArg0),
			jump(bpfJeq, unix.AF_UNIX, 0, 1),
			stmt(bpfRet, retAllow),
			stmt(bpfRet, retEPERM),
		}
	case verdictPersonality:
		return []unix.SockFilter{
			stmt(bpfLd, offArg0),
			jump(bpfJeq, personalityLinux, 1, 0),
			jump(bpfJeq, personalityQuery, 0, 1),
			stmt(bpfRet, retAllow),
			stmt(bpfRet, retEPERM),
		}
	}
	return []unix.SockFilter{stmt(bpfRet, retNOSYS)}
}

// buildFilter returns the filter ready for installFilter. It allocates,
// so it runs before the address-space limit is set.
func buildFilter() (*unix.SockFprog, error) {
	if auditArch == 0 {
		return nil, fmt.Errorf("seccomp filter: architecture not supported")
	}
	p, err := filterProgram()
	if err != nil {
		return nil, err
	}
	if len(p) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp filter too long")
	}
	return &unix.SockFprog{Len: uint16(len(p)), Filter: &p[0]}, nil
}

// installFilter installs prog on every thread of the process. no_new_privs
// must be set.
func installFilter(prog *unix.SockFprog) error {
	_, _, errno := syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(prog)))
	if errno != 0 {
		return fmt.Errorf("install seccomp filter: %w", errno)
	}
	return nil
}
