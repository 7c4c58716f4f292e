package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/promgate/promgate/internal/testenv"
)

// proc is a server the benchmark started (internal/testenv, shared with the
// end-to-end tests and the soak).
type proc struct {
	*testenv.Process
	url string // http://127.0.0.1:PORT
}

var freeAddr = testenv.FreeAddr

// pinned returns the command line that runs argv on one CPU, when pinning
// is on.
func pinned(cpu int, argv ...string) []string {
	if cpu < 0 {
		return argv
	}
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
}

// start runs argv, listening on addr (taskset execs the server, so the PID
// is the server's), and waits until readyPath answers 200.
func start(dir, name, addr, readyPath string, argv []string) (*proc, error) {
	p, err := testenv.Start(testenv.Options{Name: name, Dir: dir, Addr: addr, ReadyPath: readyPath,
		Args: func(string) []string { return argv }})
	if err != nil {
		return nil, err
	}
	return &proc{Process: p, url: p.URL}, nil
}

func (p *proc) pid() int { return p.PID() }

// stop ends the process; nil (a server not started) is a no-op.
func (p *proc) stop() {
	if p != nil {
		p.Stop()
	}
}

// alive reports an error if the process has exited.
func (p *proc) alive() error { return p.Alive() }

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat; 100
// on every Linux architecture Go supports.
const clockTick = 100

// cpuTime returns the CPU time a process has used, all its live threads
// included, not its children: the sum of the first field of
// /proc/PID/task/*/schedstat, in nanoseconds. /proc/PID/stat counts in
// clock ticks of 10 ms, too coarse for a slow case's few dozen requests in
// a run; it is the fallback where schedstat is missing. (A thread that
// exits takes its time along; the servers measured keep theirs.)
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			if os.IsNotExist(err) {
				continue // the thread exited meanwhile
			}
			return statCPUTime(pid)
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return statCPUTime(pid)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return statCPUTime(pid)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// statCPUTime is the user and system time of /proc/PID/stat, exited
// threads included.
func statCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// cpuTimes sums cpuTime over pids.
func cpuTimes(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		if d, err := cpuTime(pid); err == nil {
			sum += d
		}
	}
	return sum
}

// peakRSS returns VmHWM, the process' peak resident set size, in bytes.
func peakRSS(pid int) (int64, error) { return testenv.StatusBytes(pid, "VmHWM") }

// resetPeakRSS sets VmHWM back to the current RSS (Linux 4.0+), so that
// the peak of one case can be read. It fails quietly where not allowed.
func resetPeakRSS(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// childPIDs lists the children of pid (nginx' workers).
func childPIDs(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
