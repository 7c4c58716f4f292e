package main

// Write cases (make bench, -sections write): samples per second written
// through promgate against directly to a Prometheus 3 with its
// remote-write and OTLP receivers on, and promgate's CPU per 1,000
// samples, for remote write 1.0, remote write 2.0 and OTLP (protobuf over
// HTTP). Every request is a batch of 2,000 samples over 500 series (four
// samples per series), as a Prometheus or an OpenTelemetry collector sends
// them, of series the tenant's policy allows. Each client writes series of
// its own with timestamps that only grow, so that every sample is a new
// one for the TSDB (no out-of-order, no duplicate). Afterwards the samples
// Prometheus holds are counted: each accepted request must have landed
// whole. A protocol promgate refuses is reported as such, with its status,
// not measured.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/promgate/promgate/internal/testenv"
)

const (
	writeSeries        = 500
	writeSamplesPerSer = 4
	writeBatch         = writeSeries * writeSamplesPerSer // 2,000 samples per request
	writeUser          = "writer"
)

// writeProto is one write protocol: its path, headers and body.
type writeProto struct {
	name, metric string
	path         string
	headers      map[string]string
	// body encodes the batch of client worker to target, its samples at
	// t0 … t0+3 ms.
	body func(target string, worker int, t0 int64) ([]byte, error)
}

func writeProtos() []*writeProto {
	return []*writeProto{
		{
			name: "remote write 1.0", metric: "bench_write_rw1", path: "/api/v1/write",
			headers: map[string]string{
				"Content-Type":                      "application/x-protobuf",
				"Content-Encoding":                  "snappy",
				"X-Prometheus-Remote-Write-Version": "0.1.0",
			},
			body: func(target string, worker int, t0 int64) ([]byte, error) {
				req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, writeSeries)}
				for i := range req.Timeseries {
					ts := &req.Timeseries[i]
					writeLabels("bench_write_rw1", target, worker, i).Range(func(l labels.Label) {
						ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
					})
					for k := range writeSamplesPerSer {
						ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t0 + int64(k), Value: float64(t0 + int64(k+i))})
					}
				}
				raw, err := req.Marshal()
				return snappy.Encode(nil, raw), err
			},
		},
		{
			name: "remote write 2.0", metric: "bench_write_rw2", path: "/api/v1/write",
			headers: map[string]string{
				"Content-Type":                      "application/x-protobuf;proto=io.prometheus.write.v2.Request",
				"Content-Encoding":                  "snappy",
				"X-Prometheus-Remote-Write-Version": "2.0.0",
			},
			body: func(target string, worker int, t0 int64) ([]byte, error) {
				st := writev2.NewSymbolTable()
				req := writev2.Request{Timeseries: make([]writev2.TimeSeries, writeSeries)}
				for i := range req.Timeseries {
					ts := &req.Timeseries[i]
					ts.LabelsRefs = st.SymbolizeLabels(writeLabels("bench_write_rw2", target, worker, i), nil)
					for k := range writeSamplesPerSer {
						ts.Samples = append(ts.Samples, writev2.Sample{Timestamp: t0 + int64(k), Value: float64(t0 + int64(k+i))})
					}
					ts.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE}
				}
				req.Symbols = st.Symbols()
				raw, err := req.Marshal()
				return snappy.Encode(nil, raw), err
			},
		},
		{
			name: "OTLP (protobuf)", metric: "bench_write_otlp", path: "/api/v1/otlp/v1/metrics",
			headers: map[string]string{"Content-Type": "application/x-protobuf"},
			body: func(target string, worker int, t0 int64) ([]byte, error) {
				md := pmetric.NewMetrics()
				rm := md.ResourceMetrics().AppendEmpty()
				rm.Resource().Attributes().PutStr("service.name", "bench")
				m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
				m.SetName("bench_write_otlp")
				g := m.SetEmptyGauge()
				for i := range writeSeries {
					for k := range writeSamplesPerSer {
						dp := g.DataPoints().AppendEmpty()
						writeLabels("", target, worker, i).Range(func(l labels.Label) {
							dp.Attributes().PutStr(l.Name, l.Value)
						})
						dp.SetTimestamp(pcommon.Timestamp((t0 + int64(k)) * int64(time.Millisecond)))
						dp.SetDoubleValue(float64(t0 + int64(k+i)))
					}
				}
				return pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
			},
		},
	}
}

// writeLabels are the labels of series i of a client: the tenant's, and
// who wrote it, so that the samples of each target can be counted.
func writeLabels(metric, target string, worker, i int) labels.Labels {
	kv := []string{"tenant", tenant, "target", target, "worker", strconv.Itoa(worker), "series", strconv.Itoa(i)}
	if metric != "" {
		kv = append(kv, "__name__", metric)
	}
	return labels.FromStrings(kv...)
}

// writeClock hands out the timestamps of the batches: for each client,
// four milliseconds after its last batch, and never before now - 3 ms, so
// the samples are recent and each is new.
type writeClock struct {
	mu   sync.Mutex
	last map[string]int64
}

func (c *writeClock) next(key string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	t0 := max(time.Now().UnixMilli()-3, c.last[key]+1)
	c.last[key] = t0 + writeSamplesPerSer - 1
	return t0
}

// writeSample is one run of one protocol against one target.
type writeSample struct {
	requests int64
	elapsed  time.Duration
	gateCPU  time.Duration // promgate's, through promgate
	promCPU  time.Duration
}

func (s writeSample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.requests*writeBatch) / s.elapsed.Seconds()
}

// writeTarget is where the batches go.
type writeTarget struct {
	name    string // direct or promgate
	url     string
	headers map[string]string
}

var writeClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

// post sends one batch; a status outside 2xx is returned with the body.
func (t writeTarget) post(p *writeProto, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, t.url+p.path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for k, v := range p.headers {
		req.Header.Set(k, v)
	}
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	resp, err := writeClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// prometheus3 finds the current generation's prometheus: that of
// PROMGATE_UPSTREAMS_DIR, else of scripts/build-upstreams.sh (cached after
// its first build).
func prometheus3() (string, error) {
	dir := os.Getenv(testenv.UpstreamsDirEnv)
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		cmd := exec.Command("bash", "scripts/build-upstreams.sh")
		cmd.Dir, cmd.Stderr = root, os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("scripts/build-upstreams.sh: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		dir = lines[len(lines)-1]
	}
	bin := filepath.Join(dir, "prometheus")
	v, err := testenv.VersionOf(bin)
	if err != nil {
		return "", err
	}
	if !v.AtLeast(3, 0) {
		return "", fmt.Errorf("%s is Prometheus %s; the write cases need 3.x (OTLP and remote write 2.0 receivers)", bin, v)
	}
	return bin, nil
}

func runWrite(out io.Writer, o options, e *env) error {
	if e.gateBin == "" {
		return errors.New("the write cases need a promgate binary")
	}
	begin := time.Now()
	if err := e.pinSelf(); err != nil {
		return err
	}
	bin, err := prometheus3()
	if err != nil {
		return err
	}
	dir := filepath.Join(e.dir, "write")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	prom, err := start(dir, "prometheus-write", addr, "/-/ready", pinned(e.serverCPU, testenv.PrometheusArgs(bin, conf, filepath.Join(dir, "tsdb"), addr,
		"--web.enable-remote-write-receiver", "--web.enable-otlp-receiver")...))
	if err != nil {
		return err
	}
	defer prom.stop()
	gconf := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(gconf, []byte(fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  trusted_header:
    name: %s
    trusted_sources: [127.0.0.1/32]
policies:
  - name: writer
    subjects: ["user:%s"]
    selectors: ['{tenant="%s"}']
`, prom.url, identityHeader, writeUser, tenant)), 0o600); err != nil {
		return err
	}
	gaddr, err := freeAddr()
	if err != nil {
		return err
	}
	gate, err := start(dir, "promgate-write", gaddr, "/-/ready", pinned(e.serverCPU, e.gateBin,
		"--config.file="+gconf, "--web.listen-address="+gaddr, "--log.level=warn"))
	if err != nil {
		return err
	}
	defer gate.stop()

	targets := []writeTarget{
		{name: "direct", url: prom.url},
		{name: "promgate", url: gate.url, headers: map[string]string{identityHeader: writeUser}},
	}
	protos := writeProtos()
	clock := &writeClock{last: map[string]int64{}}
	// One client: Prometheus 3 takes concurrent batches more slowly than
	// one at a time (four clients straight at it reach less than half the
	// rate of one, at the same CPU per sample), and promgate's hop spaces
	// them out, which would flatter promgate. One client's rate still waits
	// on the machine's scheduling: the CPU model is the steadier figure.
	const conns = 1
	d := o.slowDur
	reps := min(o.reps, 3)
	accepted := map[string]int64{} // metric/target -> requests accepted
	refused := map[string]string{} // protocol -> promgate's refusal
	why := map[string]string{}     // and its message
	res := map[string]map[string][]writeSample{}

	// A first batch each: direct must take it; promgate may refuse a
	// protocol it does not support yet.
	for _, p := range protos {
		res[p.name] = map[string][]writeSample{}
		for _, t := range targets {
			body, err := p.body(t.name, 0, clock.next(p.metric+t.name+"0"))
			if err != nil {
				return err
			}
			code, msg, err := t.post(p, body)
			switch {
			case err != nil:
				return fmt.Errorf("%s %s: %w", p.name, t.name, err)
			case code/100 == 2:
				accepted[p.metric+"/"+t.name]++
			case t.name == "promgate" && (code == http.StatusUnsupportedMediaType || code == http.StatusForbidden):
				refused[p.name] = fmt.Sprintf("refused (%d)", code)
				why[p.name] = errorMessage(msg)
			default:
				return fmt.Errorf("%s %s: status %d: %.300s", p.name, t.name, code, msg)
			}
		}
	}

	var mu sync.Mutex
	for rep := range reps {
		for pi := range protos {
			p := protos[(pi+rep)%len(protos)]
			for ti := range targets {
				t := targets[(ti+rep)%len(targets)]
				if t.name == "promgate" && refused[p.name] != "" {
					continue
				}
				g0, p0 := cpuTimes([]int{gate.pid()}), cpuTimes([]int{prom.pid()})
				start := time.Now()
				end := start.Add(d)
				var wg sync.WaitGroup
				var n int64
				var firstErr error
				for w := range conns {
					wg.Go(func() {
						for time.Now().Before(end) {
							body, err := p.body(t.name, w, clock.next(p.metric+t.name+strconv.Itoa(w)))
							if err == nil {
								var code int
								var msg string
								code, msg, err = t.post(p, body)
								if err == nil && code/100 != 2 {
									err = fmt.Errorf("status %d: %.300s", code, msg)
								}
							}
							mu.Lock()
							if err != nil {
								if firstErr == nil {
									firstErr = err
								}
								mu.Unlock()
								return
							}
							n++
							accepted[p.metric+"/"+t.name]++
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				s := writeSample{requests: n, elapsed: time.Since(start),
					promCPU: cpuTimes([]int{prom.pid()}) - p0}
				if t.name == "promgate" {
					s.gateCPU = cpuTimes([]int{gate.pid()}) - g0
				}
				if firstErr != nil {
					return fmt.Errorf("%s %s: %w", p.name, t.name, firstErr)
				}
				res[p.name][t.name] = append(res[p.name][t.name], s)
			}
		}
	}
	for _, p := range []*proc{prom, gate} {
		if err := p.alive(); err != nil {
			return err
		}
	}

	// Every accepted batch landed whole, and nothing else.
	evalAt := time.Now().Add(time.Minute).Unix()
	window := int(time.Since(begin).Seconds()) + 120
	for _, p := range protos {
		for _, t := range targets {
			want := accepted[p.metric+"/"+t.name] * writeBatch
			got, err := countSamples(prom.url, fmt.Sprintf(`sum(count_over_time(%s{target=%q}[%ds]))`, p.metric, t.name, window), evalAt)
			if err != nil {
				return fmt.Errorf("%s %s: counting the samples: %w", p.name, t.name, err)
			}
			if got != want {
				return fmt.Errorf("%s %s: Prometheus holds %d samples, %d were accepted", p.name, t.name, got, want)
			}
		}
	}

	fmt.Fprintf(out, "\nwrite: batches of %d samples over %d series, %d client(s), %d repetitions × %s per target, interleaved; upstream %s; every accepted sample found in Prometheus\n",
		writeBatch, writeSeries, conns, reps, d, versionLine(bin))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "protocol\ttarget\tsamples/s\t(runs)\t×direct\tCPU model\tpromgate CPU µs/1,000 samples\tPrometheus CPU µs/1,000 samples\t")
	var missed []string
	for _, p := range protos {
		direct := summarizeWrite(res[p.name]["direct"], nil)
		fmt.Fprintf(tw, "%s\tdirect\t%.0f\t%s\t\t\t\t%.0f\t\n", p.name, direct.rate, direct.runs, direct.promCPU)
		if r := refused[p.name]; r != "" {
			fmt.Fprintf(tw, "\tpromgate\t%s\t\t\t\t\t\t\n", r)
			missed = append(missed, fmt.Sprintf("%s: promgate %s: %s", p.name, r, why[p.name]))
			continue
		}
		g := summarizeWrite(res[p.name]["promgate"], res[p.name]["direct"])
		// The ratio the CPU times predict when the servers' CPU is the
		// bottleneck, as in the table of the read cases: less noisy than
		// the rate of one client, which waits on the machine's scheduling.
		model := 0.0
		if g.promCPU+g.gateCPU > 0 {
			model = direct.promCPU / (g.promCPU + g.gateCPU)
		}
		fmt.Fprintf(tw, "\tpromgate\t%.0f\t%s\t%.2f\t%.2f\t%.0f\t%.0f\t\n", g.rate, g.runs, g.ratio, model, g.gateCPU, g.promCPU)
		if g.ratio < 0.9 {
			missed = append(missed, fmt.Sprintf("%s: promgate at %.2f of direct (< 0.90)", p.name, g.ratio))
		}
		if model < 0.9 {
			missed = append(missed, fmt.Sprintf("%s: the CPU model predicts %.2f of direct (< 0.90): promgate's %.0f µs per 1,000 samples against Prometheus' %.0f", p.name, model, g.gateCPU, direct.promCPU))
		}
	}
	tw.Flush()
	if len(missed) == 0 {
		fmt.Fprintf(out, "write: goal met, ≥ 0.9 of direct on each (%s)\n", time.Since(begin).Round(time.Second))
	} else {
		fmt.Fprintf(out, "write: goal missed (%s):\n", time.Since(begin).Round(time.Second))
		for _, m := range missed {
			fmt.Fprintln(out, "  "+m)
		}
	}
	return nil
}

// errorMessage is the error of Prometheus' JSON error envelope, or the
// start of the body.
func errorMessage(body string) string {
	var env struct{ Error string }
	if json.Unmarshal([]byte(body), &env) == nil && env.Error != "" {
		return env.Error
	}
	return fmt.Sprintf("%.200s", strings.TrimSpace(body))
}

type writeSummary struct {
	rate, ratio      float64
	gateCPU, promCPU float64 // µs per 1,000 samples
	runs             string  // the lowest and highest rate of the runs
}

func summarizeWrite(ss, direct []writeSample) writeSummary {
	var out writeSummary
	var rates, ratios []float64
	var req int64
	var g, p time.Duration
	for i, s := range ss {
		rates = append(rates, s.rate())
		if i < len(direct) && direct[i].rate() > 0 {
			ratios = append(ratios, s.rate()/direct[i].rate())
		}
		req += s.requests
		g += s.gateCPU
		p += s.promCPU
	}
	out.rate, out.ratio = median(rates), median(ratios)
	if len(rates) > 0 {
		out.runs = fmt.Sprintf("%.0fk–%.0fk", slices.Min(rates)/1000, slices.Max(rates)/1000)
	}
	if k := float64(req*writeBatch) / 1000; k > 0 {
		out.gateCPU = float64(g.Microseconds()) / k
		out.promCPU = float64(p.Microseconds()) / k
	}
	return out
}

// countSamples evaluates a query returning one number at time at.
func countSamples(promURL, q string, at int64) (int64, error) {
	a, err := fetch(promURL+"/api/v1/query?"+url.Values{"query": {q}, "time": {strconv.FormatInt(at, 10)}}.Encode(), nil, false)
	if err != nil {
		return 0, err
	}
	d, err := dataOf(a, false)
	if err != nil {
		return 0, err
	}
	m, _ := d.(map[string]any)
	res, _ := m["result"].([]any)
	if len(res) == 0 {
		return 0, nil
	}
	r, _ := res[0].(map[string]any)
	v, _ := r["value"].([]any)
	if len(v) != 2 {
		return 0, fmt.Errorf("unexpected answer %s", a.body)
	}
	s, _ := v[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	return int64(f), err
}

func versionLine(bin string) string {
	v, err := testenv.VersionOf(bin)
	if err != nil {
		return "Prometheus (unknown version)"
	}
	return "Prometheus " + v.String()
}
