//go:build linux && !amd64 && !arm64

package sandbox

const (
	auditArch = 0 // unsupported: buildFilter fails, and so does every run
	x32Bit    = 0
)

var allowedSyscalls, deniedSyscalls, archAllowed, archDenied []uint32
