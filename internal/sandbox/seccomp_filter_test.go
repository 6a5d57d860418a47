//go:build linux && (amd64 || arm64)

package sandbox

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// runFilter runs prog, as the kernel would, on a call nr with arg0 from
// arch, and returns the action.
func runFilter(t *testing.T, prog []unix.SockFilter, arch, nr uint32, arg0 uint64) (action uint32, steps int) {
	t.Helper()
	var data [64]byte // struct seccomp_data
	binary.LittleEndian.PutUint32(data[offNr:], nr)
	binary.LittleEndian.PutUint32(data[offArch:], arch)
	binary.LittleEndian.PutUint64(data[offArg0:], arg0)
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		steps++
		cond := false
		switch in.Code {
		case bpfLd:
			a = binary.LittleEndian.Uint32(data[in.K:])
			continue
		case bpfRet:
			return in.K, steps
		case bpfJa:
			pc += int(in.K)
			continue
		case bpfJeq:
			cond = a == in.K
		case bpfJge:
			cond = a >= in.K
		case bpfJst:
			cond = a&in.K != 0
		default:
			t.Fatalf("pc %d: unexpected instruction %#x", pc, in.Code)
		}
		if cond {
			pc += int(in.Jt)
		} else {
			pc += int(in.Jf)
		}
	}
	t.Fatalf("call %d: the program ran off its end", nr)
	return 0, 0
}

func TestFilterProgram(t *testing.T) {
	prog, err := filterProgram()
	if err != nil {
		t.Fatal(err)
	}
	if last := prog[len(prog)-1]; last.Code != bpfRet {
		t.Errorf("the program does not end with a return")
	}
	verdicts, err := syscallVerdicts()
	if err != nil {
		t.Fatal(err)
	}
	want := map[verdict]uint32{verdictNOSYS: retNOSYS, verdictAllow: retAllow, verdictEPERM: retEPERM}
	allowed, maxSteps := 0, 0
	for nr := uint32(0); nr < 1024; nr++ {
		v := verdicts[nr]
		got, steps := runFilter(t, prog, auditArch, nr, 0)
		maxSteps = max(maxSteps, steps)
		if w, plain := want[v]; plain && got != w {
			t.Errorf("call %d: action %#x, want %#x", nr, got, w)
		}
		if v == verdictAllow {
			allowed++
		}
	}
	t.Logf("%d instructions, %d calls allowed, %d denied, at most %d instructions run per call",
		len(prog), allowed, len(deniedSyscalls)+len(archDenied), maxSteps)

	const foreign = unix.AUDIT_ARCH_I386
	largest := uint32(retNOSYS) // past the table
	if x32Bit != 0 {
		largest = retEPERM // an x32 number
	}
	type filterCase struct {
		name string
		arch uint32
		nr   uint32
		arg0 uint64
		want uint32
	}
	tests := []filterCase{
		{"read", auditArch, unix.SYS_READ, 0, retAllow},
		{"exit_group", auditArch, unix.SYS_EXIT_GROUP, 0, retAllow},
		{"ptrace", auditArch, unix.SYS_PTRACE, 0, retEPERM},
		{"memfd_create", auditArch, unix.SYS_MEMFD_CREATE, 0, retEPERM},
		{"listmount", auditArch, unix.SYS_LISTMOUNT, 0, retNOSYS},
		{"unused number", auditArch, 5000, 0, retNOSYS},
		{"largest number", auditArch, ^uint32(0), 0, largest},
		{"clone3", auditArch, unix.SYS_CLONE3, 0, retNOSYS},
		{"clone a thread", auditArch, unix.SYS_CLONE, unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES |
			unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS, retAllow},
		{"clone a process", auditArch, unix.SYS_CLONE, uint64(unix.SIGCHLD), retAllow},
		{"clone a user namespace", auditArch, unix.SYS_CLONE, unix.CLONE_NEWUSER | uint64(unix.SIGCHLD), retEPERM},
		{"clone a time namespace", auditArch, unix.SYS_CLONE, unix.CLONE_NEWTIME, retEPERM},
		{"socket unix", auditArch, unix.SYS_SOCKET, unix.AF_UNIX, retAllow},
		{"socket inet", auditArch, unix.SYS_SOCKET, unix.AF_INET, retEPERM},
		{"socket inet6", auditArch, unix.SYS_SOCKET, unix.AF_INET6, retEPERM},
		{"personality query", auditArch, unix.SYS_PERSONALITY, personalityQuery, retAllow},
		{"personality default", auditArch, unix.SYS_PERSONALITY, personalityLinux, retAllow},
		{"personality addr_no_randomize", auditArch, unix.SYS_PERSONALITY, 0x0040000, retEPERM},
		{"foreign arch", foreign, unix.SYS_READ, 0, retKill},
	}
	if x32Bit != 0 {
		tests = append(tests, filterCase{"x32 read", auditArch, x32Bit | unix.SYS_READ, 0, retEPERM})
	}
	for _, tt := range tests {
		if got, _ := runFilter(t, prog, tt.arch, tt.nr, tt.arg0); got != tt.want {
			t.Errorf("%s: action %#x, want %#x", tt.name, got, tt.want)
		}
	}
}
