// Command soak runs promgate under load and faults for a while and checks
// that no tenant ever gets another tenant's data and that promgate's
// resources stay flat.
//
// It starts a real Prometheus and Alertmanager holding data and alerts of
// eight tenants (team="t0".."t7"), promgate in front with one policy per
// tenant, and 8 connections per tenant querying through promgate (instant
// queries, series, label values, Prometheus' and Alertmanager's alerts).
// Meanwhile Prometheus is restarted every 30 s on the same data directory,
// promgate's configuration is reloaded every 10 s (valid and broken in
// turn), clients abort answers halfway, and one client sends its requests
// byte by byte. It exits non-zero on any cross-tenant answer, on resource
// growth, on a reload that went the wrong way, or when too many requests
// fail outside Prometheus' restarts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/promgate/promgate/internal/testenv"
)

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 8*time.Minute, "how long the load runs, in whole restart intervals (SOAK_DURATION overrides)")
	flag.StringVar(&o.promgate, "promgate", "", "promgate binary to soak (default: go build ./cmd/promgate)")
	flag.DurationVar(&o.restartEvery, "prometheus.restart-interval", 30*time.Second, "how often Prometheus is restarted")
	flag.DurationVar(&o.reloadEvery, "reload-interval", 10*time.Second, "how often promgate's configuration is reloaded")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (logs, configuration)")
	flag.Parse()
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak: SOAK_DURATION:", err)
			os.Exit(2)
		}
		o.duration = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "soak: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("soak: PASS")
}

type options struct {
	duration     time.Duration
	promgate     string
	restartEvery time.Duration
	reloadEvery  time.Duration
	keep         bool
}

func run(ctx context.Context, o options) error {
	for _, tool := range []string{"prometheus", "promtool", "prometheus-alertmanager"} {
		if _, err := testenv.Tool(tool); err != nil {
			return fmt.Errorf("%s not found: run make deps (scripts/install-deps.sh)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "promgate-soak-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Println("working directory kept:", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if o.promgate == "" {
		o.promgate = filepath.Join(dir, "promgate")
		build := exec.Command("go", "build", "-o", o.promgate, "./cmd/promgate")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/promgate (run from the module root): %v\n%s", err, out)
		}
	}
	e := &env{dir: dir}
	defer e.stop()
	begin := time.Now()
	if err := e.setup(o.promgate); err != nil {
		return err
	}
	fmt.Printf("soak: servers up in %s (promgate pid %d); %d tenants x %d connections for %s\n",
		time.Since(begin).Round(100*time.Millisecond), e.gate.PID(), numTenants, connsPerTenant, o.duration)
	rep, err := e.soak(ctx, o)
	if err != nil {
		return err
	}
	rep.print(os.Stdout)
	if errs := rep.verdict(); len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

func tenantName(i int) string { return "t" + strconv.Itoa(i) }
