package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk print its summary in one machine-readable line;
// latencies are in microseconds.
const wrkScript = `
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d %d\n",
    summary.duration, summary.requests, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// load is one wrk run's result.
type load struct {
	duration time.Duration
	requests int64
	bytes    int64
	errors   string // empty when every answer was a 2xx
	p50, p99 time.Duration
}

func (l load) rate() float64 {
	if l.duration <= 0 {
		return 0
	}
	return float64(l.requests) / l.duration.Seconds()
}

type wrkRunner struct {
	bin    string
	script string
	cpu    int // -1: not pinned
}

func newWrk(dir string, cpu int) (*wrkRunner, error) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		return nil, fmt.Errorf("wrk not found (make deps installs it): %w", err)
	}
	script := filepath.Join(dir, "report.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return nil, err
	}
	return &wrkRunner{bin: bin, script: script, cpu: cpu}, nil
}

// run loads url for d over conns connections with headers ("Name: value").
func (w *wrkRunner) run(url string, headers []string, conns int, d time.Duration) (load, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	argv := []string{w.bin, "-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(secs) + "s",
		"--timeout", "10s", "-s", w.script}
	for _, h := range headers {
		argv = append(argv, "-H", h)
	}
	argv = pinned(w.cpu, append(argv, url)...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return load{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, "RESULT ")
		if !ok {
			continue
		}
		var v [10]int64
		fs := strings.Fields(rest)
		if len(fs) != len(v) {
			break
		}
		for i, f := range fs {
			if v[i], err = strconv.ParseInt(f, 10, 64); err != nil {
				return load{}, fmt.Errorf("wrk: unreadable result %q", line)
			}
		}
		l := load{
			duration: time.Duration(v[0]) * time.Microsecond,
			requests: v[1], bytes: v[2],
			p50: time.Duration(v[8]) * time.Microsecond, p99: time.Duration(v[9]) * time.Microsecond,
		}
		var errs []string
		for i, name := range []string{"connect", "read", "write", "non-2xx", "timeout"} {
			if n := v[3+i]; n > 0 {
				errs = append(errs, fmt.Sprintf("%d %s", n, name))
			}
		}
		l.errors = strings.Join(errs, ", ")
		return l, nil
	}
	return load{}, fmt.Errorf("wrk printed no result:\n%s", out)
}
