package promql

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// dashboardQueries reads testdata/dashboards.txt.
func dashboardQueries(tb testing.TB) []string {
	tb.Helper()
	f, err := os.Open("testdata/dashboards.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// Policies of one and of several selectors.
var benchPolicies = []struct {
	name      string
	selectors []string
}{
	{"one-selector", []string{`{namespace="ns-alice"}`}},
	{"three-selectors", []string{`{namespace="ns-alice"}`, `{team="a", env!="dev"}`, `{__name__=~"node_.+", shared="true"}`}},
}

// BenchmarkRewrite parses, rewrites and prints every query of the corpus
// once per iteration (ns/op and allocs/op are per query), without the
// cache: the cost of a query promgate has not seen before.
func BenchmarkRewrite(b *testing.B) {
	queries := dashboardQueries(b)
	for _, p := range benchPolicies {
		e := mustEnforcer(b, p.selectors...)
		for _, q := range queries {
			if _, err := e.query(q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				for _, q := range queries {
					if _, err := e.query(q); err != nil {
						b.Fatal(err)
					}
				}
				n++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*len(queries)), "ns/query")
		})
	}
}

// BenchmarkQueryCached is Query for queries already rewritten once: a
// dashboard refreshing.
func BenchmarkQueryCached(b *testing.B) {
	queries := dashboardQueries(b)
	for _, p := range benchPolicies {
		e := mustEnforcer(b, p.selectors...)
		for _, q := range queries {
			if _, err := e.Query(q); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				for _, q := range queries {
					if _, err := e.Query(q); err != nil {
						b.Fatal(err)
					}
				}
				n++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*len(queries)), "ns/query")
		})
	}
}

// BenchmarkMatch is the product of a client's match[] selectors with the
// policy's (series, labels, label values).
func BenchmarkMatch(b *testing.B) {
	for _, p := range benchPolicies {
		e := mustEnforcer(b, p.selectors...)
		ms, err := pql.ParseMetricSelector(`{__name__="http_requests_total", job="api"}`)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, sel := range e.Match([][]*labels.Matcher{ms}) {
					_ = FormatSelector(sel)
				}
			}
		})
	}
}
