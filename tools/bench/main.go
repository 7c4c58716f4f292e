// Command bench measures promgate's overhead (make bench, SPEC section 9):
// it starts a real Prometheus on generated multi-tenant data with alerting
// rules, an Alertmanager receiving the alerts, nginx as a plain proxy_pass
// with upstream keepalive, and promgate in front of the same servers; checks
// that every target answers the same data (promgate: what the tenant's
// policy allows); then loads each case with wrk, the targets interleaved
// and the order rotated between repetitions, and prints requests per
// second, latency, the ratio to direct Prometheus, promgate's CPU per
// request and its peak RSS.
//
// Servers run on CPU 0 and wrk on CPU 1 when the machine has two or more.
//
// Exit status: 1 when a target answers wrong data or errors, never because
// of the measured figures (the goal is reported, not enforced), so that the
// quick mode can run in CI.
package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

type options struct {
	quick     bool
	reps      int
	duration  time.Duration
	slowDur   time.Duration
	conns     int
	slowConns int
	only      string
	keep      bool
	pin       bool
	profile   string
	gate      string
	hold      bool
	sections  string
	vm        bool
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "CI smoke run: one short repetition; fails only on wrong data or errors")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of every run")
	flag.DurationVar(&o.duration, "duration", time.Second, "length of one wrk run (whole seconds)")
	flag.DurationVar(&o.slowDur, "slow-duration", 2*time.Second, "length of one wrk run of a slow case (heavy, range, large)")
	flag.IntVar(&o.conns, "c", 16, "wrk connections")
	flag.IntVar(&o.slowConns, "slow-c", 1, "wrk connections for the slow cases")
	flag.StringVar(&o.only, "cases", "", "comma-separated case names to run (default: all)")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (logs, configuration)")
	flag.BoolVar(&o.pin, "pin", true, "pin servers to CPU 0 and wrk to CPU 1 (when there are two CPUs)")
	flag.StringVar(&o.profile, "profile", "", "instead of measuring, serve promgate in this process and write CPU and allocation profiles under load to this directory")
	flag.StringVar(&o.gate, "promgate", "", "promgate binary to measure (default: built from ./cmd/promgate)")
	flag.BoolVar(&o.hold, "hold", false, "set up, check, print the servers' addresses and wait for Ctrl-C (for manual experiments)")
	flag.StringVar(&o.sections, "sections", "cases,curves,write,vm", "comma-separated sections to run: cases (the table of proxies), curves (cost as users, selectors and connections grow), write (remote write and OTLP), vm (VictoriaMetrics: the small query direct, through nginx and through promgate in each enforcement mode)")
	flag.BoolVar(&o.vm, "vm", false, "run only the vm section (-sections vm)")
	flag.Parse()
	if o.quick {
		o.reps, o.duration, o.slowDur = 1, time.Second, time.Second
	}
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	if o.vm {
		o.sections = "vm"
	}
	// The vm section starts servers of its own; the others share one set.
	if slices.ContainsFunc(strings.Split(o.sections, ","), func(s string) bool { return s != "vm" }) {
		if err := run(o); err != nil {
			log.Print(err)
			os.Exit(1)
		}
	}
	if o.section("vm") {
		if err := runVM(o); err != nil {
			log.Print(fmt.Errorf("vm: %w", err))
			os.Exit(1)
		}
	}
}

// env is everything the benchmark started.
type env struct {
	dir               string
	prom, am, nginx   *proc
	gate              *proc
	gateBin           string   // the promgate binary measured (none with -profile)
	gateHeader        []string // the tenant, trusted-header mode
	gateBasic         []string // the tenant, basic auth
	gateLimits        []string // the tenant's data, under every limit
	adminHeader       []string // an allow_all identity
	serverCPU, wrkCPU int
}

func run(o options) error {
	for _, tool := range []string{"prometheus", "promtool", "prometheus-alertmanager", "nginx", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run make deps (scripts/install-deps.sh)", tool)
		}
	}
	e := &env{serverCPU: -1, wrkCPU: -1}
	if o.pin && runtime.NumCPU() >= 2 {
		if _, err := exec.LookPath("taskset"); err == nil {
			e.serverCPU, e.wrkCPU = 0, 1
		}
	}
	dir, err := os.MkdirTemp("", "promgate-bench-")
	if err != nil {
		return err
	}
	e.dir = dir
	defer func() {
		e.stop()
		if o.keep {
			fmt.Printf("working directory kept: %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	// Ctrl-C stops the servers too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		e.stop()
		os.RemoveAll(dir)
		os.Exit(130)
	}()

	begin := time.Now()
	if err := e.setup(o); err != nil {
		return err
	}
	all := cases()
	if o.only != "" {
		var sel []*benchCase
		for _, name := range strings.Split(o.only, ",") {
			found := false
			for _, c := range all {
				if c.name == name {
					sel, found = append(sel, c), true
				}
			}
			if !found {
				return fmt.Errorf("unknown case %q", name)
			}
		}
		all = sel
	}
	fmt.Printf("set up in %s; checking answers\n", time.Since(begin).Round(100*time.Millisecond))
	sizes, err := e.check(all)
	if err != nil {
		return fmt.Errorf("wrong answer: %w", err)
	}
	if o.profile != "" {
		return e.runProfile(o, all)
	}
	if o.hold {
		fmt.Printf("prometheus %s (pid %d)\nalertmanager %s (pid %d)\nnginx %s (pid %d)\npromgate %s (pid %d)\nworking directory %s\nCtrl-C stops everything\n",
			e.prom.url, e.prom.pid(), e.am.url, e.am.pid(), e.nginx.url, e.nginx.pid(), e.gate.url, e.gate.pid(), e.dir)
		select {}
	}
	if o.section("cases") {
		res, err := e.measure(o, all)
		if err != nil {
			return err
		}
		// The answers must still be right after the load.
		if _, err := e.check(all); err != nil {
			return fmt.Errorf("wrong answer after the load: %w", err)
		}
		printReport(os.Stdout, o, e, all, sizes, res, time.Since(begin))
		if err := e.tlsUpstreamCase(o, all); err != nil {
			return err
		}
	}
	if o.section("curves") {
		if err := runCurves(os.Stdout, o, e); err != nil {
			return fmt.Errorf("curves: %w", err)
		}
	}
	if o.section("write") {
		if err := runWrite(os.Stdout, o, e); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

func (o options) section(name string) bool {
	return slices.Contains(strings.Split(o.sections, ","), name)
}

func (e *env) stop() {
	for _, p := range []*proc{e.gate, e.nginx, e.prom, e.am} {
		p.stop()
	}
}

// setup generates the data and starts the servers.
func (e *env) setup(o options) error {
	dir := e.dir
	t0 := time.Now()
	fmt.Println("generating data and backfilling it with promtool ...")
	tsdb, err := makeTSDB("promtool", dir)
	if err != nil {
		return err
	}
	fmt.Printf("data ready after %s\n", time.Since(t0).Round(100*time.Millisecond))
	amAddr, err := freeAddr()
	if err != nil {
		return err
	}
	amConf := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(amConf, []byte("route:\n  receiver: 'null'\n  group_by: ['...']\nreceivers:\n  - name: 'null'\n"), 0o644); err != nil {
		return err
	}
	if e.am, err = start(dir, "alertmanager", amAddr, "/-/ready", pinned(e.serverCPU, "prometheus-alertmanager",
		"--config.file="+amConf, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=", "--log.level=warn",
		// The default, max(GOMAXPROCS, 8), answers 503 to promgate's
		// tenant listing under 16 clients (it reads the answer while
		// Alertmanager writes the next ones).
		"--web.get-concurrency=64")); err != nil {
		return err
	}

	rules := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rules, []byte(rulesFile()), 0o644); err != nil {
		return err
	}
	promConf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promConf, []byte(fmt.Sprintf(`global:
  evaluation_interval: 15s
rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
`, rules, amAddr)), 0o644); err != nil {
		return err
	}
	promAddr, err := freeAddr()
	if err != nil {
		return err
	}
	if e.prom, err = start(dir, "prometheus", promAddr, "/-/ready", pinned(e.serverCPU, "prometheus",
		"--config.file="+promConf, "--storage.tsdb.path="+tsdb, "--storage.tsdb.retention.time=100y",
		"--web.listen-address="+promAddr, "--log.level=warn",
		// Alerts evaluated before the Alertmanager was discovered reach it
		// on the next resend, after this delay (default 1m).
		"--rules.alert.resend-delay=5s")); err != nil {
		return err
	}

	if err := e.startNginx(); err != nil {
		return err
	}
	if err := e.startPromgate(o); err != nil {
		return err
	}

	fmt.Printf("servers up after %s; waiting for the alerts to fire and reach Alertmanager ...\n", time.Since(t0).Round(100*time.Millisecond))
	deadline := time.Now().Add(90 * time.Second)
	for {
		n1, err1 := countAlerts(e.prom.url+"/api/v1/alerts", false)
		n2, err2 := countAlerts(e.am.url+"/api/v2/alerts", true)
		if n1 == firingAlerts && n2 == firingAlerts {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 90s: %d alerts in Prometheus (%v), %d in Alertmanager (%v), want %d",
				n1, err1, n2, err2, firingAlerts)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func countAlerts(u string, alertmanager bool) (int, error) {
	a, err := fetch(u, nil, false)
	if err != nil {
		return 0, err
	}
	d, err := dataOf(a, alertmanager)
	if err != nil {
		return 0, err
	}
	if alertmanager {
		list, _ := d.([]any)
		return len(list), nil
	}
	m, _ := d.(map[string]any)
	list, _ := m["alerts"].([]any)
	n := 0
	for _, x := range list {
		if xm, _ := x.(map[string]any); xm["state"] == "firing" {
			n++
		}
	}
	return n, nil
}

const nginxConf = `worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/nginx-tmp/body;
  proxy_temp_path %[1]s/nginx-tmp/proxy;
  fastcgi_temp_path %[1]s/nginx-tmp/fastcgi;
  uwsgi_temp_path %[1]s/nginx-tmp/uwsgi;
  scgi_temp_path %[1]s/nginx-tmp/scgi;
  upstream prometheus {
    server %[3]s;
    keepalive 64;
  }
  upstream alertmanager {
    server %[4]s;
    keepalive 64;
  }
  server {
    listen %[2]s;
    location / {
      proxy_pass http://prometheus;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location /alertmanager/ {
      proxy_pass http://alertmanager/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`

func (e *env) startNginx() error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "nginx-tmp"), 0o755); err != nil {
		return err
	}
	conf := filepath.Join(e.dir, "nginx.conf")
	host := func(u string) string { return strings.TrimPrefix(u, "http://") }
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, e.dir, addr, host(e.prom.url), host(e.am.url))), 0o644); err != nil {
		return err
	}
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		return err
	}
	e.nginx, err = start(e.dir, "nginx", addr, "/-/ready", pinned(e.serverCPU, nginx, "-c", conf, "-p", e.dir))
	return err
}

const (
	limitedUser    = "t0-limited"
	tenantPassword = "t0-password-for-the-benchmark"
	identityHeader = "X-Forwarded-User"
)

func (e *env) startPromgate(o options) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(tenantPassword), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	var pol strings.Builder
	for i := range numTenants {
		t := tenantName(i)
		fmt.Fprintf(&pol, "  - name: tenant-%s\n    subjects: [\"user:%s\"]\n    selectors: ['{tenant=\"%s\"}']\n", t, t, t)
	}
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
  alertmanager:
    url: %s
authentication:
  basic_auth_users:
    %s: %s
  trusted_header:
    name: %s
    trusted_sources: [127.0.0.1/32]
policies:
%s  - name: admins
    subjects: ["user:admin"]
    allow_all: true
  # The tenant's data with every limit on, none of them reached: what
  # checking them costs.
  - name: limited
    subjects: ["user:%s"]
    selectors: ['{tenant="%s"}']
    limits:
      rate: 1000000
      max_concurrent: 10000
      upstream_time: 10000
      max_range: 30d
      max_lookback: 36500d
      min_step: 1s
      max_points: 11000
      max_query_length: 4096
      max_series: 100000
      blocked_queries:
        - pattern: '.*_bucket.*'
          reason: histograms are read through the recording rules
`, e.prom.url, e.am.url, tenant, hash, identityHeader, pol.String(), limitedUser, tenant)
	file := filepath.Join(e.dir, "promgate.yml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return err
	}
	e.gateHeader = []string{identityHeader + ": " + tenant}
	e.adminHeader = []string{identityHeader + ": admin"}
	e.gateLimits = []string{identityHeader + ": " + limitedUser}
	e.gateBasic = []string{"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(tenant+":"+tenantPassword))}
	if o.profile != "" {
		return e.serveInProcess(o, file)
	}

	bin := o.gate
	if bin == "" {
		bin = filepath.Join(e.dir, "promgate")
		build := exec.Command("go", "build", "-o", bin, "./cmd/promgate")
		build.Dir, err = moduleRoot()
		if err != nil {
			return err
		}
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/promgate: %v\n%s", err, out)
		}
	}
	e.gateBin = bin
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	e.gate, err = start(e.dir, "promgate", addr, "/-/ready", pinned(e.serverCPU, bin,
		"--config.file="+file, "--web.listen-address="+addr, "--log.level=warn",
		"--upstream.max-idle-conns="+strconv.Itoa(max(o.conns, 64))))
	return err
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the benchmark inside the promgate module (make bench)")
		}
		dir = parent
	}
}

// targets of a case: name, URL, headers.
type target struct {
	name    string
	url     string
	headers []string
}

func (e *env) targets(c *benchCase) []target {
	dURL, nURL, gURL := e.prom.url+c.directPath, e.nginx.url+c.directPath, e.gateURL()+c.gatePath
	if c.alertmanager {
		dURL = e.am.url + c.directPath
		nURL = e.nginx.url + "/alertmanager" + c.directPath
		gURL = e.gateURL() + "/alertmanager" + c.gatePath
	}
	return []target{{"direct", dURL, nil}, {"nginx", nURL, nil}, {"promgate", gURL, e.gateHeader}}
}

func (e *env) gateURL() string {
	if e.gate == nil {
		return profileURL
	}
	return e.gate.url
}

// check verifies every target's answer to every case, with and without
// gzip, and returns the answer sizes (uncompressed, gzip) promgate sends.
func (e *env) check(cs []*benchCase) (map[string][2]int, error) {
	sizes := map[string][2]int{}
	for _, c := range cs {
		ts := e.targets(c)
		var want, wantTenant string
		for _, gz := range []bool{false, true} {
			direct, err := fetch(ts[0].url, nil, gz)
			if err != nil {
				return nil, fmt.Errorf("%s direct: %w", c.name, err)
			}
			d, err := dataOf(direct, c.alertmanager)
			if err != nil {
				return nil, fmt.Errorf("%s direct: %w", c.name, err)
			}
			if got := canonical(d); want == "" {
				want = got
			} else if got != want {
				return nil, fmt.Errorf("%s: direct answers differently with gzip", c.name)
			}
			if c.filter != nil {
				d, _ = dataOf(direct, c.alertmanager) // a fresh copy
				wantTenant = canonical(c.filter(d))
			} else {
				wantTenant = want
			}
			empty := wantTenant == "[]" || wantTenant == "{}" || strings.Contains(wantTenant, `"result":[]`)
			if empty {
				return nil, fmt.Errorf("%s: the tenant's answer is empty; the benchmark data is wrong", c.name)
			}

			admin := target{"promgate (allow_all)", strings.Replace(ts[2].url, c.gatePath, c.directPath, 1), e.adminHeader}
			for _, t := range []target{ts[1], admin} {
				if err := expect(t, gz, c.alertmanager, want); err != nil {
					return nil, fmt.Errorf("%s: %w", c.name, err)
				}
			}
			// The tenant gets the filtered answer, by trusted header and by
			// basic auth; any other status (a 403 or 502 regression) fails.
			for _, t := range []target{ts[2], {"promgate (basic auth)", ts[2].url, e.gateBasic}, {"promgate (limits)", ts[2].url, e.gateLimits}} {
				if err := expect(t, gz, c.alertmanager, wantTenant); err != nil {
					return nil, fmt.Errorf("%s: %w", c.name, err)
				}
			}
			a, _ := fetch(ts[2].url, ts[2].headers, gz)
			s := sizes[c.name]
			if gz {
				s[1] = a.wire
			} else {
				s[0] = a.wire
			}
			sizes[c.name] = s
		}
	}
	return sizes, nil
}

func expect(t target, gz, alertmanager bool, want string) error {
	a, err := fetch(t.url, t.headers, gz)
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	d, err := dataOf(a, alertmanager)
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	if got := canonical(d); got != want {
		return fmt.Errorf("%s answers other data than expected (gzip %v):\n got %.400s\nwant %.400s", t.name, gz, got, want)
	}
	return nil
}

// variant is a case with or without gzip, or the basic-auth run.
type variant struct {
	c     *benchCase
	gzip  bool
	basic bool
}

func (v variant) label() string {
	enc := "plain"
	if v.gzip {
		enc = "gzip"
	}
	return v.c.name + "/" + enc
}

// sample is one wrk run of one target.
type sample struct {
	load
	gateCPU time.Duration // promgate's or nginx' CPU during the run
	promCPU time.Duration // Prometheus' (or Alertmanager's)
	rss     int64         // promgate's peak RSS during the run
	rssOK   bool
}

// limitsCase is the case measured with limits on too: the small query,
// where their cost shows most.
func limitsCase(cs []*benchCase) *benchCase {
	for _, c := range cs {
		if c.name == "small" {
			return c
		}
	}
	return nil
}

// results: variant label -> target name -> one sample per repetition.
type results map[string]map[string][]sample

func (e *env) measure(o options, cs []*benchCase) (results, error) {
	w, err := newWrk(e.dir, e.wrkCPU)
	if err != nil {
		return nil, err
	}
	var vs []variant
	for _, c := range cs {
		vs = append(vs, variant{c: c}, variant{c: c, gzip: true})
	}
	basicCase := cs[0]
	res := results{}
	total := o.reps * (len(vs)*3 + 1)
	if limitsCase(cs) != nil {
		total += o.reps
	}
	n := 0
	fmt.Printf("measuring: %d runs of %s with %d connections (slow cases: %s, %d), servers on CPU %d, wrk on CPU %d\n",
		total, o.duration, o.conns, o.slowDur, o.slowConns, e.serverCPU, e.wrkCPU)
	tty := isTerminal(os.Stdout)
	for rep := 0; rep < o.reps; rep++ {
		start := time.Now()
		for i := range vs {
			v := vs[(i+rep*3)%len(vs)] // rotate the order of the cases
			ts := e.targets(v.c)
			if v.c == basicCase && !v.gzip {
				ts = append(ts, target{"promgate basic", ts[2].url, e.gateBasic})
			}
			if v.c == limitsCase(cs) && !v.gzip {
				ts = append(ts, target{"promgate limits", ts[2].url, e.gateLimits})
			}
			for k := range ts {
				t := ts[(k+rep+i)%len(ts)] // and of the targets
				n++
				if tty {
					fmt.Printf("\r[%3d/%d] %-16s %-15s", n, total, v.label(), t.name)
				}
				s, err := e.runOne(w, v, t, o)
				if err != nil {
					fmt.Println()
					return nil, fmt.Errorf("%s %s: %w", v.label(), t.name, err)
				}
				if res[v.label()] == nil {
					res[v.label()] = map[string][]sample{}
				}
				res[v.label()][t.name] = append(res[v.label()][t.name], s)
			}
		}
		if tty {
			fmt.Printf("\r%60s\r", "")
		}
		fmt.Printf("repetition %d/%d done in %s\n", rep+1, o.reps, time.Since(start).Round(time.Second))
	}
	return res, nil
}

func (e *env) runOne(w *wrkRunner, v variant, t target, o options) (sample, error) {
	d, conns := o.duration, o.conns
	if v.c.slow {
		d, conns = o.slowDur, o.slowConns
	}
	headers := append([]string(nil), t.headers...)
	if v.gzip {
		headers = append(headers, "Accept-Encoding: gzip")
	}
	var gw []int
	switch {
	case strings.HasPrefix(t.name, "promgate") && e.gate != nil:
		gw = []int{e.gate.pid()}
	case t.name == "nginx":
		gw = append([]int{e.nginx.pid()}, childPIDs(e.nginx.pid())...)
	}
	up := []int{e.prom.pid()}
	if v.c.alertmanager {
		up = []int{e.am.pid()}
	}
	var s sample
	if len(gw) > 0 {
		s.rssOK = resetPeakRSS(gw[0])
	}
	g0, p0 := cpuTimes(gw), cpuTimes(up)
	l, err := w.run(t.url, headers, conns, d)
	if err != nil {
		return s, err
	}
	s.load = l
	s.gateCPU, s.promCPU = cpuTimes(gw)-g0, cpuTimes(up)-p0
	if len(gw) > 0 {
		s.rss, _ = peakRSS(gw[0])
	}
	for _, p := range []*proc{e.prom, e.am, e.nginx, e.gate} {
		if p != nil {
			if err := p.alive(); err != nil {
				return s, err
			}
		}
	}
	if l.errors != "" {
		return s, fmt.Errorf("errors under load: %s", l.errors)
	}
	if l.requests == 0 {
		fmt.Printf("\n%s %s: no request completed in %s\n", v.label(), t.name, d)
	}
	return s, nil
}
