package testenv

import (
	"os"
	"syscall"
)

// procAttr puts a server in its own process group and ties its life to
// the program that started it, even when that program is killed before
// it can stop the server.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup signals the process group that procAttr made for p (its
// ID is p's), falling back to p alone.
func signalGroup(p *os.Process, sig syscall.Signal) {
	if syscall.Kill(-p.Pid, sig) != nil {
		_ = p.Signal(sig)
	}
}
