package sandbox

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp filter is a deny list in classic BPF: it checks the
// architecture (a foreign one, e.g. 32-bit x86 calls on amd64, kills the
// process), then refuses with EPERM the calls that reach outside the
// sandbox or into the kernel's riskier corners. socket is allowed for
// AF_UNIX only; clone may not create namespaces; clone3, whose flags BPF
// cannot read, answers ENOSYS so that libc falls back to clone.

// deniedSyscalls fail with EPERM on every architecture.
var deniedSyscalls = []uint32{
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_KCMP,
	unix.SYS_PIDFD_GETFD,
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE, unix.SYS_MOUNT_SETATTR,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_REBOOT,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT, unix.SYS_QUOTACTL,
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX,
	unix.SYS_SYSLOG, unix.SYS_VHANGUP, unix.SYS_PERSONALITY,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	unix.SYS_FANOTIFY_INIT, unix.SYS_LOOKUP_DCOOKIE, unix.SYS_NFSSERVCTL,
}

// namespaceFlags may not be passed to clone.
const namespaceFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// Offsets into struct seccomp_data (little-endian arguments).
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16
)

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retNOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// filterProgram returns the BPF program of the filter.
func filterProgram() []unix.SockFilter {
	const (
		ld  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jst = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret = unix.BPF_RET | unix.BPF_K
	)
	denied := append(append([]uint32{}, deniedSyscalls...), archDenied...)
	p := []unix.SockFilter{
		stmt(ld, offArch),
		jump(jeq, auditArch, 1, 0),
		stmt(ret, retKill),
		stmt(ld, offNr),
	}
	if x32Bit != 0 { // x32 calls share the arch; refuse them
		p = append(p, jump(jge, x32Bit, 0, 1), stmt(ret, retEPERM))
	}
	for _, nr := range denied {
		p = append(p, jump(jeq, nr, 0, 1), stmt(ret, retEPERM))
	}
	p = append(p,
		jump(jeq, unix.SYS_CLONE3, 0, 1), stmt(ret, retNOSYS),
		// clone: refuse namespace flags (the flags are arg 0 on amd64 and arm64).
		jump(jeq, unix.SYS_CLONE, 0, 4),
		stmt(ld, offArg0),
		jump(jst, namespaceFlags, 0, 1),
		stmt(ret, retEPERM),
		stmt(ret, retAllow),
		// socket: AF_UNIX only.
		jump(jeq, unix.SYS_SOCKET, 0, 4),
		stmt(ld, offArg0),
		jump(jeq, unix.AF_UNIX, 1, 0),
		stmt(ret, retEPERM),
		stmt(ret, retAllow),
		stmt(ret, retAllow),
	)
	return p
}

// buildFilter returns the filter ready for installFilter. It allocates,
// so it runs before the address-space limit is set.
func buildFilter() (*unix.SockFprog, error) {
	if auditArch == 0 {
		return nil, fmt.Errorf("seccomp filter: architecture not supported")
	}
	p := filterProgram()
	if len(p) > 4096 {
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
