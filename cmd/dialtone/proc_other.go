//go:build !linux

package main

import "os/exec"

// stopWithParent is a no-op where the kernel offers no parent-death signal.
func stopWithParent(*exec.Cmd) {}
