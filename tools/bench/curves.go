package main

// Cost curves (make bench, -curves): how promgate's cost grows with the
// work an operator gives it, each curve a short table against its goal.
//
//   - users in the configuration 10 → 10,000 (each with a policy of its
//     own, and a basic-auth entry): CPU per request and RSS; goal flat;
//   - selectors per policy 1 → 8 → 64: the rewrite's time (uncached) and
//     the upstream's cost of the rewritten query through promgate; goal at
//     most linear;
//   - concurrent connections 16 → 1,024: promgate's peak RSS; goal under
//     100 MiB.
//
// Every promgate of the curves is a process of its own, on the servers'
// CPU, in front of the benchmark's Prometheus; its answers are checked
// against direct Prometheus before it is measured.

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/promql"
	"github.com/promgate/promgate/internal/testenv"
)

var (
	curveUsers       = []int{10, 100, 1000, 10000}
	curveSelectors   = []int{1, 8, 64}
	curveConnections = []int{16, 64, 256, 1024}
)

// curveSelector is selector i of a policy of several: the tenant's series,
// with one more matcher that no series fails, so that the answer stays the
// same and only the number of selectors grows.
func curveSelector(i int) string {
	return fmt.Sprintf(`{tenant="%s", instance!="absent-%d"}`, tenant, i)
}

// curveConfig is a configuration of users users, user i with a policy of
// its own over tenant t(i mod 4), all of them in basic_auth_users too (one
// hash for all: the file's size, not bcrypt, is what grows), and one
// policy per size of curveSelectors for the users sel-N.
func curveConfig(promURL string, users int, hash []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "upstreams:\n  prometheus:\n    url: %s\nauthentication:\n  basic_auth_users:\n", promURL)
	for i := range users {
		fmt.Fprintf(&b, "    u%d: %s\n", i, hash)
	}
	fmt.Fprintf(&b, "  trusted_header:\n    name: %s\n    trusted_sources: [127.0.0.1/32]\npolicies:\n", identityHeader)
	for i := range users {
		fmt.Fprintf(&b, "  - name: user-%d\n    subjects: [\"user:u%d\"]\n    selectors: ['{tenant=\"%s\"}']\n", i, i, tenantName(i%numTenants))
	}
	for _, n := range curveSelectors {
		fmt.Fprintf(&b, "  - name: selectors-%d\n    subjects: [\"user:sel-%d\"]\n    selectors:\n", n, n)
		for i := range n {
			fmt.Fprintf(&b, "      - '%s'\n", curveSelector(i))
		}
	}
	return b.String()
}

// curveUser is the user of a configuration of n users measured: the last
// one whose policy is the tenant's (t0).
func curveUser(n int) string {
	i := n - 1
	return "u" + strconv.Itoa(i-i%numTenants)
}

// curvePoint is one measured point of a curve, over the repetitions.
type curvePoint struct {
	samples []sample
	idleRSS int64
}

func (p *curvePoint) summary() summary { return summarize(p.samples, nil) }

// peak is the highest peak RSS of the repetitions.
func (p *curvePoint) peak() int64 {
	var m int64
	for _, s := range p.samples {
		m = max(m, s.rss)
	}
	return m
}

func (e *env) startCurveGate(name, cfg string, maxIdle int) (*proc, error) {
	file := filepath.Join(e.dir, name+".yml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return start(e.dir, name, addr, "/-/ready", pinned(e.serverCPU, e.gateBin,
		"--config.file="+file, "--web.listen-address="+addr, "--log.level=warn",
		"--upstream.max-idle-conns="+strconv.Itoa(maxIdle)))
}

// loadGate runs wrk against one promgate and reads its CPU and peak RSS,
// and Prometheus' CPU, over the run.
func (e *env) loadGate(w *wrkRunner, g *proc, url string, headers []string, conns int, d time.Duration) (sample, error) {
	var s sample
	s.rssOK = resetPeakRSS(g.pid())
	g0, p0 := cpuTimes([]int{g.pid()}), cpuTimes([]int{e.prom.pid()})
	l, err := w.run(url, headers, conns, d)
	if err != nil {
		return s, err
	}
	s.load = l
	// Queries still running when wrk stops are cancelled; their work
	// until then is counted, and they do not reach into the next run.
	if err := e.promIdle(); err != nil {
		return s, err
	}
	s.gateCPU, s.promCPU = cpuTimes([]int{g.pid()})-g0, cpuTimes([]int{e.prom.pid()})-p0
	s.rss, _ = peakRSS(g.pid())
	if err := g.alive(); err != nil {
		return s, err
	}
	if l.errors != "" {
		return s, fmt.Errorf("errors under load: %s", l.errors)
	}
	return s, nil
}

// drainedLoad sends GET url from conns clients, each after the answer to
// its last, for d, and waits for the answers of the requests still in
// flight then: promgate's and Prometheus' CPU is that of the requests
// counted, where wrk would leave the work of the requests it cut off in
// the measurement (a large error when a request takes a good part of a
// second). Any answer but 200 is an error.
func (e *env) drainedLoad(g *proc, url string, headers []string, conns int, d time.Duration) (sample, error) {
	var s sample
	s.rssOK = resetPeakRSS(g.pid())
	g0, p0 := cpuTimes([]int{g.pid()}), cpuTimes([]int{e.prom.pid()})
	start := time.Now()
	end := start.Add(d)
	type result struct {
		lat []time.Duration
		err error
	}
	results := make(chan result, conns)
	for range conns {
		go func() {
			var r result
			for time.Now().Before(end) {
				t0 := time.Now()
				a, err := fetch(url, headers, false)
				if err == nil && a.code != 200 {
					err = fmt.Errorf("status %d: %.300s", a.code, a.body)
				}
				if err != nil {
					r.err = err
					break
				}
				r.lat = append(r.lat, time.Since(t0))
			}
			results <- r
		}()
	}
	var lat []time.Duration
	var errs []string
	for range conns {
		r := <-results
		lat = append(lat, r.lat...)
		if r.err != nil {
			errs = append(errs, r.err.Error())
		}
	}
	s.duration = time.Since(start)
	s.gateCPU, s.promCPU = cpuTimes([]int{g.pid()})-g0, cpuTimes([]int{e.prom.pid()})-p0
	s.rss, _ = peakRSS(g.pid())
	if len(errs) > 0 {
		return s, fmt.Errorf("errors under load: %s", strings.Join(errs, "; "))
	}
	slices.Sort(lat)
	s.requests = int64(len(lat))
	if len(lat) > 0 {
		s.p50, s.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return s, g.alive()
}

// pinSelf moves this process, whose clients load the servers in the
// curves and the write cases, to wrk's CPU, away from the servers'.
func (e *env) pinSelf() error {
	if e.wrkCPU < 0 {
		return nil
	}
	out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(e.wrkCPU), strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset: %v\n%s", err, out)
	}
	return nil
}

// promIdle waits until Prometheus runs no query.
func (e *env) promIdle() error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		a, err := fetch(e.prom.url+"/metrics", nil, false)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(a.body), "\n") {
			if v, ok := strings.CutPrefix(line, "prometheus_engine_queries "); ok && strings.TrimSpace(v) == "0" {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("Prometheus still runs queries a minute after the load ended")
}

// curveQueries are the queries of the selectors curve: the small one and
// an aggregation over a range of 512 series.
func curveQueries() []*benchCase {
	t := strconv.Itoa(queryTime)
	sel := `{tenant="` + tenant + `"}`
	agg := `sum by (handler) (rate(http_requests_total%s[5m]))`
	return []*benchCase{
		{name: "small", desc: "up, 32 series",
			directPath: query("/api/v1/query", "query", "up"+sel, "time", t),
			gatePath:   query("/api/v1/query", "query", "up", "time", t)},
		{name: "aggregation", desc: "sum by (handler) (rate(512 series[5m]))",
			directPath: query("/api/v1/query", "query", fmt.Sprintf(agg, sel), "time", t),
			gatePath:   query("/api/v1/query", "query", fmt.Sprintf(agg, ""), "time", t),
			slow:       true},
	}
}

// rewriteTime is the time promgate takes to rewrite q under a policy of n
// curve selectors, uncached (a new Enforcer each time, as after a reload):
// the median of batches.
func rewriteTime(n int, q string) (time.Duration, error) {
	var sels [][]*labels.Matcher
	for i := range n {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(curveSelector(i))
		if err != nil {
			return 0, err
		}
		sels = append(sels, ms)
	}
	const batch = 50
	var per []time.Duration
	for range 7 {
		start := time.Now()
		for range batch {
			enf, err := promql.New(sels)
			if err != nil {
				return 0, err
			}
			if _, err := enf.Query(q); err != nil {
				return 0, err
			}
		}
		per = append(per, time.Since(start)/batch)
	}
	slices.Sort(per)
	return per[len(per)/2], nil
}

func runCurves(out io.Writer, o options, e *env) error {
	if e.gateBin == "" {
		return fmt.Errorf("the curves need a promgate binary")
	}
	begin := time.Now()
	if err := e.pinSelf(); err != nil {
		return err
	}
	d, reps := o.duration, o.reps
	if reps > 3 {
		reps = 3 // the curves compare sizes, not proxies: three rounds are enough
	}
	w, err := newWrk(e.dir, e.wrkCPU)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(tenantPassword), bcrypt.MinCost)
	if err != nil {
		return err
	}
	qs := curveQueries()
	small := qs[0]
	want := map[string]string{}
	for _, c := range qs {
		a, err := fetch(e.prom.url+c.directPath, nil, false)
		if err != nil {
			return err
		}
		dd, err := dataOf(a, false)
		if err != nil {
			return err
		}
		want[c.name] = canonical(dd)
	}
	fmt.Fprintf(out, "\ncost curves: %d repetitions × %s per point, sizes interleaved; promgate on CPU %d, wrk on CPU %d\n", reps, d, e.serverCPU, e.wrkCPU)

	// Users.
	gates := make([]*proc, len(curveUsers))
	defer func() {
		for _, g := range gates {
			g.stop()
		}
	}()
	cfgBytes := make([]int, len(curveUsers))
	for i, n := range curveUsers {
		cfg := curveConfig(e.prom.url, n, hash)
		cfgBytes[i] = len(cfg)
		if gates[i], err = e.startCurveGate(fmt.Sprintf("promgate-users-%d", n), cfg, 64); err != nil {
			return fmt.Errorf("%d users: %w", n, err)
		}
		hdr := []string{identityHeader + ": " + curveUser(n)}
		if err := expect(target{fmt.Sprintf("promgate, %d users", n), gates[i].url + small.gatePath, hdr}, false, false, want[small.name]); err != nil {
			return err
		}
	}
	users := make([]curvePoint, len(curveUsers))
	for i := range curveUsers {
		users[i].idleRSS, _ = testenv.StatusBytes(gates[i].pid(), "VmRSS")
	}
	for r := range reps {
		for k := range curveUsers {
			i := (k + r) % len(curveUsers)
			hdr := []string{identityHeader + ": " + curveUser(curveUsers[i])}
			s, err := e.loadGate(w, gates[i], gates[i].url+small.gatePath, hdr, o.conns, d)
			if err != nil {
				return fmt.Errorf("%d users: %w", curveUsers[i], err)
			}
			users[i].samples = append(users[i].samples, s)
		}
	}
	fmt.Fprintf(out, "\nusers in the configuration (each with its own policy and basic-auth entry); the small query by trusted header, wrk -c%d; goal: flat\n", o.conns)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "users\tconfig\treq/s\tp50\tp99\tpromgate CPU µs/req\t×10 users\tRSS idle\tpeak RSS\t")
	base := users[0].summary()
	for i, n := range curveUsers {
		s := users[i].summary()
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%.0f\t%.2f\t%s\t%s\t\n", n, fmtBytes(cfgBytes[i]), s.rate, fmtDur(s.p50), fmtDur(s.p99),
			s.gateCPU, s.gateCPU/base.gateCPU, fmtBytes(int(users[i].idleRSS)), fmtBytes(int(users[i].peak())))
	}
	tw.Flush()

	// Selectors: on the 10-user promgate, whose configuration has the
	// selector policies.
	g := gates[0]
	for _, n := range curveSelectors {
		for _, c := range qs {
			hdr := []string{identityHeader + ": sel-" + strconv.Itoa(n)}
			if err := expect(target{fmt.Sprintf("promgate, %d selectors", n), g.url + c.gatePath, hdr}, false, false, want[c.name]); err != nil {
				return err
			}
		}
	}
	sels := map[string][]curvePoint{}
	for _, c := range qs {
		sels[c.name] = make([]curvePoint, len(curveSelectors))
	}
	for r := range reps {
		for k := range curveSelectors {
			i := (k + r) % len(curveSelectors)
			for _, c := range qs {
				hdr := []string{identityHeader + ": sel-" + strconv.Itoa(curveSelectors[i])}
				s, err := e.drainedLoad(g, g.url+c.gatePath, hdr, o.slowConns, o.slowDur)
				if err != nil {
					return fmt.Errorf("%d selectors, %s: %w", curveSelectors[i], c.name, err)
				}
				sels[c.name][i].samples = append(sels[c.name][i].samples, s)
			}
		}
	}
	fmt.Fprintf(out, "\nselectors per policy (each the tenant's series and one matcher no series fails: the same answer); rewrite uncached, in this process; through promgate from %d client(s) for %s, every request answered (none cut off at the end); goal: at most linear\n", o.slowConns, o.slowDur)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "query\tselectors\trewrite\t×1\tper selector\treq/s\tp50\tp99\tpromgate CPU µs/req\tPrometheus CPU µs/req\t×1\t")
	var missed []string
	for _, c := range qs {
		var rw0 time.Duration
		var up0 float64
		for i, n := range curveSelectors {
			q, _ := parseQuery(c.gatePath)
			rw, err := rewriteTime(n, q)
			if err != nil {
				return fmt.Errorf("rewrite under %d selectors: %w", n, err)
			}
			s := sels[c.name][i].summary()
			if i == 0 {
				rw0, up0 = rw, s.promCPU
			}
			name := ""
			if i == 0 {
				name = c.name
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f\t%s\t%.0f\t%s\t%s\t%.0f\t%.0f\t%.1f\t\n", name, n, fmtNs(rw), float64(rw)/float64(rw0), fmtNs(rw/time.Duration(n)),
				s.rate, fmtDur(s.p50), fmtDur(s.p99), s.gateCPU, s.promCPU, s.promCPU/up0)
			// Linear: n selectors cost at most n times one, with a
			// quarter for noise.
			if float64(rw)/float64(rw0) > 1.25*float64(n) {
				missed = append(missed, fmt.Sprintf("%s: the rewrite under %d selectors costs %.1f× one", c.name, n, float64(rw)/float64(rw0)))
			}
			if s.promCPU/up0 > 1.25*float64(n) {
				missed = append(missed, fmt.Sprintf("%s: Prometheus' CPU under %d selectors is %.1f× one", c.name, n, s.promCPU/up0))
			}
		}
	}
	tw.Flush()
	gates[0] = nil
	g.stop()
	for i := 1; i < len(gates); i++ {
		gates[i].stop()
		gates[i] = nil
	}

	// Connections: a fresh promgate, the connections growing, so that
	// each point's peak is its own.
	maxConns := curveConnections[len(curveConnections)-1]
	cg, err := e.startCurveGate("promgate-connections", curveConfig(e.prom.url, curveUsers[0], hash), maxConns)
	if err != nil {
		return err
	}
	defer cg.stop()
	conns := make([]curvePoint, len(curveConnections))
	hdr := []string{identityHeader + ": " + curveUser(curveUsers[0])}
	for i, c := range curveConnections {
		conns[i].idleRSS, _ = testenv.StatusBytes(cg.pid(), "VmRSS")
		for range reps {
			s, err := e.loadGate(w, cg, cg.url+small.gatePath, hdr, c, d)
			if err != nil {
				return fmt.Errorf("%d connections: %w", c, err)
			}
			conns[i].samples = append(conns[i].samples, s)
		}
	}
	fmt.Fprintf(out, "\nconcurrent connections (wrk -c), the small query; promgate with --upstream.max-idle-conns=%d; goal: peak RSS under 100 MiB\n", maxConns)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "connections\treq/s\tp50\tp99\tpromgate CPU µs/req\tRSS before\tpeak RSS\t")
	for i, c := range curveConnections {
		s := conns[i].summary()
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t%s\t%.0f\t%s\t%s\t\n", c, s.rate, fmtDur(s.p50), fmtDur(s.p99), s.gateCPU,
			fmtBytes(int(conns[i].idleRSS)), fmtBytes(int(conns[i].peak())))
		if conns[i].peak() >= 100<<20 {
			missed = append(missed, fmt.Sprintf("%d connections: peak RSS %s ≥ 100 MiB", c, fmtBytes(int(conns[i].peak()))))
		}
	}
	tw.Flush()
	for i := 1; i < len(curveUsers); i++ {
		if r := users[i].summary().gateCPU / base.gateCPU; r > 1.25 {
			missed = append(missed, fmt.Sprintf("%d users: promgate CPU per request %.2f× that of 10 users", curveUsers[i], r))
		}
	}
	fmt.Fprintln(out)
	if len(missed) == 0 {
		fmt.Fprintf(out, "curves: goals met (%s)\n", time.Since(begin).Round(time.Second))
	} else {
		fmt.Fprintf(out, "curves: goal missed (%s):\n", time.Since(begin).Round(time.Second))
		for _, m := range missed {
			fmt.Fprintln(out, "  "+m)
		}
	}
	return nil
}

// parseQuery returns the query parameter of a case's path.
func parseQuery(path string) (string, error) {
	_, rawQuery, _ := strings.Cut(path, "?")
	v, err := url.ParseQuery(rawQuery)
	if err != nil || v.Get("query") == "" {
		return "", fmt.Errorf("no query in %s", path)
	}
	return v.Get("query"), nil
}

// fmtNs prints a short duration with its fraction of a microsecond.
func fmtNs(d time.Duration) string {
	if d < 10*time.Microsecond {
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	}
	return fmtDur(d.Seconds())
}
