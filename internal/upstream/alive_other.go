//go:build !unix

package upstream

// alive cannot peek at a connection here; a closed one fails the request.
func alive(c *conn) bool { return c.br.Buffered() == 0 }
