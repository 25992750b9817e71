//go:build !linux

package floataddr

import "errors"

var errUnsupported = errors.New("floataddr: only on Linux")

// Add is unsupported off Linux.
func (a Addr) Add() error { return errUnsupported }

// Del is unsupported off Linux.
func (a Addr) Del() error { return errUnsupported }
