package main

import (
	"os/exec"
	"syscall"
)

// stopWithParent makes the kernel send SIGTERM to a dev node if the dev
// process dies without stopping it (SIGKILL), so no node outlives it.
func stopWithParent(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
