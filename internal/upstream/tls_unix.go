//go:build unix

package upstream

import (
	"io"
	"syscall"
)

// readNonBlocking reads what the socket holds, without waiting: Go's
// sockets are non-blocking, and Control skips the poller that Read would
// arm.
func readNonBlocking(raw syscall.RawConn, p []byte) (int, error) {
	var n int
	var rerr error
	if err := raw.Control(func(fd uintptr) { n, rerr = syscall.Read(int(fd), p) }); err != nil {
		return 0, err
	}
	switch {
	case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, rerr
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}
