//go:build unix

package upstream

import (
	"crypto/tls"
	"net"
	"syscall"
)

// alive reports whether an idle connection is still open: nothing to read
// (an idle connection has nothing to say) and no end of stream. It peeks
// without blocking, on the descriptor kept at dial time (SyscallConn
// allocates, and Control skips the poller that Read would arm).
func alive(c *conn) bool {
	if c.tls != nil {
		return aliveTLS(c)
	}
	if c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return true
	}
	open := false
	err := c.raw.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
	})
	return err == nil && open
}

// rawConn is the descriptor under nc (a TLS connection's too), for alive.
func rawConn(nc net.Conn) syscall.RawConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

var _ net.Conn = (*tls.Conn)(nil)
