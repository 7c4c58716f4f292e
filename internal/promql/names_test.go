package promql

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestQueryUTF8LabelName(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  string // "" for none
	}{
		{`up`, ""},
		{`{"up"}`, ""},
		// A quoted metric name is printed as a __name__ matcher.
		{`{"http.server.duration"}`, ""},
		{`rate({__name__=~"http\\.server\\..*"}[5m])`, ""},
		{`{"http.server.duration", "service.name"="x"}`, "service.name"},
		{`up{"service.name"!~"x"}`, "service.name"},
		{`sum by ("service.name") (up)`, "service.name"},
		{`sum without (job, "k8s.pod") (up)`, "k8s.pod"},
		{`up * on ("service.name") group_left up`, "service.name"},
		{`up * on (job) group_left ("service.name") up`, "service.name"},
		{`rate(up{"a.b"="1"}[5m] offset 1m)`, "a.b"},
		// Strings are 2.x syntax; their use as names is the upstream's to judge.
		{`label_replace(up, "a.b", "$1", "job", "(.*)")`, ""},
		{`sum by (job) (up) or on (instance) up`, ""},
		{`{"a.b"`, ""}, // does not parse: the upstream says why
	} {
		got, ok := QueryUTF8LabelName(tc.query)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("QueryUTF8LabelName(%s) = %q, %v; want %q", tc.query, got, ok, tc.want)
		}
	}
}

// What the enforcer writes for a policy on a UTF-8 label: the name stays
// quoted (Prometheus 3 parses it) and is found in the rewritten query.
func TestRewriteUTF8Names(t *testing.T) {
	for _, tc := range []struct {
		policy []string
		query  string
		want   []string
	}{
		{[]string{`{"service.name"="checkout"}`}, `{"http.server.duration"}`,
			[]string{`{"service.name"="checkout",__name__="http.server.duration"}`}},
		{[]string{`{"service.name"="checkout"}`}, `sum by ("service.name") (rate({"http.server.duration", "http.method"="GET"}[5m]))`,
			[]string{`sum by ("service.name") (rate({"http.method"="GET","service.name"="checkout",__name__="http.server.duration"}[5m]))`}},
		{[]string{`{__name__=~"http\\.server\\..*"}`}, `{"service.name"="x"}`,
			[]string{`{"service.name"="x",__name__=~"http\\.server\\..*"}`}},
		// A conflicting equality on a UTF-8 name prunes like any other.
		{[]string{`{"service.name"="checkout"}`, `{team="a"}`}, `up{"service.name"="cart"}`,
			[]string{`{"service.name"="cart",__name__="up",team="a"}`}},
	} {
		ms := make([][]*labels.Matcher, len(tc.policy))
		for i, s := range tc.policy {
			var err error
			if ms[i], err = pql.ParseMetricSelector(s); err != nil {
				t.Fatal(err)
			}
		}
		e, err := New(ms)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Query(tc.query)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: got %q, want %q", tc.query, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s:\n got %s\nwant %s", tc.query, got[i], tc.want[i])
			}
			// Prometheus 3 reads what promgate writes as the same query.
			if _, err := pql.ParseExpr(got[i]); err != nil {
				t.Errorf("%s: rewritten %s does not parse: %v", tc.query, got[i], err)
			}
		}
	}
}

func TestSelectorUTF8LabelName(t *testing.T) {
	for _, tc := range []struct {
		sel, want string
	}{
		{`{team="a"}`, ""},
		{`{__name__="http.server.duration"}`, ""},
		{`{team="a", "service.name"="x"}`, "service.name"},
		{`{"ü"="x"}`, "ü"},
	} {
		ms, err := pql.ParseMetricSelector(tc.sel)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := SelectorUTF8LabelName(ms)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: got %q, %v; want %q", tc.sel, got, ok, tc.want)
		}
	}
}
