//go:build linux

package sandbox

import "golang.org/x/sys/unix"

const (
	auditArch = unix.AUDIT_ARCH_AARCH64
	x32Bit    = 0
)

// archAllowed are allowed calls that exist only on this architecture:
// none, the generic table has them all.
var archAllowed = []uint32{}

// archDenied are denied calls that exist only on this architecture.
var archDenied = []uint32{}
