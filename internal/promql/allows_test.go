package promql

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestAllows(t *testing.T) {
	for _, tc := range []struct {
		name      string
		selectors []string
		series    []string // name=value pairs
		want      bool
	}{
		{"equality matches", []string{`{team="a"}`}, []string{"__name__", "up", "team", "a"}, true},
		{"equality differs", []string{`{team="a"}`}, []string{"__name__", "up", "team", "b"}, false},
		{"missing label is empty", []string{`{team="a"}`}, []string{"__name__", "up"}, false},
		{"negative matcher on a missing label", []string{`{secret!="true"}`}, []string{"__name__", "up"}, true},
		{"negative matcher rejects", []string{`{secret!="true"}`}, []string{"__name__", "up", "secret", "true"}, false},
		{"regex is anchored", []string{`{team=~"a"}`}, []string{"__name__", "up", "team", "ab"}, false},
		{"regex alternatives", []string{`{team=~"a|b"}`}, []string{"__name__", "up", "team", "b"}, true},
		{"negative regex", []string{`{code!~"5.."}`}, []string{"__name__", "x", "code", "503"}, false},
		{"conjunction: all matchers", []string{`{__name__=~"node_.*", shared="true"}`},
			[]string{"__name__", "node_load1", "shared", "false"}, false},
		{"conjunction satisfied", []string{`{__name__=~"node_.*", shared="true"}`},
			[]string{"__name__", "node_load1", "shared", "true"}, true},
		{"second selector", []string{`{team="b"}`, `{__name__=~"node_.*", shared="true"}`},
			[]string{"__name__", "node_load1", "shared", "true", "team", "a"}, true},
		{"no selector", []string{`{team="b"}`, `{__name__=~"node_.*", shared="true"}`},
			[]string{"__name__", "up", "shared", "true", "team", "a"}, false},
		{"empty value equals absent", []string{`{team=""}`}, []string{"__name__", "up", "team", ""}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEnforcer(t, tc.selectors...)
			if got := e.Allows(labels.FromStrings(tc.series...)); got != tc.want {
				t.Errorf("Allows(%v) = %v, want %v", tc.series, got, tc.want)
			}
		})
	}
}

func TestAllowsName(t *testing.T) {
	for _, tc := range []struct {
		name      string
		selectors []string
		metric    string
		want      bool
	}{
		{"no name matcher", []string{`{team="a"}`}, "up", true},
		{"name equality", []string{`{__name__="up", team="a"}`}, "up", true},
		{"other name", []string{`{__name__="up", team="a"}`}, "down", false},
		{"name regex", []string{`{__name__=~"node_.*"}`}, "node_load1", true},
		{"name regex is anchored", []string{`{__name__=~"node_.*"}`}, "x_node_load1", false},
		{"excluded name", []string{`{__name__!="secret_total"}`}, "secret_total", false},
		{"excluded name, other selector", []string{`{__name__!="secret_total"}`, `{__name__="secret_total", secret!="true"}`}, "secret_total", true},
		{"negative regex", []string{`{__name__!~"go_.*"}`}, "go_goroutines", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEnforcer(t, tc.selectors...)
			if got := e.AllowsName(tc.metric); got != tc.want {
				t.Errorf("AllowsName(%q) = %v, want %v", tc.metric, got, tc.want)
			}
		})
	}
}
