//go:build !unix

package upstream

import "syscall"

// readNonBlocking cannot read without waiting here: an idle connection is
// taken to have nothing to read.
func readNonBlocking(syscall.RawConn, []byte) (int, error) { return 0, errWouldBlock }
