//go:build !unix

package upstream

import (
	"net"
	"syscall"
)

// alive cannot peek at a connection here; a closed one fails the request.
func alive(c *conn) bool {
	if c.tls != nil {
		return aliveTLS(c)
	}
	return c.br.Buffered() == 0
}

func rawConn(net.Conn) syscall.RawConn { return nil }
