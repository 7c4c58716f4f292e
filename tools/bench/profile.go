package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/internal/config"
	"github.com/promgate/promgate/internal/server"
)

// profileURL is where the in-process promgate of -profile listens.
var profileURL string

// serveInProcess runs promgate's handler in this process, built from the
// configuration file as cmd/promgate builds it, so that pprof sees it
// under real load. The process is moved to the servers' CPU.
func (e *env) serveInProcess(o options, file string) error {
	if e.serverCPU >= 0 {
		// All threads, present and future (they inherit the mask).
		out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(e.serverCPU), strconv.Itoa(os.Getpid())).CombinedOutput()
		if err != nil {
			return fmt.Errorf("taskset: %v\n%s", err, out)
		}
		runtime.GOMAXPROCS(1)
	}
	cfg, err := config.LoadFile(file)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := server.Build(cfg, server.BuildOptions{MaxBodyBytes: 1 << 20, MaxIdleConns: max(o.conns, 64)}, logger)
	if err != nil {
		return err
	}
	srv := server.New(server.Options{Logger: logger, Registry: prometheus.NewRegistry()}, st)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	profileURL = "http://" + l.Addr().String()
	go func() { _ = (&http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}).Serve(l) }()
	return nil
}

// runProfile loads promgate with every variant in turn and writes, per
// variant, a CPU profile and the allocation profile so far (compare two
// with go tool pprof -base).
func (e *env) runProfile(o options, cs []*benchCase) error {
	if err := os.MkdirAll(o.profile, 0o755); err != nil {
		return err
	}
	w, err := newWrk(e.dir, e.wrkCPU)
	if err != nil {
		return err
	}
	d := max(o.duration, 20*time.Second)
	for _, c := range cs {
		for _, gz := range []bool{false, true} {
			v := variant{c: c, gzip: gz}
			t := e.targets(c)[2]
			headers := append([]string(nil), t.headers...)
			if gz {
				headers = append(headers, "Accept-Encoding: gzip")
			}
			name := c.name + "-" + map[bool]string{false: "plain", true: "gzip"}[gz]
			f, err := os.Create(filepath.Join(o.profile, "cpu-"+name+".pprof"))
			if err != nil {
				return err
			}
			c0, _ := cpuTime(os.Getpid())
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			conns := o.conns
			if c.slow {
				conns = o.slowConns
			}
			l, err := w.run(t.url, headers, conns, d)
			pprof.StopCPUProfile()
			f.Close()
			if err != nil {
				return err
			}
			c1, _ := cpuTime(os.Getpid())
			if l.errors != "" {
				return fmt.Errorf("%s: errors under load: %s", v.label(), l.errors)
			}
			af, err := os.Create(filepath.Join(o.profile, "allocs-"+name+".pprof"))
			if err != nil {
				return err
			}
			_ = pprof.Lookup("allocs").WriteTo(af, 0)
			af.Close()
			fmt.Printf("%-16s %8.0f req/s  p50 %8s  p99 %8s  %5.0f µs CPU/req (profiling on)\n", v.label(), l.rate(),
				fmtDur(l.p50.Seconds()), fmtDur(l.p99.Seconds()), float64((c1-c0).Microseconds())/float64(max(l.requests, 1)))
		}
	}
	fmt.Printf("profiles in %s: go tool pprof -top %s\n", o.profile, filepath.Join(o.profile, "cpu-small-plain.pprof"))
	return nil
}
