package promql

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestSimplify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		selectors []string
		want      []string
	}{
		{"one selector", []string{`{team="a"}`}, []string{`{team="a"}`}},
		{"nothing to merge", []string{`{team="a"}`, `{env="prod"}`}, []string{`{team="a"}`, `{env="prod"}`}},
		{"repeated", []string{`{team="a"}`, `{team="a"}`}, []string{`{team="a"}`}},
		{"repeated in another order", []string{`{team="a", env="p"}`, `{env="p", team="a"}`}, []string{`{team="a", env="p"}`}},
		{"subsumed", []string{`{team="a", env="prod"}`, `{x="1"}`, `{team="a"}`}, []string{`{x="1"}`, `{team="a"}`}},
		{"subsumed by a wider regex is kept (not proven by matchers alone)", []string{`{team="a"}`, `{team=~"a|b"}`}, []string{`{team="a"}`, `{team=~"a|b"}`}},
		{"equalities on one label", []string{`{team="a"}`, `{team="b"}`, `{team="c"}`}, []string{`{team=~"a|b|c"}`}},
		{"values quoted", []string{`{team="a.b"}`, `{team="c|d"}`, `{team="(e)"}`}, []string{`{team=~"a\\.b|c\\|d|\\(e\\)"}`}},
		{"with shared matchers", []string{`{team="a", env!="dev"}`, `{env!="dev", team="b"}`}, []string{`{env!="dev", team=~"a|b"}`}},
		{"the empty value", []string{`{job="x", team="a"}`, `{job="x", team=""}`}, []string{`{job="x", team=~"a|"}`}},
		{"different other matchers: kept apart", []string{`{team="a", env="p"}`, `{team="b", env="q"}`}, []string{`{team="a", env="p"}`, `{team="b", env="q"}`}},
		{"a different label each", []string{`{team="a"}`, `{tenant="a"}`}, []string{`{team="a"}`, `{tenant="a"}`}},
		{"not equal is not merged", []string{`{team!="a"}`, `{team!="b"}`}, []string{`{team!="a"}`, `{team!="b"}`}},
		{"regexes are not merged", []string{`{team=~"a.*"}`, `{team=~"b.*"}`}, []string{`{team=~"a.*"}`, `{team=~"b.*"}`}},
		{"names", []string{`{__name__="up", team="a"}`, `{__name__="node_load1", team="a"}`, `{__name__="up", team="b"}`},
			[]string{`{team="a", __name__=~"up|node_load1"}`, `{__name__="up", team="b"}`}},
		{"merged then subsumed", []string{`{team="a", env="p"}`, `{team="b", env="p"}`, `{env="p", team=~"a|b", x="1"}`},
			[]string{`{env="p", team=~"a|b"}`}},
		{"the order of first appearance", []string{`{x="1"}`, `{team="b"}`, `{y="2"}`, `{team="a"}`}, []string{`{x="1"}`, `{team=~"b|a"}`, `{y="2"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sels [][]*labels.Matcher
			for _, s := range tc.selectors {
				ms, err := pql.ParseMetricSelector(s)
				if err != nil {
					t.Fatal(err)
				}
				sels = append(sels, ms)
			}
			var got []string
			for _, sel := range simplify(sels) {
				got = append(got, FormatSelector(sel))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
