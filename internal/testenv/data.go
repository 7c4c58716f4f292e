// Package testenv is what promgate's end-to-end tests, its benchmark, its
// soak and its demo share: the data they load into Prometheus and the
// servers they start on 127.0.0.1.
//
// This file is the deterministic data generator of the oracle test: it builds a few thousand series (counters, gauges, a histogram, series that
// differ only in their metric name, …) over two hours ending at BaseTime, and
// writes them as OpenMetrics text for `promtool tsdb create-blocks-from
// openmetrics`, either whole (the shared Prometheus) or restricted to the
// series a policy allows (the oracle Prometheus of that policy). Native
// histograms, which OpenMetrics text cannot carry, are written by remote
// write (histograms.go).
package testenv

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// The generated data covers [BaseTime-Span, BaseTime] at one sample every Step
// seconds. BaseTime is a fixed instant in the past, aligned to a 2h TSDB block
// boundary; Prometheus must run with a retention long enough to keep it.
const (
	BaseTime = 1699999200 // 2023-11-14T22:00:00Z
	Span     = 2 * 3600
	Step     = 30
	// StartTime is the timestamp of the first sample.
	StartTime = BaseTime - Span
)

// Sample is one point of a series; T is in unix seconds.
type Sample struct {
	T int64
	V float64
}

// Series is one time series: its labels (including __name__) and samples in
// time order.
type Series struct {
	Labels  map[string]string
	Samples []Sample
	// Histograms are the samples of a native histogram series (Samples
	// is then empty).
	Histograms []HistogramSample
}

// Name is the series' metric name.
func (s *Series) Name() string { return s.Labels[labels.MetricName] }

// Key renders the label set canonically, for sorting and tests.
func (s *Series) Key() string { return LabelsKey(s.Labels) }

// Family is an OpenMetrics metric family: all of its series are written
// together under one `# TYPE` line, as the format requires.
type Family struct {
	Name   string // family name, e.g. "http_requests" for http_requests_total
	Type   string // counter, gauge or histogram
	Series []*Series
	// Native families hold native histograms, which OpenMetrics text
	// cannot carry: WriteOpenMetrics leaves them out, RemoteWrite sends
	// them.
	Native bool
}

// Dataset is everything the generator produced.
type Dataset struct {
	Families []*Family
}

// AllSeries lists every series of the dataset in family order.
func (d *Dataset) AllSeries() []*Series {
	var out []*Series
	for _, f := range d.Families {
		out = append(out, f.Series...)
	}
	return out
}

// host is a monitored machine; its attributes become labels of its series.
type host struct {
	instance  string
	team      string
	env       string
	namespace string
	shared    bool // node_* and up{job="node"} series get shared="true"
}

// Namespaces of the generated targets. "ns-alice-dev" checks that the
// templated policy `{namespace="ns-{{ .User }}"}` is an exact match.
var namespaces = []string{"ns-alice", "ns-bob", "ns-carol", "ns-alice-dev", "ns-dave"}

func hosts() []host {
	const n = 30
	out := make([]host, n)
	for i := range out {
		env := "dev"
		if i%2 == 0 {
			env = "prod"
		}
		out[i] = host{
			instance:  fmt.Sprintf("host-%02d:9100", i),
			team:      []string{"a", "b", "c"}[i%3],
			env:       env,
			namespace: namespaces[i%len(namespaces)],
			shared:    i%4 == 0,
		}
	}
	return out
}

// gen holds the random source and the family being built.
type gen struct {
	rng *rand.Rand
	ds  *Dataset
	cur *Family
}

func (g *gen) family(name, typ string) {
	g.cur = &Family{Name: name, Type: typ}
	g.ds.Families = append(g.ds.Families, g.cur)
}

// add appends a series named name with the given labels and values produced
// by next for each timestamp in [from, to].
func (g *gen) add(name string, lbls map[string]string, from, to int64, next func(t int64) float64) {
	m := make(map[string]string, len(lbls)+1)
	for k, v := range lbls {
		if v != "" {
			m[k] = v
		}
	}
	m[labels.MetricName] = name
	s := &Series{Labels: m}
	for t := from; t <= to; t += Step {
		s.Samples = append(s.Samples, Sample{T: t, V: next(t)})
	}
	g.cur.Series = append(g.cur.Series, s)
}

// dyadic returns a random multiple of 1/1024 in [0, max): such values add up
// exactly in float64, so sums do not depend on the order of the series.
func (g *gen) dyadic(max float64) float64 {
	return float64(g.rng.IntN(int(max*1024))) / 1024
}

// counter returns a monotonic counter with occasional resets.
func (g *gen) counter(maxInc float64, resetEvery int) func(int64) float64 {
	v := float64(g.rng.IntN(1000))
	first := true
	return func(int64) float64 {
		if first {
			first = false
			return v
		}
		if resetEvery > 0 && g.rng.IntN(resetEvery) == 0 {
			v = float64(g.rng.IntN(5))
			return v
		}
		v += g.dyadic(maxInc)
		return v
	}
}

// gauge returns a random walk around center.
func (g *gen) gauge(center, spread float64) func(int64) float64 {
	v := center + g.dyadic(2*spread) - spread
	return func(int64) float64 {
		v += g.dyadic(spread/5) - spread/10
		return v
	}
}

func (t host) labels(job string, extra ...string) map[string]string {
	m := map[string]string{
		"job":       job,
		"instance":  t.instance,
		"team":      t.team,
		"env":       t.env,
		"namespace": t.namespace,
	}
	if job == "node" && t.shared {
		m["shared"] = "true"
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// Histogram buckets of http_request_duration_seconds.
var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, math.Inf(1)}

// GenerateOptions choose the optional parts of the data.
type GenerateOptions struct {
	// UTF8Names adds series with UTF-8 metric and label names, as
	// OpenTelemetry writes them ({"http.server.duration",
	// "service.name"="checkout"}). Prometheus 3 stores them; promtool 2.x
	// cannot backfill them (its OpenMetrics parser wants a legacy name
	// after # TYPE), so the data of a 2.x run leaves them out.
	UTF8Names bool
	// NativeHistograms adds native histogram series (integer and float,
	// exponential and custom buckets): Prometheus 3 takes them by remote
	// write (Dataset.RemoteWrite); Prometheus 2.x needs a feature flag for
	// them, so the data of a 2.x run leaves them out.
	NativeHistograms bool
}

// Generate builds the dataset without UTF-8 names. It is deterministic: the
// same call returns the same series and values on every run.
func Generate() *Dataset { return GenerateWith(GenerateOptions{}) }

// GenerateWith builds the dataset with the parts o asks for. The series of
// Generate come first and are the same whatever o says.
func GenerateWith(o GenerateOptions) *Dataset {
	ds := generate()
	if o.UTF8Names {
		addUTF8(ds)
	}
	if o.NativeHistograms {
		addNativeHistograms(ds, o.UTF8Names)
	}
	return ds
}

func generate() *Dataset {
	g := &gen{rng: rand.New(rand.NewPCG(20231114, 42)), ds: &Dataset{}}
	ts := hosts()
	const from, to = StartTime, BaseTime

	g.family("up", "gauge")
	for _, job := range []string{"node", "api"} {
		for i, t := range ts {
			down := job == "api" && i == 7
			g.add("up", t.labels(job), from, to, func(tt int64) float64 {
				if down && tt > BaseTime-45*60 && tt < BaseTime-20*60 {
					return 0
				}
				return 1
			})
		}
	}

	g.family("node_cpu_temp", "gauge")
	for _, t := range ts {
		g.add("node_cpu_temp", t.labels("node"), from, to, g.gauge(60, 15))
	}
	g.family("node_memory_bytes", "gauge")
	for _, t := range ts {
		base := float64(1<<30) * float64(2+g.rng.IntN(30))
		walk := g.gauge(0, 1<<26)
		g.add("node_memory_bytes", t.labels("node"), from, to, func(tt int64) float64 { return base + math.Round(walk(tt)) })
	}
	// node_load1 and node_load5 have identical label sets: they differ only
	// in their name.
	for _, name := range []string{"node_load1", "node_load5"} {
		g.family(name, "gauge")
		for _, t := range ts {
			g.add(name, t.labels("node"), from, to, g.gauge(4, 3))
		}
	}
	g.family("node_cpu_seconds", "counter")
	for _, t := range ts {
		for cpu := range 4 {
			for _, mode := range []string{"idle", "user", "system", "iowait"} {
				g.add("node_cpu_seconds_total", t.labels("node", "cpu", strconv.Itoa(cpu), "mode", mode), from, to, g.counter(30, 0))
			}
		}
	}
	g.family("node_network_receive_bytes", "counter")
	for _, t := range ts {
		for _, dev := range []string{"eth0", "eth1", "lo"} {
			g.add("node_network_receive_bytes_total", t.labels("node", "device", dev), from, to, g.counter(1<<20, 150))
		}
	}
	// A few readings that are sometimes NaN or infinite.
	g.family("node_sensor_reading", "gauge")
	for i, t := range ts {
		if i%10 != 0 {
			continue
		}
		walk := g.gauge(10, 5)
		g.add("node_sensor_reading", t.labels("node", "sensor", "s1"), from, to, func(tt int64) float64 {
			v := walk(tt)
			switch (tt / Step) % 37 {
			case 5:
				return math.NaN()
			case 17:
				return math.Inf(1)
			case 29:
				return math.Inf(-1)
			}
			return v
		})
	}

	g.family("http_requests", "counter")
	for _, t := range ts {
		for _, code := range []string{"200", "404", "500"} {
			for _, method := range []string{"GET", "POST", "PUT"} {
				g.add("http_requests_total", t.labels("api", "code", code, "method", method), from, to, g.counter(50, 200))
			}
		}
	}

	g.family("http_request_duration_seconds", "histogram")
	for _, t := range ts {
		for _, method := range []string{"GET", "POST"} {
			for _, handler := range []string{"/api", "/login"} {
				g.histogram(t.labels("api", "method", method, "handler", handler), from, to)
			}
		}
	}

	// Secret and non-secret series of the same metric (the GEM exclusion
	// policy hides the secret ones).
	g.family("sensitive_requests", "counter")
	for _, t := range ts {
		for _, secret := range []string{"true", "false"} {
			for _, path := range []string{"/a", "/b"} {
				g.add("sensitive_requests_total", t.labels("api", "secret", secret, "path", path), from, to, g.counter(10, 300))
			}
		}
	}

	// foo_a and foo_b have the same label sets: series that differ only in
	// their name. foo_c exists only during the first hour.
	for _, name := range []string{"foo_a", "foo_b", "foo_c"} {
		g.family(name, "gauge")
		for _, team := range []string{"a", "b", "c"} {
			for x := 1; x <= 4; x++ {
				if name == "foo_c" && x > 2 {
					continue
				}
				end := int64(to)
				if name == "foo_c" {
					end = BaseTime - 3600
				}
				g.add(name, map[string]string{"team": team, "x": strconv.Itoa(x)}, from, end, g.gauge(100, 50))
			}
		}
	}

	// Series without team, env or namespace labels.
	g.family("go_goroutines", "gauge")
	for i := range 4 {
		g.add("go_goroutines", map[string]string{"job": "infra", "instance": fmt.Sprintf("infra-%d:9090", i)}, from, to, g.gauge(200, 50))
	}
	return g.ds
}

// addUTF8 adds the series with UTF-8 names, from a random source of their
// own so that the other series do not change. Dotted metric and label
// names, one non-ASCII label name, two metrics that differ only in their
// (dotted) name, and team and namespace labels, so that every oracle
// policy sees some of them.
func addUTF8(ds *Dataset) {
	g := &gen{rng: rand.New(rand.NewPCG(20231114, 8)), ds: ds}
	const from, to = StartTime, BaseTime
	services := []string{"checkout", "cart", "payment"}
	type otelTarget struct{ service, team, namespace, instance string }
	var targets []otelTarget
	for i := range 12 {
		targets = append(targets, otelTarget{
			service:   services[i%3],
			team:      []string{"a", "b", "c"}[(i/3)%3],
			namespace: namespaces[i%len(namespaces)],
			instance:  fmt.Sprintf("otel-%02d:4317", i),
		})
	}
	lbls := func(t otelTarget, extra ...string) map[string]string {
		m := map[string]string{"job": "otel", "instance": t.instance, "team": t.team, "namespace": t.namespace, "service.name": t.service}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	// http.server.duration and http.client.duration have identical label
	// sets: they differ only in their name.
	for _, name := range []string{"http.server.duration", "http.client.duration"} {
		g.family(name, "gauge")
		for _, t := range targets {
			for _, method := range []string{"GET", "POST"} {
				g.add(name, lbls(t, "http.request.method", method), from, to, g.gauge(0.5, 0.25))
			}
		}
	}
	g.family("http.server.request.count", "counter")
	for _, t := range targets {
		for _, code := range []string{"200", "500"} {
			g.add("http.server.request.count_total", lbls(t, "http.response.status_code", code), from, to, g.counter(20, 200))
		}
	}
	// A legacy metric name with UTF-8 label names, one not ASCII.
	g.family("rpc_server_calls", "counter")
	for i, t := range targets {
		region := []string{"eu", "us"}[i%2]
		g.add("rpc_server_calls_total", lbls(t, "rpc.method", "Get", "région", region), from, to, g.counter(10, 0))
	}
}

// histogram adds the _bucket, _sum and _count series of one histogram.
func (g *gen) histogram(lbls map[string]string, from, to int64) {
	const name = "http_request_duration_seconds"
	n := int((to-from)/Step) + 1
	counts := make([][]float64, len(buckets)) // per bucket, per sample
	for i := range counts {
		counts[i] = make([]float64, n)
	}
	sums := make([]float64, n)
	cur := make([]float64, len(buckets))
	var sum float64
	scale := 0.05 + float64(g.rng.IntN(8))*0.05
	for i := range n {
		for range g.rng.IntN(20) {
			lat := math.Round(g.rng.ExpFloat64()*scale*1024) / 1024
			for b, le := range buckets {
				if lat <= le {
					cur[b]++
				}
			}
			sum += lat
		}
		for b := range buckets {
			counts[b][i] = cur[b]
		}
		sums[i] = sum
	}
	withLE := func(le float64) map[string]string {
		m := make(map[string]string, len(lbls)+1)
		for k, v := range lbls {
			m[k] = v
		}
		m["le"] = FormatFloat(le)
		return m
	}
	for b, le := range buckets {
		vals := counts[b]
		g.add(name+"_bucket", withLE(le), from, to, indexed(from, vals))
	}
	g.add(name+"_sum", lbls, from, to, indexed(from, sums))
	g.add(name+"_count", lbls, from, to, indexed(from, counts[len(buckets)-1]))
}

func indexed(from int64, vals []float64) func(int64) float64 {
	return func(t int64) float64 { return vals[(t-from)/Step] }
}

// Selector is one conjunction of label matchers, as in a policy.
type Selector []*labels.Matcher

// ParseSelectors parses PromQL selectors such as `{team="a", env!="prod"}`.
func ParseSelectors(texts ...string) ([]Selector, error) {
	p := parser.NewParser(parser.Options{})
	out := make([]Selector, 0, len(texts))
	for _, s := range texts {
		ms, err := p.ParseMetricSelector(s)
		if err != nil {
			return nil, fmt.Errorf("selector %q: %w", s, err)
		}
		out = append(out, ms)
	}
	return out, nil
}

// Matches reports whether a series' labels satisfy every matcher; a missing
// label has the empty value, as in Prometheus.
func (s Selector) Matches(lbls map[string]string) bool {
	for _, m := range s {
		if !m.Matches(lbls[m.Name]) {
			return false
		}
	}
	return true
}

// Filter returns the series matching at least one selector (all series when
// sels is nil, as for an allow_all policy).
func (d *Dataset) Filter(sels []Selector) *Dataset {
	if sels == nil {
		return d
	}
	out := &Dataset{}
	for _, f := range d.Families {
		nf := &Family{Name: f.Name, Type: f.Type, Native: f.Native}
		for _, s := range f.Series {
			for _, sel := range sels {
				if sel.Matches(s.Labels) {
					nf.Series = append(nf.Series, s)
					break
				}
			}
		}
		if len(nf.Series) > 0 {
			out.Families = append(out.Families, nf)
		}
	}
	return out
}

// WriteOpenMetrics writes the dataset in the OpenMetrics text format: each
// family under its `# TYPE` line, each series' samples in time order, and the
// final `# EOF`.
func (d *Dataset) WriteOpenMetrics(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var line []byte
	for _, f := range d.Families {
		if f.Native {
			continue
		}
		fmt.Fprintf(bw, "# TYPE %s %s\n", omName(f.Name, model.LegacyValidation.IsValidMetricName), f.Type)
		for _, s := range f.Series {
			prefix := seriesText(s.Labels)
			for _, smp := range s.Samples {
				line = append(line[:0], prefix...)
				line = append(line, ' ')
				line = append(line, FormatFloat(smp.V)...)
				line = append(line, ' ')
				line = strconv.AppendInt(line, smp.T, 10)
				line = append(line, '\n')
				bw.Write(line)
			}
		}
	}
	bw.WriteString("# EOF\n")
	return bw.Flush()
}

// WriteOpenMetricsFile writes the dataset to path.
func (d *Dataset) WriteOpenMetricsFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := d.WriteOpenMetrics(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// seriesText renders `name{a="1",b="2"}` with labels sorted by name; a
// UTF-8 metric name is written quoted inside the braces and a UTF-8 label
// name quoted (`{"a.b","c.d"="1"}`), as Prometheus 3's parsers read them.
func seriesText(lbls map[string]string) string {
	var b strings.Builder
	name := lbls[labels.MetricName]
	first := true
	if model.LegacyValidation.IsValidMetricName(name) {
		b.WriteString(name)
		b.WriteByte('{')
	} else {
		b.WriteByte('{')
		b.WriteString(omName(name, nil))
		first = false
	}
	names := sortedNames(lbls)
	for _, n := range names {
		if n == labels.MetricName {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(omName(n, model.LegacyValidation.IsValidLabelName))
		b.WriteString(`="`)
		b.WriteString(escapeLabelValue(lbls[n]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// omName writes a name as is when legacy says it may be, else quoted.
func omName(n string, legacy func(string) bool) string {
	if legacy != nil && legacy(n) {
		return n
	}
	return `"` + escapeLabelValue(n) + `"`
}

func escapeLabelValue(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func sortedNames(lbls map[string]string) []string {
	names := make([]string, 0, len(lbls))
	for n := range lbls {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LabelsKey renders a label set canonically: sorted name="value" pairs.
func LabelsKey(lbls map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range sortedNames(lbls) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(lbls[n]))
	}
	b.WriteByte('}')
	return b.String()
}

// FormatFloat renders a value as OpenMetrics and Prometheus do: NaN, +Inf,
// -Inf, or the shortest exact decimal.
func FormatFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
