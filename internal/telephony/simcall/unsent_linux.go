package simcall

import (
	"net"

	"golang.org/x/sys/unix"
)

// unsentBytes returns how many bytes written to conn the kernel has not
// sent yet (SIOCOUTQNSD), or nil for a connection that is not TCP.
func unsentBytes(conn net.Conn) func() (int, error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() (int, error) {
		var n int
		var ierr error
		if err := rc.Control(func(fd uintptr) {
			n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQNSD)
		}); err != nil {
			return 0, err
		}
		return n, ierr
	}
}
