package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Bounds of the verdict.
const (
	// growth is the largest relative growth of RSS, goroutines and open
	// files from the start to the middle and the end.
	growth = 0.10
	// slack is added to the bound of goroutines and open files: at rest,
	// promgate still holds a keep-alive connection (a file and a
	// goroutine or two) per client connection, whose number depends on
	// how the last requests interleaved. Idle upstream connections are
	// not counted: promgate reports them, and their number follows the
	// last burst of load.
	slack = 10
	// maxErrorRate bounds the failed requests outside Prometheus'
	// restarts.
	maxErrorRate = 0.005
	// heapSlack absorbs what a live heap of a few MiB holds at one moment
	// and not the next (buffers of requests just answered, caches).
	heapSlack = 1 << 20
	// rssSlack absorbs the Go runtime's lazy return of freed memory: RSS
	// follows the highest heap of the run's bursts, not what is live.
	// The live heap (after two collections) is the leak detector.
	rssSlack = 2 << 20
)

type sample struct {
	name            string
	rss, heap       int64 // heap: live bytes after two collections
	goroutines, fds int
	idleUpstream    int // of fds
	goroutineSource string
}

type report struct {
	duration time.Duration
	st       *stats
	samples  []sample
}

func (r *report) total() (all, out int) {
	for _, n := range r.st.statusOut {
		out += n
	}
	all = out
	for _, n := range r.st.statusIn {
		all += n
	}
	return all + r.st.aborts, out
}

func (r *report) print(w io.Writer) {
	st := r.st
	st.mu.Lock()
	defer st.mu.Unlock()
	all, out := r.total()
	fmt.Fprintf(w, "\nsoak report (%s, %d tenants x %d connections)\n", r.duration, numTenants, connsPerTenant)
	fmt.Fprintf(w, "requests               %d (%d aborted halfway, %d from the slow client)\n", all, st.aborts, st.slow)
	for _, k := range slices.Sorted(maps.Keys(st.requests)) {
		fmt.Fprintf(w, "  %-22s %d\n", k, st.requests[k])
	}
	fmt.Fprintf(w, "statuses outside Prometheus restarts: %s\n", statuses(st.statusOut))
	fmt.Fprintf(w, "statuses during Prometheus restarts:  %s\n", statuses(st.statusIn))
	fmt.Fprintf(w, "failures outside restarts %d of %d (%.3f%%; bound %.1f%%), during restarts %d (expected)\n",
		st.failuresOut, out+st.aborts, 100*rate(st.failuresOut, out+st.aborts), 100*maxErrorRate, st.failuresIn)
	for _, s := range st.failureSamples {
		fmt.Fprintf(w, "  e.g. %s\n", s)
	}
	fmt.Fprintf(w, "cross-tenant answers   %d\n", st.cross)
	for _, s := range st.crossSamples {
		fmt.Fprintf(w, "  e.g. %s\n", s)
	}
	fmt.Fprintf(w, "Prometheus restarts    %d\n", st.restarts)
	fmt.Fprintf(w, "reloads                %d valid accepted, %d broken refused, %d wrong\n", st.reloadsValid, st.reloadsBrokenRefused, len(st.reloadWrong))
	for _, s := range st.reloadWrong {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintf(w, "promgate at rest       %-8s %-8s %-9s %-11s %s\n", "", "RSS MiB", "live MiB", "goroutines", "open files (idle upstream)")
	for _, s := range r.samples {
		fmt.Fprintf(w, "                       %-8s %-8.1f %-9.1f %-11d %d (%d)\n", s.name, float64(s.rss)/(1<<20), float64(s.heap)/(1<<20), s.goroutines, s.fds, s.idleUpstream)
	}
}

func statuses(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func rate(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// verdict lists the reasons the soak fails.
func (r *report) verdict() []error {
	st := r.st
	st.mu.Lock()
	defer st.mu.Unlock()
	var errs []error
	if st.cross > 0 {
		errs = append(errs, fmt.Errorf("%d cross-tenant answers", st.cross))
	}
	if len(st.reloadWrong) > 0 {
		errs = append(errs, fmt.Errorf("%d reloads or restarts went wrong", len(st.reloadWrong)))
	}
	_, out := r.total()
	if out == 0 {
		errs = append(errs, fmt.Errorf("no request was answered"))
	} else if rt := rate(st.failuresOut, out+st.aborts); rt > maxErrorRate {
		errs = append(errs, fmt.Errorf("%.3f%% of the requests outside Prometheus' restarts failed (bound %.1f%%)", 100*rt, 100*maxErrorRate))
	}
	if len(r.samples) < 2 {
		return append(errs, fmt.Errorf("only %d resource samples (the run is shorter than two restart intervals)", len(r.samples)))
	}
	first := r.samples[0]
	for _, s := range r.samples[1:] {
		if float64(s.rss) > float64(first.rss)*(1+growth)+rssSlack {
			errs = append(errs, fmt.Errorf("RSS grew from %d to %d bytes (%s)", first.rss, s.rss, s.name))
		}
		if float64(s.goroutines) > float64(first.goroutines)*(1+growth)+slack {
			errs = append(errs, fmt.Errorf("goroutines grew from %d to %d (%s)", first.goroutines, s.goroutines, s.name))
		}
		if float64(s.heap) > float64(first.heap)*(1+growth)+heapSlack {
			errs = append(errs, fmt.Errorf("live heap grew from %d to %d bytes (%s)", first.heap, s.heap, s.name))
		}
		if own, firstOwn := s.fds-s.idleUpstream, first.fds-first.idleUpstream; float64(own) > float64(firstOwn)*(1+growth)+slack {
			errs = append(errs, fmt.Errorf("open files other than idle upstream connections grew from %d to %d (%s)", firstOwn, own, s.name))
		}
	}
	return errs
}
