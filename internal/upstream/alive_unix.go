//go:build unix

package upstream

import (
	"crypto/tls"
	"net"
	"syscall"
)

// alive reports whether an idle connection is still open: nothing to read
// (an idle connection has nothing to say) and no end of stream. It peeks
// without blocking.
func alive(c *conn) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	nc := c.nc
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true // never wait
	})
	return err == nil && open
}

var _ net.Conn = (*tls.Conn)(nil)
