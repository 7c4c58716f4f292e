package promql

import (
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func mustEnforcer(t testing.TB, selectors ...string) *Enforcer {
	t.Helper()
	return mustEnforcerIn(t, defaultLanguage, selectors...)
}

func mustEnforcerIn(t testing.TB, l *Language, selectors ...string) *Enforcer {
	t.Helper()
	var sels [][]*labels.Matcher
	for _, s := range selectors {
		ms, err := pql.ParseMetricSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		sels = append(sels, ms)
	}
	e, err := l.New(sels)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The expected strings are what Prometheus 2.42 receives; they must parse
// there, so metric names are written as __name__ matchers.
func TestQueryOneSelector(t *testing.T) {
	e := mustEnforcer(t, `{team="a"}`)
	for _, tc := range []struct{ name, in, want string }{
		{"plain", `up`, `{__name__="up",team="a"}`},
		{"keeps matchers", `up{job="x"}`, `{__name__="up",job="x",team="a"}`},
		{"conflicting equality stays empty, not wider", `up{team="b"}`, `{__name__="up",team="a",team="b"}`},
		{"same matcher not repeated", `up{team="a"}`, `{__name__="up",team="a"}`},
		{"regex on policy label is narrowed", `up{team=~".+"}`, `{__name__="up",team="a",team=~".+"}`},
		{"name regex", `{__name__=~"node_.*"}`, `{__name__=~"node_.*",team="a"}`},
		{"range function", `rate(http_requests_total[5m])`, `rate({__name__="http_requests_total",team="a"}[5m])`},
		{"offset and @", `rate(x[5m] offset 1h @ 1700000000)`, `rate({__name__="x",team="a"}[5m] @ 1700000000.000 offset 1h)`},
		{"@ start()", `x @ start()`, `{__name__="x",team="a"} @ start()`},
		{"subquery", `max_over_time(rate(x[5m])[30m:1m])`, `max_over_time(rate({__name__="x",team="a"}[5m])[30m:1m])`},
		{"aggregation", `sum by (job) (x)`, `sum by (job) ({__name__="x",team="a"})`},
		{"topk param", `topk(scalar(y), x)`, `topk(scalar({__name__="y",team="a"}), {__name__="x",team="a"})`},
		{"count_values", `count_values("v", x)`, `count_values("v", {__name__="x",team="a"})`},
		{"binary on group_left", `a * on (i) group_left (j) b`, `{__name__="a",team="a"} * on (i) group_left (j) {__name__="b",team="a"}`},
		{"label_replace", `label_replace(x, "d", "$1", "s", "(.*)")`, `label_replace({__name__="x",team="a"}, "d", "$1", "s", "(.*)")`},
		{"histogram", `histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))`, `histogram_quantile(0.9, sum by (le) (rate({__name__="h_bucket",team="a"}[5m])))`},
		{"number", `1 + 2`, `1 + 2`},
		{"absent keeps the query's labels", `absent(nope{job="x"})`, `label_replace(absent({__name__="nope",job="x",team="a"}), "team", "", "", "")`},
		{"absent with the policy label in the query", `absent(nope{team="a"})`, `absent({__name__="nope",team="a"})`},
		{"absent_over_time", `absent_over_time(nope[5m])`, `label_replace(absent_over_time({__name__="nope",team="a"}[5m]), "team", "", "", "")`},
		{"absent of an expression", `absent(sum(x))`, `absent(sum({__name__="x",team="a"}))`},
		{"timestamp", `timestamp(x)`, `timestamp({__name__="x",team="a"})`},
		{"paren matrix", `rate((x[5m]))`, `rate({__name__="x",team="a"}[5m])`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Query(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("Query(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestQuerySeveralSelectors(t *testing.T) {
	e := mustEnforcer(t, `{team="a"}`, `{__name__=~"node_.*", shared="true"}`)
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"named selector: plain or", `node_load1`, []string{
			`({__name__="node_load1",team="a"} or {__name__="node_load1",__name__=~"node_.*",shared="true"})`}},
		{"name pruned", `up`, []string{`{__name__="up",team="a"}`}},
		{"name regex: or keeps names apart", `{__name__=~"node_.*|up"}`, []string{
			`label_replace(label_replace({__name__=~"node_.*|up",team="a"}, "__promgate_name__", "$1", "__name__", "(.+)") or label_replace({__name__=~"node_.*",__name__=~"node_.*|up",shared="true"}, "__promgate_name__", "$1", "__name__", "(.+)"), "__promgate_name__", "", "", "")`}},
		{"range function lifted, offset kept", `rate(node_cpu[5m] offset 5m)`, []string{
			`(rate({__name__="node_cpu",team="a"}[5m] offset 5m) or rate({__name__="node_cpu",__name__=~"node_.*",shared="true"}[5m] offset 5m))`}},
		{"other arguments rewritten in each term", `quantile_over_time(scalar(node_q), node_x[5m])`, []string{
			`(quantile_over_time(scalar(({__name__="node_q",team="a"} or {__name__="node_q",__name__=~"node_.*",shared="true"})), {__name__="node_x",team="a"}[5m]) or quantile_over_time(scalar(({__name__="node_q",team="a"} or {__name__="node_q",__name__=~"node_.*",shared="true"})), {__name__="node_x",__name__=~"node_.*",shared="true"}[5m]))`}},
		{"union inside binary operator", `node_a * 2`, []string{
			`({__name__="node_a",team="a"} or {__name__="node_a",__name__=~"node_.*",shared="true"}) * 2`}},
		{"absent: and of terms with original labels", `absent(node_x{job="j"})`, []string{
			`label_replace(absent({__name__="node_x",job="j",team="a"}) and on () absent({__name__="node_x",__name__=~"node_.*",job="j",shared="true"}), "team", "", "", "")`}},
		{"timestamp lifted", `timestamp(node_x)`, []string{
			`(timestamp({__name__="node_x",team="a"}) or timestamp({__name__="node_x",__name__=~"node_.*",shared="true"}))`}},
		{"name regex under a range function: disjoint terms, marked union", `rate({__name__=~"node_.*"}[5m])`, []string{
			`label_replace(label_replace(rate({__name__=~"node_.*",team="a"}[5m]), "__promgate_term__", "0", "", "") or label_replace(rate({__name__=~"node_.*",shared="true",team!="a"}[5m]), "__promgate_term__", "1", "", ""), "__promgate_term__", "", "", "")`}},
		{"top-level range selector: one query per selector", `node_x[5m]`, []string{
			`{__name__="node_x",team="a"}[5m]`, `{__name__="node_x",__name__=~"node_.*",shared="true"}[5m]`}},
		{"all terms contradict: empty, not wider", `up{team="b"}`, []string{`{__name__="up",team="a",team="b"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Query(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Query(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("Query(%q)[%d]\n got %s\nwant %s", tc.in, i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	e := mustEnforcer(t, `{team="a"}`)
	for _, q := range []string{``, `sum(`, `up{`, `rate(up)`, `foo bar`, `{}`} {
		_, err := e.Query(q)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Query(%q): got %v, want a ParseError", q, err)
		}
	}
}

func TestMatch(t *testing.T) {
	e := mustEnforcer(t, `{team="a"}`, `{secret!="true"}`)
	parse := func(ss ...string) [][]*labels.Matcher {
		var out [][]*labels.Matcher
		for _, s := range ss {
			ms, err := pql.ParseMetricSelector(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ms)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		match []string
		want  []string
	}{
		{"no match[]: the policy, each selector usable alone", nil, []string{`{team="a"}`, `{secret!="true", __name__=~".+"}`}},
		{"each match times each selector", []string{`up`, `{job="x"}`}, []string{
			`{__name__="up", team="a"}`, `{__name__="up", secret!="true"}`, `{job="x", team="a"}`, `{job="x", secret!="true"}`}},
		{"contradiction pruned", []string{`{team="b", secret="true"}`}, []string{`{team="b", secret="true", team="a"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := e.Match(parse(tc.match...))
			var gs []string
			for _, ms := range got {
				gs = append(gs, FormatSelector(ms))
			}
			if len(gs) != len(tc.want) {
				t.Fatalf("got %q, want %q", gs, tc.want)
			}
			for i := range gs {
				if gs[i] != tc.want[i] {
					t.Errorf("[%d] got %s, want %s", i, gs[i], tc.want[i])
				}
			}
		})
	}
}

func TestQueryTooLarge(t *testing.T) {
	e := mustEnforcer(t, `{a="1"}`, `{b="2"}`, `{c="3"}`)
	q := `x`
	for range 12 {
		q = `quantile_over_time(scalar(` + q + `), y[5m])`
	}
	if _, err := e.Query(q); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	// One selector never repeats anything.
	if _, err := mustEnforcer(t, `{a="1"}`).Query(q); err != nil {
		t.Fatal(err)
	}
}

func TestHoltWintersParses(t *testing.T) {
	got, err := mustEnforcer(t, `{team="a"}`).Query(`holt_winters(x[10m], 0.5, 0.5)`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `holt_winters({__name__="x",team="a"}[10m], 0.5, 0.5)`; got[0] != want {
		t.Errorf("got %s, want %s", got[0], want)
	}
}

func TestVisible(t *testing.T) {
	e := mustEnforcer(t, `{team="a"}`, `{__name__=~"node_.*", shared="true"}`, `{env!="prod", team="c"}`)
	for _, tc := range []struct {
		lbls map[string]string
		want bool
	}{
		{map[string]string{"team": "a"}, true},
		{map[string]string{"team": "b"}, false},
		{map[string]string{"__name__": "node_load1", "shared": "true", "team": "b"}, true},
		{map[string]string{"__name__": "up", "shared": "true"}, false},
		{map[string]string{"team": "c"}, true}, // no env label: env!="prod" holds
		{map[string]string{"team": "c", "env": "prod"}, false},
		{nil, false},
	} {
		if got := e.Visible(tc.lbls); got != tc.want {
			t.Errorf("Visible(%v) = %v, want %v", tc.lbls, got, tc.want)
		}
	}
}

// TestChainPrintsAsBinaryChain: a chain of set operations prints exactly
// as the left-deep chain of binary expressions the parser builds from the
// same text, for every length and both operators the rewrite chains.
func TestChainPrintsAsBinaryChain(t *testing.T) {
	for _, vm := range []struct {
		op parser.ItemType
		vm parser.VectorMatching
	}{
		{parser.LOR, parser.VectorMatching{Card: parser.CardManyToMany}},
		{parser.LAND, parser.VectorMatching{Card: parser.CardManyToMany, On: true}},
	} {
		for n := 1; n <= 6; n++ {
			var exprs []parser.Expr
			var acc parser.Expr
			for i := range n {
				x := &parser.VectorSelector{LabelMatchers: []*labels.Matcher{
					labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "up"),
					labels.MustNewMatcher(labels.MatchEqual, "i", fmt.Sprint(i)),
				}}
				exprs = append(exprs, x)
				if acc == nil {
					acc = x
					continue
				}
				m := vm.vm
				acc = &parser.BinaryExpr{Op: vm.op, LHS: acc, RHS: x, VectorMatching: &m}
			}
			want := acc.String()
			got := chain(vm.op, exprs, &vm.vm).String()
			if got != want {
				t.Errorf("%s of %d: chain prints %q, want %q", vm.op, n, got, want)
			}
			if n > 1 {
				reparsed, err := pql.ParseExpr(got)
				if err != nil || reparsed.String() != want {
					t.Errorf("%s of %d: %q reparses as %v (%v)", vm.op, n, got, reparsed, err)
				}
			}
		}
	}
}
