package e2e

import "syscall"

// childProcAttr makes servers started by the tests die with the test binary,
// even when it is killed before its cleanups run.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
