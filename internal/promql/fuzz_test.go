package promql

import (
	"errors"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// FuzzRewrite checks the enforcement property: for any query the parser
// accepts, the rewrite parses again and every vector and range selector in it
// carries all matchers of at least one policy selector.
func FuzzRewrite(f *testing.F) {
	for _, q := range []string{
		`up`, `{__name__=~"node_.*|up"}`, `rate(x[5m] offset 1h)`, `sum by (a) (rate(x{a="b"}[5m]))`,
		`absent(nope{job="x"})`, `absent_over_time(nope[5m])`, `timestamp(x)`, `x[5m]`,
		`max_over_time(rate(x[5m])[30m:1m] @ start())`, `a * on (i) group_left (j) b`,
		`label_replace(x, "d", "$1", "s", "(.*)")`, `topk(scalar(y), x)`, `count_values("v", x)`,
		`histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))`, `quantile_over_time(0.5, x[1h])`,
		`-x or y unless z`, `vector(1)`, `x @ 1700000000`, `sort_desc(x)`, `(x[5m])`,
	} {
		f.Add(q)
	}
	single := mustEnforcer(f, `{team="a"}`)
	several := mustEnforcer(f, `{team="b"}`, `{__name__=~"node_.*", shared="true"}`, `{secret!="true", __name__="s"}`)
	f.Fuzz(func(t *testing.T, q string) {
		if _, err := pql.ParseExpr(q); err != nil {
			return
		}
		for _, e := range []*Enforcer{single, several} {
			out, err := e.Query(q)
			if errors.Is(err, ErrUnsupported) {
				continue // refused, never forwarded
			}
			if err != nil {
				t.Fatalf("Query(%q): %v", q, err)
			}
			for _, s := range out {
				expr, err := pql.ParseExpr(s)
				if err != nil {
					t.Fatalf("rewrite of %q does not parse: %q: %v", q, s, err)
				}
				parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
					if vs, ok := n.(*parser.VectorSelector); ok && !constrained(vs.LabelMatchers, e.selectors) {
						t.Fatalf("rewrite of %q leaves %s unconstrained: %s", q, vs, s)
					}
					return nil
				})
			}
		}
	})
}

func constrained(ms []*labels.Matcher, selectors [][]*labels.Matcher) bool {
	for _, sel := range selectors {
		if containsAll(ms, sel) {
			return true
		}
	}
	return false
}

func containsAll(ms, sel []*labels.Matcher) bool {
outer:
	for _, want := range sel {
		for _, m := range ms {
			if m.Name == want.Name && m.Type == want.Type && m.Value == want.Value {
				continue outer
			}
		}
		return false
	}
	return true
}
