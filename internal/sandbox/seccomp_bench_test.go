//go:build linux && (amd64 || arm64)

package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// seccompBenchEnv makes this test binary install a filter ("deny", the
// former deny list, or "allow", the allow list; "none" for neither) and
// then run what seccompBenchRunEnv says: "python" execs python3 -c
// 'print(1)' (its path in seccompBenchPythonEnv), "calls" times system
// calls and prints nanoseconds per call.
const (
	seccompBenchEnv       = "HIVE_SECCOMP_BENCH"
	seccompBenchRunEnv    = "HIVE_SECCOMP_BENCH_RUN"
	seccompBenchPythonEnv = "HIVE_SECCOMP_BENCH_PYTHON"
)

func init() {
	filter := os.Getenv(seccompBenchEnv)
	if filter == "" {
		return
	}
	if err := seccompBenchChild(filter, os.Getenv(seccompBenchRunEnv)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func seccompBenchChild(filter, what string) error {
	runtime.LockOSThread()
	var prog []unix.SockFilter
	switch filter {
	case "deny":
		prog = denyListProgram()
	case "allow":
		var err error
		if prog, err = filterProgram(); err != nil {
			return err
		}
	}
	if prog != nil {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
		if err := installFilter(&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
			return err
		}
	}
	switch what {
	case "python":
		py := os.Getenv(seccompBenchPythonEnv)
		return syscall.Exec(py, []string{py, "-E", "-s", "-c", "print(1)"}, nil)
	case "calls":
		// getppid: allowed by both whatever its arguments, so the kernel
		// caches the verdict. socket(AF_INET): both filters read its
		// arguments on each call and refuse it, so this is the filter's
		// own cost (at the end of the deny list's chain).
		for _, c := range []struct {
			name string
			nr   uintptr
			arg  uintptr
		}{{"getppid", unix.SYS_GETPPID, 0}, {"socket_inet", unix.SYS_SOCKET, unix.AF_INET}} {
			if filter == "none" && c.nr == unix.SYS_SOCKET {
				continue // it would make sockets
			}
			const n = 200000
			start := time.Now()
			for range n {
				if fd, _, errno := syscall.RawSyscall(c.nr, c.arg, unix.SOCK_DGRAM, 0); errno == 0 && c.nr == unix.SYS_SOCKET {
					syscall.Close(int(fd)) // no filter
				}
			}
			fmt.Printf("%s %d\n", c.name, time.Since(start).Nanoseconds()/n)
		}
		return nil
	}
	return fmt.Errorf("unknown run %q", what)
}

// denyListProgram is the filter this package used before the allow list,
// kept for the benchmarks: a linear chain of denied numbers, then the
// clone3, clone and socket checks, and allow.
func denyListProgram() []unix.SockFilter {
	denied := []uint32{
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
	denied = append(denied, archDenied...)
	p := []unix.SockFilter{
		stmt(bpfLd, offArch),
		jump(bpfJeq, auditArch, 1, 0),
		stmt(bpfRet, retKill),
		stmt(bpfLd, offNr),
	}
	if x32Bit != 0 {
		p = append(p, jump(bpfJge, x32Bit, 0, 1), stmt(bpfRet, retEPERM))
	}
	for _, nr := range denied {
		p = append(p, jump(bpfJeq, nr, 0, 1), stmt(bpfRet, retEPERM))
	}
	return append(p,
		jump(bpfJeq, unix.SYS_CLONE3, 0, 1), stmt(bpfRet, retNOSYS),
		jump(bpfJeq, unix.SYS_CLONE, 0, 4),
		stmt(bpfLd, offArg0),
		jump(bpfJst, namespaceFlags, 0, 1),
		stmt(bpfRet, retEPERM),
		stmt(bpfRet, retAllow),
		jump(bpfJeq, unix.SYS_SOCKET, 0, 4),
		stmt(bpfLd, offArg0),
		jump(bpfJeq, unix.AF_UNIX, 1, 0),
		stmt(bpfRet, retEPERM),
		stmt(bpfRet, retAllow),
		stmt(bpfRet, retAllow),
	)
}

func seccompBenchCommand(b *testing.B, filter, what, python string) *exec.Cmd {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = []string{seccompBenchEnv + "=" + filter, seccompBenchRunEnv + "=" + what, seccompBenchPythonEnv + "=" + python}
	return cmd
}

// BenchmarkSeccompPython starts python3 -c 'print(1)' behind no filter,
// the former deny list and the allow list (a process that installs the
// filter and execs python, without the sandbox's namespaces).
func BenchmarkSeccompPython(b *testing.B) {
	py, err := newSandbox(b).python()
	if err != nil {
		b.Fatal(err)
	}
	for _, filter := range []string{"none", "deny", "allow"} {
		b.Run(filter, func(b *testing.B) {
			for b.Loop() {
				out, err := seccompBenchCommand(b, filter, "python", py.Exe).Output()
				if err != nil || string(out) != "1\n" {
					b.Fatalf("%q %v", out, err)
				}
			}
		})
	}
}

// BenchmarkSeccompCalls reports the cost of a system call behind each
// filter, in ns/call: getppid (a verdict the kernel caches) and
// socket(AF_INET) (a verdict the filter computes on each call).
func BenchmarkSeccompCalls(b *testing.B) {
	for _, filter := range []string{"none", "deny", "allow"} {
		b.Run(filter, func(b *testing.B) {
			sums := map[string]int64{}
			for b.Loop() {
				out, err := seccompBenchCommand(b, filter, "calls", "").Output()
				if err != nil {
					b.Fatalf("%q %v", out, err)
				}
				for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					name, ns, _ := strings.Cut(line, " ")
					n, _ := strconv.ParseInt(ns, 10, 64)
					sums[name] += n
				}
			}
			for name, sum := range sums {
				b.ReportMetric(float64(sum)/float64(b.N), name+"-ns/call")
			}
		})
	}
}
