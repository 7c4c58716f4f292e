package promql

// The unit oracle: the rewriter's promise (package comment) checked by
// running queries, not by comparing strings. For each policy shape, every
// query of oracleQueries, rewritten, is evaluated by the PromQL engine on a
// storage holding every series; the original query is evaluated on a storage
// holding only the series the policy allows. The answers must be equal, and
// the same query left unrewritten must differ often enough to show that the
// comparison can fail. The storage is a list of series in memory (the
// engine asks nothing else of it): a TSDB would pull the remote-storage and
// cloud SDK modules into the build for no gain at this size.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// oracleSeries is one series of the test data.
type oracleSeries struct {
	lbls    labels.Labels
	samples []chunks.Sample
}

// oracleData is a small multi-tenant data set, one sample a minute from 0 to
// 120m: foo_a and foo_b have the same label sets (series that differ only
// in their name), foo_c stops at 60m, node_load1 and node_load5 differ only
// in name too, some series have no team, secret series sit beside
// non-secret ones of the same metric, and one up series is 0 for a while.
func oracleData() []oracleSeries {
	var out []oracleSeries
	// add adds a series whose value at minute m is f(m), from minute 0 to
	// last.
	add := func(last int, f func(m float64) float64, kv ...string) {
		s := oracleSeries{lbls: labels.FromStrings(kv...)}
		for m := 0; m <= last; m++ {
			s.samples = append(s.samples, fsample{t: int64(m) * time.Minute.Milliseconds(), f: f(float64(m))})
		}
		out = append(out, s)
	}
	// wave is a gauge that rises to minute 60, then falls.
	wave := func(base, up, down float64) func(float64) float64 {
		return func(m float64) float64 {
			if m <= 60 {
				return base + up*m
			}
			return base + up*60 - down*(m-60)
		}
	}
	counter := func(rate float64) func(float64) float64 { return func(m float64) float64 { return rate * m } }
	teams := []string{"a", "b", "c"}
	for i, team := range teams {
		fi := float64(i)
		for x := 1; x <= 2; x++ {
			fx := float64(x)
			add(120, wave(10*fi+fx, fx, fi+1), "__name__", "foo_a", "team", team, "x", fmt.Sprint(x))
			add(120, wave(200+10*fi+fx, -(fi+1), -fx), "__name__", "foo_b", "team", team, "x", fmt.Sprint(x))
			add(60, wave(5*fi+fx, 3, 0), "__name__", "foo_c", "team", team, "x", fmt.Sprint(x))
		}
	}
	for h := range 6 {
		fh := float64(h)
		team := teams[h%3]
		inst := fmt.Sprintf("host-%d:9100", h)
		env := []string{"prod", "dev"}[h%2]
		shared := []string{"true", "false"}[h/3]
		add(120, func(float64) float64 { return 1 }, "__name__", "up", "job", "node", "instance", inst, "team", team, "env", env)
		up := func(float64) float64 { return 1 }
		if h == 4 {
			up = func(m float64) float64 { // down from 51m to 80m
				if m > 50 && m <= 80 {
					return 0
				}
				return 1
			}
		}
		add(120, up, "__name__", "up", "job", "api", "instance", inst, "team", team, "env", env)
		add(120, wave(fh, float64(h%3+1), float64(h%2+1)), "__name__", "node_load1", "instance", inst, "team", team, "env", env, "shared", shared)
		add(120, wave(2*fh, 1, -1), "__name__", "node_load5", "instance", inst, "team", team, "env", env, "shared", shared)
		for c, code := range []string{"200", "500"} {
			add(120, counter((fh+1)*float64(c*3+1)), "__name__", "http_requests_total", "job", "api", "instance", inst, "team", team, "env", env, "code", code)
		}
		for _, secret := range []string{"true", "false"} {
			add(120, counter(fh+float64(len(secret))), "__name__", "sensitive_requests_total", "job", "api", "instance", inst, "team", team, "secret", secret)
		}
	}
	// Info series for the hosts' jobs (info() joins them on job and
	// instance), one of them changing its version at 60m, and a second
	// info metric for the api job.
	for h := range 6 {
		inst := fmt.Sprintf("host-%d:9100", h)
		team := teams[h%3]
		for _, job := range []string{"node", "api"} {
			version := func(m float64) string {
				if h == 2 && job == "api" && m > 60 {
					return "2"
				}
				return "1"
			}
			for _, v := range []string{"1", "2"} {
				// Hosts 3 to 5 are described without a team, as an
				// OpenTelemetry resource usually is: their info
				// series belong to no tenant of a team policy.
				kv := []string{"__name__", "target_info", "job", job, "instance", inst, "k8s_cluster", fmt.Sprintf("c-%d", h%2), "version", v}
				if h < 3 {
					kv = append(kv, "team", team)
				}
				s := oracleSeries{lbls: labels.FromStrings(kv...)}
				for m := 0; m <= 120; m++ {
					if version(float64(m)) == v {
						s.samples = append(s.samples, fsample{t: int64(m) * time.Minute.Milliseconds(), f: 1})
					}
				}
				if len(s.samples) > 0 {
					out = append(out, s)
				}
			}
		}
		add(120, func(float64) float64 { return 1 }, "__name__", "build_info", "job", "api", "instance", inst, "team", team, "revision", fmt.Sprintf("r%d", h%3))
	}
	// Native histograms: an rpc latency per team and host parity.
	for i, team := range teams {
		for p := range 2 {
			s := oracleSeries{lbls: labels.FromStrings("__name__", "rpc_duration_seconds", "team", team, "parity", fmt.Sprint(p))}
			for m := 0; m <= 120; m++ {
				s.samples = append(s.samples, hsample{t: int64(m) * time.Minute.Milliseconds(), h: nativeHistogram(uint64(m*(i+p+1)), float64(m*(i+1)))})
			}
			out = append(out, s)
		}
	}
	// Float gauge histograms: disk latency per host, the shared hosts'
	// with shared="true".
	for h := range 6 {
		s := oracleSeries{lbls: labels.FromStrings("__name__", "node_disk_io_seconds", "instance", fmt.Sprintf("host-%d:9100", h),
			"team", teams[h%3], "env", []string{"prod", "dev"}[h%2], "shared", []string{"true", "false"}[h/3])}
		for m := 0; m <= 120; m++ {
			s.samples = append(s.samples, fhsample{t: int64(m) * time.Minute.Milliseconds(), h: gaugeHistogram(float64(h+1), float64(m%7))})
		}
		out = append(out, s)
	}
	for i := range 2 {
		add(120, wave(100+float64(i), 1, 1), "__name__", "go_goroutines", "job", "infra", "instance", fmt.Sprintf("infra-%d:9090", i))
	}
	return out
}

// fsample is a float sample.
type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) F() float64                    { return s.f }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }

// hsample is a native histogram sample.
type hsample struct {
	t int64
	h *histogram.Histogram
}

func (s hsample) T() int64                      { return s.t }
func (s hsample) ST() int64                     { return 0 }
func (s hsample) F() float64                    { return 0 }
func (s hsample) H() *histogram.Histogram       { return s.h }
func (s hsample) FH() *histogram.FloatHistogram { return s.h.ToFloat(nil) }
func (s hsample) Type() chunkenc.ValueType      { return chunkenc.ValHistogram }
func (s hsample) Copy() chunks.Sample           { return hsample{s.t, s.h.Copy()} }

// fhsample is a float native histogram sample.
type fhsample struct {
	t int64
	h *histogram.FloatHistogram
}

func (s fhsample) T() int64                      { return s.t }
func (s fhsample) ST() int64                     { return 0 }
func (s fhsample) F() float64                    { return 0 }
func (s fhsample) H() *histogram.Histogram       { return nil }
func (s fhsample) FH() *histogram.FloatHistogram { return s.h }
func (s fhsample) Type() chunkenc.ValueType      { return chunkenc.ValFloatHistogram }
func (s fhsample) Copy() chunks.Sample           { return fhsample{s.t, s.h.Copy()} }

// gaugeHistogram is a float gauge histogram over the zero bucket and two
// exponential buckets of schema 1, (0.5, 0.707], (1, 1.414], whose
// weights move with step.
func gaugeHistogram(scale, step float64) *histogram.FloatHistogram {
	z, a, b := 0.25*step, scale, scale*0.5+step
	return &histogram.FloatHistogram{
		CounterResetHint: histogram.GaugeType, Schema: 1, ZeroThreshold: 0.001, ZeroCount: z,
		Count: z + a + b, Sum: 0.6*a + 1.2*b,
		PositiveSpans:   []histogram.Span{{Offset: -1, Length: 1}, {Offset: 1, Length: 1}},
		PositiveBuckets: []float64{a, b},
	}
}

// nativeHistogram is a counter histogram of count observations spread over
// three exponential buckets (1, 2], (2, 4], (4, 8].
func nativeHistogram(count uint64, sum float64) *histogram.Histogram {
	a, b := count/2, count/3
	c := count - a - b
	return &histogram.Histogram{
		Schema: 0, Count: count, Sum: sum,
		PositiveSpans:   []histogram.Span{{Offset: 1, Length: 3}},
		PositiveBuckets: []int64{int64(a), int64(b) - int64(a), int64(c) - int64(b)},
	}
}

// memStorage holds series in memory, sorted by label set; Select returns
// those every matcher matches. The engine needs nothing more.
func memStorage(series []oracleSeries) storage.Queryable {
	entries := make([]storage.Series, 0, len(series))
	for _, s := range series {
		entries = append(entries, storage.NewListSeries(s.lbls, s.samples))
	}
	slices.SortFunc(entries, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
			for _, s := range entries {
				if matchAll(ms, s.Labels()) {
					out = append(out, s)
				}
			}
			return &listSeriesSet{list: out, i: -1}
		},
	}}
}

func matchAll(ms []*labels.Matcher, l labels.Labels) bool {
	return !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(l.Get(m.Name)) })
}

type listSeriesSet struct {
	list []storage.Series
	i    int
}

func (s *listSeriesSet) Next() bool                        { s.i++; return s.i < len(s.list) }
func (s *listSeriesSet) At() storage.Series                { return s.list[s.i] }
func (s *listSeriesSet) Err() error                        { return nil }
func (s *listSeriesSet) Warnings() annotations.Annotations { return nil }

// oraclePolicy is a policy shape of the unit oracle.
type oraclePolicy struct {
	name      string
	selectors []string
	// minDiffering is the least number of evaluations whose answer, with
	// the query left unrewritten on the full storage, differs from the
	// oracle's: the table must be able to tell a leak. Today's counts less
	// about 10 %.
	minDiffering int
}

var oraclePolicies = []oraclePolicy{
	{"one selector", []string{`{team="a"}`}, 235},
	{"several selectors", []string{`{team="b"}`, `{__name__=~"node_.*", shared="true"}`}, 235},
	{"regex", []string{`{team=~"a|c"}`}, 230},
	{"negative matchers", []string{`{team="c", env!="prod"}`, `{__name__=~"http_.*", code!~"5..", team="a"}`, `{job="node", instance=~"host-[0-3]:.*", team!="c"}`}, 245},
	{"name regex union", []string{`{__name__=~"foo_a|foo_c", team="a"}`, `{__name__=~"foo_b|http_requests_total", team=~"a|b"}`}, 245},
	// Simplified before the rewrite (simplify): equalities on one label
	// merged into a regex, the name's among them; subsumed selectors
	// dropped.
	{"merged equalities", []string{`{team="a"}`, `{team="c"}`}, 340},
	{"merged name equalities", []string{`{__name__="foo_a", team="b"}`, `{__name__="foo_b", team="b"}`, `{team="b", __name__="up"}`, `{__name__="node_load1", team="b"}`}, 380},
	{"subsumed selectors", []string{`{team="a", env="prod"}`, `{team="a"}`, `{team="a", __name__="up"}`, `{x="1", team="a", __name__="foo_a"}`}, 345},
	{"exclusion of secret series", []string{`{secret!="true", __name__="sensitive_requests_total"}`, `{__name__!="sensitive_requests_total"}`}, 28},
}

// oracleQuery is a query of the table; mayFail marks one whose error is the
// point (the rewrite must raise the error the original raises on the
// oracle). Any other error on the oracle fails the test: two equal errors
// prove nothing.
type oracleQuery struct {
	q       string
	mayFail bool
	// refusable marks a construct the Enforcer refuses (ErrUnenforceable)
	// under some policies; under the others it is compared like any query.
	refusable bool
}

var oracleQueries = []oracleQuery{
	// Selectors, with and without a name.
	{q: `foo_a`},
	{q: `node_load1{env="dev"}`},
	{q: `up{team!="a"}`},
	{q: `{__name__=~"foo_.*"}`},
	{q: `{__name__=~"foo_a|foo_b", x="1"}`},
	{q: `{__name__=~"node_load.*|up"}`},
	{q: `{__name__=~".+", team="b"}`},
	{q: `{__name__!~"foo_.*|up", __name__=~".+"}`},
	{q: `sensitive_requests_total`},
	{q: `sum by (secret) (rate(sensitive_requests_total[5m]))`},
	{q: `absent(sensitive_requests_total{secret="true"})`},
	{q: `count by (__name__, secret) ({__name__=~"sensitive.*|foo_b"})`},

	// Aggregations, topk, count_values.
	{q: `sum(foo_a)`},
	{q: `sum by (team) (foo_a)`},
	{q: `avg without (x) ({__name__=~"foo_.*"})`},
	{q: `max by (__name__, team) ({__name__=~"foo_.*"})`},
	{q: `count by (__name__) ({__name__=~".+"})`},
	{q: `count({__name__=~".+"})`},
	{q: `group by (team) (http_requests_total)`},
	{q: `quantile(0.5, node_load1)`},
	{q: `stddev by (env) (node_load5)`},
	{q: `topk(2, foo_a)`},
	{q: `topk by (__name__) (1, {__name__=~"foo_.*"})`},
	{q: `bottomk(2, node_load1)`},
	{q: `topk(scalar(count(go_goroutines) or vector(2)), node_load5)`},
	{q: `count_values("v", up)`},
	{q: `count_values by (team) ("v", floor(foo_b / 10))`},

	// Binary operators.
	{q: `foo_a + foo_b`},
	{q: `foo_a - on (team, x) foo_b`},
	{q: `node_load1 / ignoring (shared) node_load5`},
	{q: `foo_a / ignoring (x) group_left sum by (team) (foo_b)`},
	{q: `sum by (team) (foo_a) * on (team) group_right foo_c`},
	{q: `rate(http_requests_total[5m]) / on (instance) group_left (job) up{job="api"}`},
	{q: `up{job="node"} + on (instance) group_right (env) node_load1`},
	{q: `foo_a and on (team) foo_c`},
	{q: `foo_a or foo_c`},
	{q: `foo_b unless on (team, x) foo_c`},
	{q: `{__name__=~"foo_.*"} and on (team, x) foo_a`},
	{q: `{__name__=~"foo_a|foo_b"} or foo_c`},
	{q: `foo_a > bool 50`},
	{q: `scalar(sum(up)) * up`},
	{q: `vector(1) + on () group_left count(up)`},
	{q: `foo_a * ignoring (x) group_left foo_c`, mayFail: true},

	// Functions over range vectors: the union lifted around them.
	{q: `rate(http_requests_total[5m])`},
	{q: `sum by (team) (rate(http_requests_total[5m]))`},
	{q: `rate({__name__=~"foo_a|http_requests_total"}[5m])`},
	{q: `count_over_time({__name__=~"foo_c|go_goroutines|up"}[10m])`},
	{q: `quantile_over_time(0.9, {__name__=~"foo_b|node_load5"}[10m])`},
	{q: `rate({__name__=~"foo_.*"}[5m])`, mayFail: true},
	{q: `timestamp({__name__=~"foo_a|http_requests_total"})`},
	{q: `timestamp(foo_c)`},

	// absent.
	{q: `absent(foo_a)`},
	{q: `absent(foo_c)`},
	{q: `absent(foo_a{team="b"})`},
	{q: `absent(nonexistent{team="a", job="x"})`},
	{q: `absent(sum(nonexistent))`},
	{q: `absent({__name__=~"foo_.*", team="c"})`},
	{q: `absent_over_time(foo_c[10m])`},
	{q: `absent_over_time(foo_c{team="a"}[10m] offset 30m)`},
	{q: `absent(foo_c @ start())`},

	// label_replace and label_join.
	{q: `label_replace(foo_a, "team", "z$1", "team", "(.*)")`},
	{q: `label_replace({__name__=~"foo_.*"}, "name", "$1", "__name__", "(.+)")`},
	{q: `-label_replace({__name__=~"foo_.*"}, "name", "$1", "__name__", "(.+)")`},
	{q: `label_replace({__name__=~"foo_.*"}, "__name__", "x_$1", "__name__", "foo_(.*)")`},
	{q: `label_join(up, "id", "/", "job", "instance")`},
	{q: `sum by (host) (label_replace(rate(http_requests_total[5m]), "host", "$1", "instance", "([^:]+):.*"))`},

	// Subqueries.
	{q: `max_over_time(rate(http_requests_total[5m])[30m:1m])`},
	{q: `sum_over_time(label_replace({__name__=~"foo_a|foo_b"}, "name", "$1", "__name__", "(.+)")[10m:1m])`},
	{q: `min_over_time(foo_a[10m:])`},
	{q: `last_over_time(sum({__name__=~"foo_.*"})[10m:1m])`},
	{q: `avg_over_time(foo_b[30m:1m] @ 4500)`},

	// @ and offset.
	{q: `foo_a @ 3600`},
	{q: `foo_c @ start()`},
	{q: `foo_a @ end()`},
	{q: `{__name__=~"foo_.*"} offset 10m`},
	{q: `foo_c offset -30m`},
	{q: `rate(http_requests_total[5m] offset 30m)`},
	{q: `sum(rate(http_requests_total[5m] @ end()))`},

	// Top-level range vectors: several queries, merged.
	{q: `foo_a[5m]`},
	{q: `{__name__=~"foo_.*"}[5m]`},
	{q: `node_load1[3m] offset 30m`},
	{q: `foo_a[10m:1m]`},

	// The PromQL of Prometheus 3 (experimental functions, duration
	// expressions, anchored and smoothed ranges, fill modifiers, info(),
	// native histograms).
	{q: `limitk(2, foo_a)`, refusable: true},
	{q: `limitk by (team) (1, node_load1)`, refusable: true},
	{q: `limitk(3, rate(http_requests_total[5m]))`, refusable: true},
	{q: `limit_ratio(0.5, http_requests_total)`},
	{q: `limit_ratio(-0.5, {__name__=~"foo_a|node_load1"})`},
	{q: `sort_by_label(foo_a, "x", "team")`},
	{q: `sort_by_label_desc({__name__=~"node_load.*"}, "instance")`},
	{q: `ts_of_max_over_time(node_load1[30m])`},
	{q: `ts_of_min_over_time(foo_b[30m])`},
	{q: `ts_of_first_over_time(foo_c[30m])`},
	{q: `ts_of_last_over_time({__name__=~"foo_c|http_requests_total"}[10m])`},
	{q: `first_over_time(foo_c[30m])`},
	{q: `mad_over_time(node_load1[30m])`},
	{q: `double_exponential_smoothing(foo_a[30m], 0.5, 0.5)`},
	{q: `integral(node_load5[10m])`},
	{q: `max_of(2, scalar(sum(foo_c)))`},
	{q: `rate(http_requests_total[5m+1m])`},
	{q: `sum_over_time(foo_a[10m] offset (5m * 2))`},
	{q: `min_over_time(foo_b[5m + step()])`},
	{q: `max_over_time(rate(http_requests_total[5m])[20m:step() + 1m])`},
	{q: `increase(http_requests_total[5m] anchored)`},
	{q: `rate(http_requests_total[5m] smoothed)`},
	{q: `delta({__name__=~"foo_a|node_load1"}[10m] anchored)`},
	{q: `foo_c smoothed`},
	{q: `foo_a + fill(0) foo_c`},
	{q: `foo_a - on (team, x) fill_left(1) fill_right(2) foo_c`},
	{q: `node_load1 / on (instance) group_left fill_right(1) up{job="api", env="prod"}`},
	{q: `info(up)`, refusable: true},
	{q: `info(up, {k8s_cluster=~".+"})`, refusable: true},
	{q: `info(rate(http_requests_total[5m]), {__name__="target_info", version="1"})`, refusable: true},
	{q: `info(up{job="api"}, {__name__=~"target_info|build_info"})`, refusable: true},
	{q: `info(foo_a)`, refusable: true},
	{q: `histogram_count(rpc_duration_seconds)`},
	{q: `histogram_quantile(0.9, rate(rpc_duration_seconds[10m]))`},
	{q: `histogram_fraction(0, 4, sum by (team) (rpc_duration_seconds))`},
	{q: `histogram_avg(rate(rpc_duration_seconds[5m]))`},
	{q: `histogram_sum({__name__=~"rpc_.*", parity="1"})`},
	{q: `rpc_duration_seconds{parity="0"}`},
	{q: `rpc_duration_seconds[5m]`},
	{q: `sum by (parity) (rate(rpc_duration_seconds[10m]))`},
	{q: `increase(rpc_duration_seconds[10m]) * 2`},
	{q: `histogram_stddev(rate(rpc_duration_seconds[5m]))`},
	{q: `node_disk_io_seconds`},
	{q: `sum by (team) (node_disk_io_seconds)`},
	{q: `avg(node_disk_io_seconds{env="prod"})`},
	{q: `histogram_quantile(0.5, node_disk_io_seconds{shared="true"})`},
	{q: `histogram_fraction(0, 1, sum(node_disk_io_seconds))`},
	{q: `max_over_time(histogram_count(node_disk_io_seconds)[10m:2m])`},
	{q: `{__name__=~"node_.*", team="b"}`},
}

// Evaluation: instant queries at these times and a range query over the last
// hour, every 2 minutes.
var (
	oracleInstants   = []time.Duration{30 * time.Minute, 75 * time.Minute, 120 * time.Minute}
	oracleRangeStart = 60 * time.Minute
	oracleRangeEnd   = 120 * time.Minute
	oracleRangeStep  = 2 * time.Minute
)

// oracleEngines are the engine settings the rewrite must be exact under:
// as Prometheus 2.x evaluates, and with the Prometheus 3 features that
// change when __name__ is dropped and add type and unit labels.
var oracleEngines = []struct {
	name string
	opts func(*promql.EngineOpts)
}{
	{"default", func(*promql.EngineOpts) {}},
	{"delayed name removal, type and unit labels", func(o *promql.EngineOpts) {
		o.EnableDelayedNameRemoval = true
		o.EnableTypeAndUnitLabels = true
	}},
}

// oracleLanguage parses every construct of the table.
var oracleLanguage = func() *Language {
	l, err := NewLanguage([]string{FeatureExperimentalFunctions, FeatureBinopFillModifiers, FeatureUnquotedUTF8Names,
		FeatureDelayedNameRemoval, FeatureTypeAndUnitLabels})
	if err != nil {
		panic(err)
	}
	return l
}()

func TestOracle(t *testing.T) {
	refusedSomewhere := map[string]bool{}
	comparedSomewhere := map[string]bool{}
	for _, eng := range oracleEngines {
		t.Run(eng.name, func(t *testing.T) {
			testOracle(t, oracleEngine(t, eng.opts), refusedSomewhere, comparedSomewhere)
		})
	}
	for _, oq := range oracleQueries {
		if oq.refusable && !refusedSomewhere[oq.q] {
			t.Errorf("%s is marked refusable but no policy refuses it: unmark it", oq.q)
		}
		if !comparedSomewhere[oq.q] {
			t.Errorf("%s is refused under every policy: it proves nothing", oq.q)
		}
	}
}

func testOracle(t *testing.T, engine *promql.Engine, refusedSomewhere, comparedSomewhere map[string]bool) {
	all := oracleData()
	full := memStorage(all)

	failedSomewhere := map[string]bool{} // of the queries marked mayFail
	for _, p := range oraclePolicies {
		t.Run(p.name, func(t *testing.T) {
			e := mustEnforcerIn(t, oracleLanguage, p.selectors...)
			allowed := allowedSeries(t, all, p.selectors)
			if len(allowed) == 0 || len(allowed) == len(all) {
				t.Fatalf("the policy allows %d of %d series: it cannot show anything", len(allowed), len(all))
			}
			oracle := memStorage(allowed)
			var evaluations, withData, differing int
			for _, oq := range oracleQueries {
				oracleFailed := false
				rewritten, err := e.Query(oq.q)
				if oq.refusable && errors.Is(err, ErrUnenforceable) {
					refusedSomewhere[oq.q] = true
					t.Logf("refused: %s: %v", oq.q, err)
					continue
				}
				if err != nil {
					t.Errorf("Query(%q): %v", oq.q, err)
					continue
				}
				comparedSomewhere[oq.q] = true
				for _, ev := range oracleEvaluations(oq.q) {
					evaluations++
					want := ev.run(engine, oracle, oq.q)
					oracleFailed = oracleFailed || want.err != ""
					if want.err != "" && !oq.mayFail {
						t.Errorf("%s %s: the oracle fails: %s (only queries marked mayFail may)", ev, oq.q, want.err)
						continue
					}
					got := ev.run(engine, full, rewritten...)
					if d := want.diff(got); d != "" {
						t.Errorf("%s %s\n    rewritten: %s\n    %s", ev, oq.q, strings.Join(rewritten, " ; "), d)
					}
					if len(want.series) > 0 {
						withData++
					}
					if want.diff(ev.run(engine, full, oq.q)) != "" {
						differing++
					}
				}
				if oq.mayFail {
					failedSomewhere[oq.q] = failedSomewhere[oq.q] || oracleFailed
				}
			}
			t.Logf("%d evaluations: %d with data on the oracle, %d differ unrewritten", evaluations, withData, differing)
			if withData < evaluations/2 {
				t.Errorf("only %d of %d evaluations hold data on the oracle: the table proves too little", withData, evaluations)
			}
			if differing < p.minDiffering {
				t.Errorf("only %d evaluations differ when the query is not rewritten, below the floor of %d: the table cannot tell a leak", differing, p.minDiffering)
			}
		})
	}
	for _, oq := range oracleQueries {
		if oq.mayFail && !failedSomewhere[oq.q] {
			t.Errorf("%s is marked mayFail but never fails on an oracle: unmark it", oq.q)
		}
	}
}

// TestOracleSaysNo shows that the comparison of TestOracle can fail: an
// unrewritten query answers more than the oracle.
func TestOracleSaysNo(t *testing.T) {
	all := oracleData()
	sels := []string{`{team="a"}`}
	full := memStorage(all)
	oracle := memStorage(allowedSeries(t, all, sels))
	engine := oracleEngine(t, func(*promql.EngineOpts) {})
	ev := oracleEval{at: oracleInstants[2]}
	// The native histogram queries differ only in their histograms: the
	// same label sets, other buckets.
	for _, q := range []string{`sum(foo_a)`, `{__name__=~"foo_.*"}`, `absent(foo_a{team="b"})`,
		`sum without (team) (rpc_duration_seconds)`, `sum without (team) (node_disk_io_seconds)`, `sum without (team) (rate(rpc_duration_seconds[5m]))`} {
		want := ev.run(engine, oracle, q)
		if d := want.diff(ev.run(engine, full, q)); d == "" {
			t.Errorf("%s unrewritten: the full storage answers like the oracle; the comparison cannot fail", q)
		}
		rewritten, err := mustEnforcer(t, sels...).Query(q)
		if err != nil {
			t.Fatal(err)
		}
		if d := want.diff(ev.run(engine, full, rewritten...)); d != "" {
			t.Errorf("%s rewritten: %s", q, d)
		}
	}
}

// oracleEngine is a PromQL engine set as Prometheus runs it: @ and
// negative offsets on, the parser of oracleLanguage, and set changes the
// rest.
func oracleEngine(t *testing.T, set func(*promql.EngineOpts)) *promql.Engine {
	opts := promql.EngineOpts{
		MaxSamples:               1_000_000,
		Timeout:                  time.Minute,
		LookbackDelta:            5 * time.Minute,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   oracleLanguage.parser,
	}
	set(&opts)
	engine := promql.NewEngine(opts)
	t.Cleanup(func() { engine.Close() })
	return engine
}

// allowedSeries is the definition of a policy, written independently of
// the Enforcer: a series is allowed when every matcher of one of the
// selectors matches it.
func allowedSeries(t *testing.T, all []oracleSeries, selectors []string) []oracleSeries {
	t.Helper()
	var sels [][]*labels.Matcher
	for _, s := range selectors {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		sels = append(sels, ms)
	}
	var out []oracleSeries
	for _, s := range all {
		if slices.ContainsFunc(sels, func(ms []*labels.Matcher) bool { return matchAll(ms, s.lbls) }) {
			out = append(out, s)
		}
	}
	return out
}

// oracleEval is one evaluation: an instant query at at, or the range query
// when isRange.
type oracleEval struct {
	at      time.Duration
	isRange bool
}

func (ev oracleEval) String() string {
	if ev.isRange {
		return "range"
	}
	return "instant " + ev.at.String()
}

// oracleEvaluations are the evaluations of a query: every instant, and the
// range query unless the query is a range vector or a string, which
// Prometheus refuses as a range query.
func oracleEvaluations(q string) []oracleEval {
	var out []oracleEval
	for _, at := range oracleInstants {
		out = append(out, oracleEval{at: at})
	}
	x, err := oracleLanguage.parser.ParseExpr(q)
	if err == nil && x.Type() != parser.ValueTypeMatrix && x.Type() != parser.ValueTypeString {
		out = append(out, oracleEval{isRange: true})
	}
	return out
}

// oracleAnswer is a normalized answer: series sorted by label set (a
// scalar or string is one series with an empty key), or an error.
type oracleAnswer struct {
	err    string
	kind   string
	series []oracleAnswerSeries
}

type oracleAnswerSeries struct {
	key    string
	points []promql.FPoint
	// hists are the series' native histogram samples.
	hists []promql.HPoint
}

// run evaluates the queries (several: the per-selector queries of a
// top-level range selector, whose matrices are merged) on q.
func (ev oracleEval) run(engine *promql.Engine, q storage.Queryable, queries ...string) oracleAnswer {
	var out oracleAnswer
	seen := map[string]bool{}
	for _, qs := range queries {
		ctx := context.Background()
		var (
			query promql.Query
			err   error
		)
		if ev.isRange {
			query, err = engine.NewRangeQuery(ctx, q, nil, qs, time.Unix(0, 0).Add(oracleRangeStart), time.Unix(0, 0).Add(oracleRangeEnd), oracleRangeStep)
		} else {
			query, err = engine.NewInstantQuery(ctx, q, nil, qs, time.Unix(0, 0).Add(ev.at))
		}
		if err != nil {
			return oracleAnswer{err: err.Error()}
		}
		res := query.Exec(ctx)
		if res.Err != nil {
			query.Close()
			return oracleAnswer{err: res.Err.Error()}
		}
		// Copy before Close: the engine reuses the memory of its results.
		switch v := res.Value.(type) {
		case promql.Vector:
			out.kind = "vector"
			for _, s := range v {
				if s.H != nil {
					out.series = append(out.series, oracleAnswerSeries{key: s.Metric.String(), hists: []promql.HPoint{{T: s.T, H: s.H.Copy()}}})
					continue
				}
				out.series = append(out.series, oracleAnswerSeries{key: s.Metric.String(), points: []promql.FPoint{{T: s.T, F: s.F}}})
			}
		case promql.Matrix:
			out.kind = "matrix"
			for _, s := range v {
				if k := s.Metric.String(); !seen[k] {
					seen[k] = true
					var hs []promql.HPoint
					for _, h := range s.Histograms {
						hs = append(hs, promql.HPoint{T: h.T, H: h.H.Copy()})
					}
					out.series = append(out.series, oracleAnswerSeries{key: k, points: slices.Clone(s.Floats), hists: hs})
				}
			}
		case promql.Scalar:
			out.kind = "scalar"
			out.series = append(out.series, oracleAnswerSeries{points: []promql.FPoint{{T: v.T, F: v.V}}})
		case promql.String:
			out.kind = "string"
			out.series = append(out.series, oracleAnswerSeries{key: v.V, points: []promql.FPoint{{T: v.T}}})
		default:
			out.err = fmt.Sprintf("unexpected result type %T", res.Value)
		}
		query.Close()
	}
	slices.SortFunc(out.series, func(a, b oracleAnswerSeries) int { return strings.Compare(a.key, b.key) })
	return out
}

// diff describes the first difference of got from the oracle's answer a,
// or returns "". Values may differ by a relative 1e-9 (aggregations sum in
// the order they meet series, which differs between the two storages).
func (a oracleAnswer) diff(got oracleAnswer) string {
	if a.err != "" || got.err != "" {
		if a.err != got.err {
			return fmt.Sprintf("error: oracle %q, got %q", a.err, got.err)
		}
		return ""
	}
	if a.kind != got.kind {
		return fmt.Sprintf("type: oracle %s, got %s", a.kind, got.kind)
	}
	keys := func(ss []oracleAnswerSeries) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.key)
		}
		return out
	}
	if !slices.Equal(keys(a.series), keys(got.series)) {
		return fmt.Sprintf("series: oracle %v\n    got %v", keys(a.series), keys(got.series))
	}
	for i, s := range a.series {
		g := got.series[i]
		if len(s.points) != len(g.points) {
			return fmt.Sprintf("%s: oracle %d points, got %d", s.key, len(s.points), len(g.points))
		}
		for j, p := range s.points {
			if p.T != g.points[j].T || !sameFloat(p.F, g.points[j].F) {
				return fmt.Sprintf("%s: oracle %v, got %v", s.key, p, g.points[j])
			}
		}
		if len(s.hists) != len(g.hists) {
			return fmt.Sprintf("%s: oracle %d histograms, got %d", s.key, len(s.hists), len(g.hists))
		}
		for j, p := range s.hists {
			if p.T != g.hists[j].T || !sameHistogram(p.H, g.hists[j].H) {
				return fmt.Sprintf("%s: oracle %d %s, got %d %s", s.key, p.T, p.H, g.hists[j].T, g.hists[j].H)
			}
		}
	}
	return ""
}

// sameHistogram compares two native histograms as sameFloat compares
// floats: the same schema and zero bucket, and counts, sum and the
// non-empty buckets' bounds and counts.
func sameHistogram(x, y *histogram.FloatHistogram) bool {
	if x.Schema != y.Schema || x.ZeroThreshold != y.ZeroThreshold || x.CounterResetHint == histogram.GaugeType != (y.CounterResetHint == histogram.GaugeType) ||
		!sameFloat(x.Count, y.Count) || !sameFloat(x.Sum, y.Sum) || !sameFloat(x.ZeroCount, y.ZeroCount) {
		return false
	}
	buckets := func(it histogram.BucketIterator[float64]) []histogram.Bucket[float64] {
		var out []histogram.Bucket[float64]
		for it.Next() {
			if b := it.At(); b.Count != 0 {
				out = append(out, b)
			}
		}
		return out
	}
	for _, pair := range [][2][]histogram.Bucket[float64]{
		{buckets(x.PositiveBucketIterator()), buckets(y.PositiveBucketIterator())},
		{buckets(x.NegativeBucketIterator()), buckets(y.NegativeBucketIterator())},
	} {
		if len(pair[0]) != len(pair[1]) {
			return false
		}
		for i, b := range pair[0] {
			c := pair[1][i]
			if b.Lower != c.Lower || b.Upper != c.Upper || !sameFloat(b.Count, c.Count) {
				return false
			}
		}
	}
	return true
}

func sameFloat(x, y float64) bool {
	switch {
	case math.IsNaN(x) || math.IsNaN(y):
		return math.IsNaN(x) && math.IsNaN(y)
	case math.IsInf(x, 0) || math.IsInf(y, 0):
		return x == y
	}
	d := math.Abs(x - y)
	return d <= 1e-12 || d <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
}
