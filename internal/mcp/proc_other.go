//go:build !unix

package mcp

import "os/exec"

func ownGroup(cmd *exec.Cmd) {}

// killGroup kills the command's process; what it started may outlive it.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
