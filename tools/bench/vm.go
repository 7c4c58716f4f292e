package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/promgate/promgate/internal/testenv"
)

// The VictoriaMetrics rows (-vm): the small query of the tenant t0 against
// a VictoriaMetrics single-node holding the benchmark's data, directly,
// through nginx, and through promgate in each enforcement mode: rewrite
// (the query rewritten as for Prometheus) and victoriametrics (the query
// untouched, the policy sent as extra_filters[]). Measured like the other
// rows: wrk runs interleaved, the order of the targets rotated between
// repetitions.

// vmTarget is a target of the VictoriaMetrics rows and the processes whose
// CPU it costs besides VictoriaMetrics'.
type vmTarget struct {
	target
	pids func() []int
}

func runVM(o options) error {
	vmBin, err := testenv.Tool("victoria-metrics")
	if err != nil {
		return fmt.Errorf("victoria-metrics not found: set %s to the directory scripts/build-upstreams.sh prints: %w", testenv.UpstreamsDirEnv, err)
	}
	for _, tool := range []string{"nginx", "wrk"} {
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
	if e.dir, err = os.MkdirTemp("", "promgate-bench-vm-"); err != nil {
		return err
	}
	var gates []*proc
	defer func() {
		for _, g := range gates {
			g.stop()
		}
		e.stop()
		if !o.keep {
			os.RemoveAll(e.dir)
		}
	}()
	begin := time.Now()

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	vm, err := start(e.dir, "victoria-metrics", addr, "/health", pinned(e.serverCPU, vmBin,
		"-storageDataPath="+filepath.Join(e.dir, "vm"), "-httpListenAddr="+addr,
		"-retentionPeriod=100y", "-loggerLevel=WARN"))
	if err != nil {
		return err
	}
	// nginx proxies to VictoriaMetrics for both of its locations.
	e.prom, e.am = vm, vm
	if err := vmLoad(vm.url, dataset()); err != nil {
		return err
	}
	if err := e.startNginx(); err != nil {
		return err
	}
	bin := o.gate
	if bin == "" {
		bin = filepath.Join(e.dir, "promgate")
		build := exec.Command("go", "build", "-o", bin, "./cmd/promgate")
		if build.Dir, err = moduleRoot(); err != nil {
			return err
		}
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/promgate: %v\n%s", err, out)
		}
	}
	gate := map[string]*proc{}
	for _, mode := range []string{"victoriametrics", "rewrite"} {
		g, err := startVMGate(e, o, bin, vm.url, mode)
		if err != nil {
			return err
		}
		gates = append(gates, g)
		gate[mode] = g
	}
	fmt.Printf("VictoriaMetrics rows: set up in %s\n", time.Since(begin).Round(100*time.Millisecond))

	c := cases()[0] // the small query
	header := []string{identityHeader + ": " + tenant}
	nginxPIDs := func() []int { return append([]int{e.nginx.pid()}, childPIDs(e.nginx.pid())...) }
	ts := []vmTarget{
		{target{"direct", vm.url + c.directPath, nil}, func() []int { return nil }},
		{target{"nginx", e.nginx.url + c.directPath, nil}, nginxPIDs},
		{target{"promgate victoriametrics", gate["victoriametrics"].url + c.gatePath, header}, func() []int { return []int{gate["victoriametrics"].pid()} }},
		{target{"promgate rewrite", gate["rewrite"].url + c.gatePath, header}, func() []int { return []int{gate["rewrite"].pid()} }},
	}
	// Every target answers the tenant's 32 series of up, the same.
	var want string
	for _, t := range ts {
		a, err := fetch(t.url, t.headers, false)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		d, err := dataOf(a, false)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		got := canonical(d)
		if want == "" {
			want = got
			var m struct {
				Result []any `json:"result"`
			}
			if json.Unmarshal([]byte(got), &m) != nil || len(m.Result) != numInstances {
				return fmt.Errorf("direct: want %d series of up, got %.300s", numInstances, got)
			}
		} else if got != want {
			return fmt.Errorf("%s answers other data than direct VictoriaMetrics:\n got %.400s\nwant %.400s", t.name, got, want)
		}
	}

	w, err := newWrk(e.dir, e.wrkCPU)
	if err != nil {
		return err
	}
	res := map[string][]sample{}
	for rep := 0; rep < o.reps; rep++ {
		for k := range ts {
			t := ts[(k+rep)%len(ts)]
			pids, up := t.pids(), []int{vm.pid()}
			g0, p0 := cpuTimes(pids), cpuTimes(up)
			l, err := w.run(t.url, t.headers, o.conns, o.duration)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			if l.errors != "" {
				return fmt.Errorf("%s: errors under load: %s", t.name, l.errors)
			}
			res[t.name] = append(res[t.name], sample{load: l, gateCPU: cpuTimes(pids) - g0, promCPU: cpuTimes(up) - p0})
		}
	}
	fmt.Printf("\nVictoriaMetrics %s, the small query (%s), %d connections, %d × %s per target, interleaved\n",
		vmVersion(vmBin), c.desc, o.conns, o.reps, o.duration)
	fmt.Printf("%-26s %10s %9s %9s %14s %16s\n", "target", "req/s", "p50", "p99", "vs direct", "proxy CPU/req")
	for _, t := range ts {
		s := summarize(res[t.name], res["direct"])
		cpu := "-"
		if t.name != "direct" {
			cpu = fmt.Sprintf("%.0fµs", s.gateCPU)
		}
		fmt.Printf("%-26s %10.0f %9s %9s %5.2f (%.2f-%.2f) %16s\n", t.name, s.rate, fmtDur(s.p50), fmtDur(s.p99), s.ratio, s.lo, s.hi, cpu)
	}
	return nil
}

// vmLoad imports the dataset through /api/v1/import and waits until it is
// searchable.
func vmLoad(base string, ds *testenv.Dataset) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, s := range ds.AllSeries() {
		line := struct {
			Metric     map[string]string `json:"metric"`
			Values     []float64         `json:"values"`
			Timestamps []int64           `json:"timestamps"`
		}{Metric: s.Labels}
		for _, smp := range s.Samples {
			line.Values = append(line.Values, smp.V)
			line.Timestamps = append(line.Timestamps, smp.T*1000)
		}
		if err := enc.Encode(&line); err != nil {
			return err
		}
	}
	resp, err := http.Post(base+"/api/v1/import", "application/json", &body)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("import: status %d", resp.StatusCode)
	}
	if resp, err = http.Get(base + "/internal/force_flush"); err != nil {
		return err
	}
	resp.Body.Close()
	u := base + query("/api/v1/series", "match[]", `{__name__=~".+"}`, "start", strconv.Itoa(testenv.BaseTime-span), "end", strconv.Itoa(testenv.BaseTime))
	want := len(ds.AllSeries())
	var last string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		a, err := fetch(u, nil, false)
		if err == nil {
			var d any
			if d, err = dataOf(a, false); err == nil {
				list, _ := d.([]any)
				if len(list) == want {
					return nil
				}
				err = fmt.Errorf("%d series", len(list))
			}
		}
		last = err.Error()
		if time.Now().After(deadline) {
			return fmt.Errorf("VictoriaMetrics does not hold the %d series imported after 30s: %.300s", want, last)
		}
	}
}

// startVMGate starts promgate in front of VictoriaMetrics with one
// enforcement mode, the tenant named by the trusted header.
func startVMGate(e *env, o options, bin, upstream, mode string) (*proc, error) {
	var pol bytes.Buffer
	for i := range numTenants {
		t := tenantName(i)
		fmt.Fprintf(&pol, "  - name: tenant-%s\n    subjects: [\"user:%s\"]\n    selectors: ['{tenant=\"%s\"}']\n", t, t, t)
	}
	cfg := fmt.Sprintf("upstreams:\n  prometheus:\n    url: %s\n    enforcement: %s\nauthentication:\n  trusted_header:\n    name: %s\n    trusted_sources: [127.0.0.1/32]\npolicies:\n%s",
		upstream, mode, identityHeader, pol.String())
	file := filepath.Join(e.dir, "promgate-"+mode+".yml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return start(e.dir, "promgate-"+mode, addr, "/-/ready", pinned(e.serverCPU, bin,
		"--config.file="+file, "--web.listen-address="+addr, "--log.level=warn",
		"--upstream.max-idle-conns="+strconv.Itoa(max(o.conns, 64))))
}

// vmVersion is the first line of victoria-metrics --version.
func vmVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "(version unknown)"
	}
	return string(bytes.TrimSpace(bytes.SplitN(out, []byte("\n"), 2)[0]))
}
