package promql

import (
	"errors"
	"strings"
	"testing"
)

func TestLanguageFeatures(t *testing.T) {
	if _, err := NewLanguage([]string{"promql-experimental-funtions"}); err == nil || !strings.Contains(err.Error(), "unknown feature") {
		t.Errorf("misspelt feature: got %v", err)
	}
	for _, tc := range []struct {
		name     string
		features []string
		q        string
		parses   bool
	}{
		{"experimental function off", nil, `limitk(2, x)`, false},
		{"experimental function on", []string{FeatureExperimentalFunctions}, `limitk(2, x)`, true},
		{"info needs experimental functions", nil, `info(x)`, false},
		{"fill off", nil, `a + fill(0) b`, false},
		{"fill on", []string{FeatureBinopFillModifiers}, `a + fill(0) b`, true},
		{"unquoted UTF-8 off", nil, `service.name{host.name="x"}`, false},
		{"unquoted UTF-8 on", []string{FeatureUnquotedUTF8Names}, `service.name{host.name="x"}`, true},
		{"quoted UTF-8 by default", nil, `{"service.name", "host.name"="x"}`, true},
		{"duration expression by default", nil, `rate(x[5m+1m])`, true},
		{"anchored by default", nil, `rate(x[5m] anchored)`, true},
		{"features that change no syntax", []string{FeatureDelayedNameRemoval, FeatureTypeAndUnitLabels, "exemplar-storage"}, `x`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLanguage(tc.features)
			if err != nil {
				t.Fatal(err)
			}
			_, err = mustEnforcerIn(t, l, `{team="a"}`).Query(tc.q)
			var pe *ParseError
			if tc.parses && err != nil {
				t.Errorf("Query(%q): %v", tc.q, err)
			}
			if !tc.parses && !errors.As(err, &pe) {
				t.Errorf("Query(%q): got %v, want a parse error", tc.q, err)
			}
		})
	}
}

func TestQueryPrometheus3(t *testing.T) {
	l, err := NewLanguage([]string{FeatureExperimentalFunctions, FeatureBinopFillModifiers, FeatureUnquotedUTF8Names})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		selectors []string
		in, want  string // want "" with refuse: refused
		refuse    bool
	}{
		{"duration expression kept", []string{`{team="a"}`}, `rate(x[5m+1m] offset (1m*2))`, `rate({__name__="x",team="a"}[5m + 1m] offset (1m * 2))`, false},
		{"anchored kept on every term", []string{`{team="a"}`, `{env="dev"}`}, `increase(x[5m] anchored)`,
			`(increase({__name__="x",team="a"}[5m] anchored) or increase({__name__="x",env="dev"}[5m] anchored))`, false},
		{"fill kept", []string{`{team="a"}`}, `a + on (i) fill_left (1) b`, `{__name__="a",team="a"} + on (i) fill_left (1) {__name__="b",team="a"}`, false},
		{"unquoted name printed back", []string{`{"service.name"="checkout"}`}, `http.server.duration`, `{__name__="http.server.duration",service.name="checkout"}`, false},
		{"limitk on one selector", []string{`{team="a"}`}, `limitk(2, x)`, `limitk(2, {__name__="x",team="a"})`, false},
		{"limitk over a union refused", []string{`{team="a"}`, `{env="dev"}`}, `limitk(2, x)`, "", true},
		{"limitk where one term is left", []string{`{team="a"}`, `{__name__="y"}`}, `limitk(2, x)`, `limitk(2, {__name__="x",team="a"})`, false},
		{"limit_ratio over a union", []string{`{team="a"}`, `{env="dev"}`}, `limit_ratio(0.5, x)`, `limit_ratio(0.5, ({__name__="x",team="a"} or {__name__="x",env="dev"}))`, false},
		{"info: policy shows every target_info", []string{`{team="a"}`, `{__name__="target_info"}`}, `info(up)`,
			`info({__name__="up",team="a"})`, false},
		{"info: policy shows no info series", []string{`{__name__=~"foo_.*", team="a"}`}, `info(foo_x, {k=~".+"})`,
			`info({__name__="foo_x",__name__=~"foo_.*",team="a"}, {__name__!~".*",k=~".+"})`, false},
		{"info: policy shows some info series: refused", []string{`{team="a"}`}, `info(up)`, "", true},
		{"info: named info metrics, one partly shown", []string{`{__name__="a_info"}`, `{team="a"}`}, `info(up, {__name__=~"a_info|b_info"})`, "", true},
		{"info: names not a finite set", []string{`{__name__=~".+_info"}`}, `info(up, {__name__!="x_info"})`, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mustEnforcerIn(t, l, tc.selectors...).Query(tc.in)
			if tc.refuse {
				if !errors.Is(err, ErrUnenforceable) {
					t.Fatalf("Query(%q) = %q, %v; want ErrUnenforceable", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("Query(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}
