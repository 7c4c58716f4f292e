//go:build !linux

package testenv

import (
	"os"
	"syscall"
)

// procAttr: only Linux can tie a child's life to its parent; the server
// stays in the caller's process group.
func procAttr() *syscall.SysProcAttr { return nil }

// signalGroup signals p alone.
func signalGroup(p *os.Process, sig syscall.Signal) { _ = p.Signal(sig) }
