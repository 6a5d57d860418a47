//go:build unix

package workspace

import "syscall"

// openFlags are added to every open of a file in DIR: a FIFO opens
// without waiting for a writer (and is then refused as not regular), and
// a symbolic link put in place of a checked file is not followed.
const openFlags = syscall.O_NONBLOCK | syscall.O_NOFOLLOW
