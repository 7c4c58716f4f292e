package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summary of one target on one variant over the repetitions.
type summary struct {
	rate, p50, p99 float64 // medians; latencies in seconds
	ratio          float64 // median of the per-repetition ratios to direct
	lo, hi         float64 // lowest and highest of those ratios
	gateCPU        float64 // µs per request, over all repetitions
	promCPU        float64
	rss            int64 // max
	rssOK          bool
}

func summarize(ss, direct []sample) summary {
	var out summary
	var rates, p50s, p99s, ratios []float64
	var req int64
	var gcpu, pcpu time.Duration
	for i, s := range ss {
		rates = append(rates, s.rate())
		p50s = append(p50s, s.p50.Seconds())
		p99s = append(p99s, s.p99.Seconds())
		if i < len(direct) && direct[i].rate() > 0 {
			ratios = append(ratios, s.rate()/direct[i].rate())
		}
		req += s.requests
		gcpu += s.gateCPU
		pcpu += s.promCPU
		out.rss = max(out.rss, s.rss)
		out.rssOK = out.rssOK || s.rssOK
	}
	out.rate, out.p50, out.p99, out.ratio = median(rates), median(p50s), median(p99s), median(ratios)
	if len(ratios) > 0 {
		out.lo, out.hi = slices.Min(ratios), slices.Max(ratios)
	}
	if req > 0 {
		out.gateCPU = float64(gcpu.Microseconds()) / float64(req)
		out.promCPU = float64(pcpu.Microseconds()) / float64(req)
	}
	return out
}

// fmtShare is the proxy's CPU per request as a share of the upstream's.
func fmtShare(s summary) string {
	if s.promCPU <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f%%", 100*s.gateCPU/s.promCPU)
}

func fmtDur(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

func fmtBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	prom, _ := exec.Command("prometheus", "--version").CombinedOutput()
	pv, _, _ := strings.Cut(string(prom), "\n")
	pv = strings.TrimPrefix(pv, "prometheus, version ")
	if i := strings.Index(pv, " "); i > 0 {
		pv = pv[:i]
	}
	ngx, _ := exec.Command("nginx", "-v").CombinedOutput()
	return fmt.Sprintf("nproc %d, %s, Linux %s, %s; Prometheus %s, %s",
		runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), runtime.Version(), pv,
		strings.TrimPrefix(strings.TrimSpace(string(ngx)), "nginx version: "))
}

func printReport(out io.Writer, o options, e *env, cs []*benchCase, sizes map[string][2]int, res results, took time.Duration) {
	fmt.Fprintf(out, "\nmachine: %s\n", machine())
	pin := "not pinned"
	if e.serverCPU >= 0 {
		pin = fmt.Sprintf("servers on CPU %d, wrk on CPU %d", e.serverCPU, e.wrkCPU)
	}
	fmt.Fprintf(out, "run: %d repetitions × %s per target and case with wrk -t1 -c%d (slow cases: %s, -c%d), %s, targets interleaved, order rotated; %s in all\n",
		o.reps, o.duration, o.conns, o.slowDur, o.slowConns, pin, took.Round(time.Second))
	fmt.Fprintf(out, "promgate: tenant %s (policy {tenant=%q}) by trusted header; direct and nginx get the query as promgate rewrites it\n", tenant, tenant)
	fmt.Fprintln(out)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tenc\tanswer\ttarget\treq/s\tp50\tp99\t×direct\t(range)\tCPU model\tproxy CPU µs/req\tupstream CPU µs/req\tproxy/upstream CPU\tproxy peak RSS\t")
	type key struct{ v, t string }
	sum := map[key]summary{}
	var goals []string
	for _, c := range cs {
		for _, gz := range []bool{false, true} {
			v := variant{c: c, gzip: gz}
			byT := res[v.label()]
			enc, size := "plain", sizes[c.name][0]
			if gz {
				enc, size = "gzip", sizes[c.name][1]
			}
			names := []string{"direct", "nginx", "promgate"}
			if !gz && c == cs[0] {
				names = append(names, "promgate basic")
			}
			if !gz && c == limitsCase(cs) {
				names = append(names, "promgate limits")
			}
			direct := summarize(byT["direct"], byT["direct"])
			for i, name := range names {
				s := summarize(byT[name], byT["direct"])
				sum[key{v.label(), name}] = s
				// The ratio the CPU times predict when the servers' CPU
				// is the bottleneck: the upstream's work for direct
				// against the upstream's and the proxy's for the target
				// (promgate asks less of the upstream on filtered
				// endpoints). Less noisy than req/s.
				model := 1.0
				if name != "direct" && s.promCPU+s.gateCPU > 0 {
					model = direct.promCPU / (s.promCPU + s.gateCPU)
				}
				cname, encName, ans := "", "", ""
				if i == 0 {
					cname, encName, ans = c.name, enc, fmtBytes(size)
				}
				proxyCPU, share, rss := "", "", ""
				if name != "direct" {
					proxyCPU = fmt.Sprintf("%.0f", s.gateCPU)
					share = fmtShare(s)
					if s.rssOK {
						rss = fmtBytes(int(s.rss))
					}
				}
				spread := ""
				if name != "direct" {
					spread = fmt.Sprintf("%.2f–%.2f", s.lo, s.hi)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%.2f\t%s\t%.3f\t%s\t%.0f\t%s\t%s\t\n",
					cname, encName, ans, name, s.rate, fmtDur(s.p50), fmtDur(s.p99), s.ratio, spread, model, proxyCPU, s.promCPU, share, rss)
			}
			g, n := sum[key{v.label(), "promgate"}], sum[key{v.label(), "nginx"}]
			// A miss whose ranges overlap may be the machine's noise.
			noise := func(ok bool) string {
				if ok {
					return " (within the run's noise: the per-repetition ranges overlap)"
				}
				return ""
			}
			// What each proxy costs, against the upstream's work for the
			// same requests: the part of a miss that is the proxy's own,
			// free of the upstream's run-to-run noise.
			costs := fmt.Sprintf("; proxy/upstream CPU: promgate %s, nginx %s", fmtShare(g), fmtShare(n))
			if g.ratio < n.ratio {
				goals = append(goals, fmt.Sprintf("%s: promgate %.2f < nginx %.2f%s%s", v.label(), g.ratio, n.ratio, noise(g.hi >= n.lo), costs))
			}
			if c.queryBound && g.ratio < 0.95 {
				goals = append(goals, fmt.Sprintf("%s: promgate %.2f < 0.95 where the query dominates%s%s", v.label(), g.ratio, noise(g.hi >= 0.95), costs))
			}
			if c.small && g.gateCPU >= 100 {
				goals = append(goals, fmt.Sprintf("%s: promgate CPU %.0f µs per request ≥ 100", v.label(), g.gateCPU))
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(out)
	fmt.Fprintf(out, "case descriptions:\n")
	for _, c := range cs {
		fmt.Fprintf(out, "  %-10s %s\n", c.name, c.desc)
	}

	// Basic auth against the trusted header, same runs.
	first := variant{c: cs[0]}.label()
	var br []float64
	hs, bs := res[first]["promgate"], res[first]["promgate basic"]
	for i := range min(len(hs), len(bs)) {
		if hs[i].rate() > 0 {
			br = append(br, bs[i].rate()/hs[i].rate())
		}
	}
	basic := median(br)
	fmt.Fprintf(out, "\nbasic auth / trusted header (%s): %.2f\n", first, basic)
	if basic < 0.9 {
		goals = append(goals, fmt.Sprintf("%s: basic auth at %.2f of the trusted header (< 0.90)", first, basic))
	}

	// Limits on against off, same runs.
	if lc := limitsCase(cs); lc != nil {
		label := variant{c: lc}.label()
		var lr []float64
		offs, ons := res[label]["promgate"], res[label]["promgate limits"]
		for i := range min(len(offs), len(ons)) {
			if offs[i].rate() > 0 {
				lr = append(lr, ons[i].rate()/offs[i].rate())
			}
		}
		ratio := median(lr)
		off, on := summarize(offs, res[label]["direct"]), summarize(ons, res[label]["direct"])
		fmt.Fprintf(out, "limits on / off (%s): %.3f of the requests per second, promgate CPU %.0f against %.0f µs per request\n", label, ratio, on.gateCPU, off.gateCPU)
		if ratio < 0.97 {
			goals = append(goals, fmt.Sprintf("%s: limits on at %.3f of off (overhead over 3 %%)", label, ratio))
		}
	}

	// Memory: promgate's peak RSS per streamed case against the answer size.
	var ref *benchCase
	for _, c := range cs {
		if c.streamed && (ref == nil || sizes[c.name][0] < sizes[ref.name][0]) {
			ref = c
		}
	}
	if ref != nil {
		base := sum[key{variant{c: ref}.label(), "promgate"}].rss
		fmt.Fprintf(out, "promgate peak RSS, streamed answers (plain), against %s (%s):\n", ref.name, fmtBytes(sizes[ref.name][0]))
		for _, c := range cs {
			if !c.streamed {
				continue
			}
			s := sum[key{variant{c: c}.label(), "promgate"}]
			grow := s.rss - base
			fmt.Fprintf(out, "  %-8s answer %8s  peak RSS %9s  %+.1f MiB\n", c.name, fmtBytes(sizes[c.name][0]), fmtBytes(int(s.rss)), float64(grow)/(1<<20))
			// Holding whole answers would cost about one answer per
			// connection; allow a quarter of that as noise.
			conns := o.conns
			if c.slow {
				conns = o.slowConns
			}
			if c != ref && s.rssOK && grow > int64(conns*sizes[c.name][0]/4) && grow > 2<<20 {
				goals = append(goals, fmt.Sprintf("%s: peak RSS grows by %.1f MiB with a %s answer", c.name, float64(grow)/(1<<20), fmtBytes(sizes[c.name][0])))
			}
		}
	}

	fmt.Fprintln(out)
	if len(goals) == 0 {
		fmt.Fprintln(out, "goal: met on every case")
	} else {
		fmt.Fprintln(out, "goal missed:")
		for _, g := range goals {
			fmt.Fprintln(out, "  "+g)
		}
	}
}
