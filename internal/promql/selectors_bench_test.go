package promql

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// selectorPolicy is a policy of n selectors that all allow the same series
// (a tenant's, each with one more matcher that no series fails), so that
// only the number of selectors changes between the sizes.
func selectorPolicy(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{tenant="t0", instance!="absent-%d"}`, i)
	}
	return out
}

// selectorQueries are the shapes whose rewrite grows with the selectors:
// one selector, an aggregation over a range, a binary operation of two.
var selectorQueries = []struct{ name, query string }{
	{"selector", `up`},
	{"aggregation", `sum by (mode) (rate(node_cpu_seconds_total[5m]))`},
	{"binary", `sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))`},
}

// BenchmarkRewriteSelectorCount is the rewrite (parse, enforce, print,
// without the cache) of each query of selectorQueries under policies of 1,
// 8 and 64 selectors: the curve of make bench (goal: at most linear in the
// selectors).
func BenchmarkRewriteSelectorCount(b *testing.B) {
	for _, q := range selectorQueries {
		for _, n := range []int{1, 8, 64} {
			e := mustEnforcer(b, selectorPolicy(n)...)
			if _, err := e.query(q.query); err != nil {
				b.Fatalf("%d selectors, %s: %v", n, q.query, err)
			}
			b.Run(fmt.Sprintf("%s/selectors=%d", q.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := e.query(q.query); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestSelectorPolicyRewrite shows the rewrite the benchmark measures: the
// policy's selectors all reach the upstream, one term each.
func TestSelectorPolicyRewrite(t *testing.T) {
	for _, n := range []int{1, 8, 64} {
		e := mustEnforcer(t, selectorPolicy(n)...)
		out, err := e.query(`up`)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, q := range out {
			for i := range n {
				if strings.Contains(q, fmt.Sprintf(`"absent-%d"`, i)) {
					got++
				}
			}
		}
		if got != n {
			t.Errorf("%d selectors: the rewrite %q names %d of them", n, out, got)
		}
	}
}

// rewriteBytes is the memory one uncached rewrite of q allocates, averaged.
func rewriteBytes(t *testing.T, e *Enforcer, q string) float64 {
	t.Helper()
	const runs = 50
	if _, err := e.query(q); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := e.query(q); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / runs
}

// TestRewriteMemoryLinearInSelectors bounds the growth of the rewrite's
// allocations from 8 to 64 selectors: at most linear, with a quarter for
// the slices that grow by doubling. (Printing the union as a chain of
// binary expressions reprints every prefix: 20× and more.)
func TestRewriteMemoryLinearInSelectors(t *testing.T) {
	for _, q := range selectorQueries {
		b8 := rewriteBytes(t, mustEnforcer(t, selectorPolicy(8)...), q.query)
		b64 := rewriteBytes(t, mustEnforcer(t, selectorPolicy(64)...), q.query)
		if r := b64 / b8; r > 8*1.25 {
			t.Errorf("%s: the rewrite under 64 selectors allocates %.0f B, %.1f× the %.0f B under 8", q.name, b64, r, b8)
		}
	}
}
