package alertmanager

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/matcher/compat"
	amlabels "github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// policy parses selectors written in PromQL, as promgate.yml has them.
func policy(t *testing.T, sels ...string) *Enforcer {
	t.Helper()
	var ms [][]*labels.Matcher
	p := parser.NewParser(parser.Options{})
	for _, s := range sels {
		m, err := p.ParseMetricSelector(s)
		if err != nil {
			t.Fatalf("selector %s: %v", s, err)
		}
		ms = append(ms, m)
	}
	return NewEnforcer(ms)
}

// amMatchers parses matchers as amtool and Alertmanager do.
func amMatchers(t *testing.T, s string) []*amlabels.Matcher {
	t.Helper()
	if s == "" {
		return nil
	}
	ms, err := compat.Matchers(s, "test")
	if err != nil {
		t.Fatalf("matchers %s: %v", s, err)
	}
	return ms
}

func TestAllows(t *testing.T) {
	for _, tc := range []struct {
		policy []string
		labels map[string]string
		want   bool
	}{
		{[]string{`{team="a"}`}, map[string]string{"team": "a", "alertname": "X"}, true},
		{[]string{`{team="a"}`}, map[string]string{"team": "b"}, false},
		{[]string{`{team="a"}`}, map[string]string{"alertname": "X"}, false},
		{[]string{`{team="a"}`, `{team="c"}`}, map[string]string{"team": "c"}, true},
		{[]string{`{team="a", env!="prod"}`}, map[string]string{"team": "a", "env": "prod"}, false},
		{[]string{`{team="a", env!="prod"}`}, map[string]string{"team": "a"}, true},
		{[]string{`{team=~"a|b"}`}, map[string]string{"team": "b"}, true},
		// Anchored, as in Prometheus.
		{[]string{`{team=~"a"}`}, map[string]string{"team": "ab"}, false},
		// A label absent and a label empty are the same.
		{[]string{`{env=""}`}, map[string]string{"env": ""}, true},
		// Alerts have no metric name.
		{[]string{`{__name__=~"node_.*", team="a"}`}, map[string]string{"team": "a"}, false},
	} {
		if got := policy(t, tc.policy...).Allows(tc.labels); got != tc.want {
			t.Errorf("%v allows %v: got %v, want %v", tc.policy, tc.labels, got, tc.want)
		}
	}
}

func TestOwns(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   []string
		matchers string // the silence's, in amtool's syntax
		want     bool
	}{
		{"same equality", []string{`{team="a"}`}, `team="a", alertname="X"`, true},
		{"other team", []string{`{team="a"}`}, `team="b"`, false},
		{"no team matcher", []string{`{team="a"}`}, `alertname="X"`, false},
		{"no matchers", []string{`{team="a"}`}, ``, false},
		{"negative silence matcher", []string{`{team="a"}`}, `team!="b"`, false},
		{"regex wider than the policy", []string{`{team="a"}`}, `team=~"a|b"`, false},
		{"regex set inside the policy's regex", []string{`{team=~"a|b|c"}`}, `team=~"a|b"`, true},
		{"regex set, one value outside", []string{`{team=~"a|b"}`}, `team=~"a|z"`, false},
		{"regex set of one", []string{`{team="a"}`}, `team=~"a"`, true},
		{"equality satisfies a policy regex", []string{`{team=~"a.*"}`}, `team="abc"`, true},
		{"equality fails a policy regex", []string{`{team=~"a.*"}`}, `team="b"`, false},
		{"same regex", []string{`{team=~"a.*"}`}, `team=~"a.*"`, true},
		{"same regex, written otherwise", []string{`{team=~"a|b"}`}, `team=~"[ab]"`, true},
		{"regex that is no set, different", []string{`{team=~"a.*"}`}, `team=~"ab.*"`, false},
		{"case-insensitive regex is no set", []string{`{team="a"}`}, `team=~"(?i)a"`, false},
		// Alertmanager's "." does not match a newline, Prometheus' does: a
		// silence !~".*prod.*" mutes env="x\nprod", the policy excludes it.
		{"negative regex with a dot differs across dialects", []string{`{team="a", env!~".*prod.*"}`}, `team="a", env!~".*prod.*"`, false},
		{"negative regex with the s flag", []string{`{team="a", env!~".*prod.*"}`}, `team="a", env!~"(?s:.*prod.*)"`, true},
		{"negative regex without a dot", []string{`{team="a", env!~"prod|staging"}`}, `team="a", env!~"prod|staging"`, true},
		{"negative regex, positive silence value", []string{`{team="a", env!~"prod|staging"}`}, `team="a", env="dev"`, true},
		{"negative regex, excluded value", []string{`{team="a", env!~"prod|staging"}`}, `team="a", env="prod"`, false},
		{"!= implied by the same !=", []string{`{team="a", env!="prod"}`}, `team="a", env!="prod"`, true},
		{"!= not implied by another !=", []string{`{team="a", env!="prod"}`}, `team="a", env!="dev"`, false},
		{"!= implied by a regex excluding it", []string{`{team="a", env!="prod"}`}, `team="a", env=~"dev|qa"`, true},
		{"!= implied by !~ matching it", []string{`{team="a", env!="prod"}`}, `team="a", env!~"prod|staging"`, true},
		{"!~ set implied by !=", []string{`{team="a", env!~"prod"}`}, `team="a", env!="prod"`, true},
		{"!= missing", []string{`{team="a", env!="prod"}`}, `team="a"`, false},
		{"policy regex matching anything needs nothing", []string{`{team="a", env=~".*"}`}, `team="a"`, true},
		{"second selector", []string{`{team="a"}`, `{team="c"}`}, `team="c"`, true},
		{"spanning two selectors", []string{`{team="a"}`, `{team="c"}`}, `team=~"a|c"`, false},
		{"several matchers on the label", []string{`{team="a"}`}, `team=~"a|b", team!="b"`, false},
		{"several matchers, one implies", []string{`{team="a"}`}, `team=~"a|b", team="a"`, true},
		{"policy equality on empty value", []string{`{team="a", env=""}`}, `team="a", env=""`, true},
		// UTF-8 names, quoted in Alertmanager 0.27+'s matcher syntax.
		{"UTF-8 label name", []string{`{"service.name"="checkout"}`}, `alertname="X", "service.name"="checkout"`, true},
		{"UTF-8 label name, other value", []string{`{"service.name"="checkout"}`}, `"service.name"="cart"`, false},
		{"UTF-8 label name spelt otherwise", []string{`{"service.name"="checkout"}`}, `service_name="checkout"`, false},
		{"UTF-8 regex", []string{`{"k8s.namespace.name"=~"a|b"}`}, `"k8s.namespace.name"="a"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := policy(t, tc.policy...).Owns(amMatchers(t, tc.matchers)); got != tc.want {
				t.Errorf("%v owns {%s}: got %v, want %v", tc.policy, tc.matchers, got, tc.want)
			}
		})
	}
}

func TestInject(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   []string
		matchers string
		want     string // matchers after injection, or the error
		wantErr  error
	}{
		{"owned: unchanged", []string{`{team="a"}`}, `alertname="X", team="a"`, `alertname="X", team="a"`, nil},
		{"injected", []string{`{team="a"}`}, `alertname="X"`, `alertname="X", team="a"`, nil},
		{"only what is missing", []string{`{team="a", env!="prod"}`}, `alertname="X", team="a"`, `alertname="X", team="a", env!="prod"`, nil},
		{"narrowing a regex", []string{`{team="a"}`}, `team=~"a|b"`, `team=~"a|b", team="a"`, nil},
		{"regex injected", []string{`{team=~"a|b"}`}, `alertname="X"`, `alertname="X", team=~"a|b"`, nil},
		{"regex with a dot gets the s flag", []string{`{team="a", env!~"prod.*"}`}, `alertname="X"`, `alertname="X", team="a", env!~"(?s:prod.*)"`, nil},
		{"contradiction", []string{`{team="a"}`}, `team="b"`, "", ErrContradicts},
		{"contradicting negation", []string{`{team="a"}`}, `team!="a"`, "", ErrContradicts},
		{"contradicting regex", []string{`{team="a"}`}, `team=~"b|c"`, "", ErrContradicts},
		{"several selectors, none implied", []string{`{team="a"}`, `{team="c"}`}, `alertname="X"`, "", ErrNotOwned},
		{"several selectors, one implied", []string{`{team="a"}`, `{team="c"}`}, `alertname="X", team="c"`, `alertname="X", team="c"`, nil},
		{"UTF-8 name injected", []string{`{"service.name"="checkout"}`}, `alertname="X"`, `alertname="X", service.name="checkout"`, nil}, // as amlabels prints it
		{"UTF-8 name contradicted", []string{`{"service.name"="checkout"}`}, `"service.name"="cart"`, "", ErrContradicts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := policy(t, tc.policy...)
			got, err := e.Inject(amMatchers(t, tc.matchers))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, %v; want error %v", got, err, tc.wantErr)
				}
				// The message names the policy.
				if !strings.Contains(err.Error(), tc.policy[0]) {
					t.Errorf("error %q does not name the policy", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := amlabels.Matchers(got).String(); s != "{"+strings.ReplaceAll(tc.want, ", ", ",")+"}" {
				t.Errorf("got %s, want {%s}", s, tc.want)
			}
			if !e.Owns(got) {
				t.Errorf("injected matchers %s are not owned", amlabels.Matchers(got))
			}
		})
	}
}

// TestInjectedRegexMeansThePolicy checks, value by value, that a regex
// matcher injected into a silence selects in Alertmanager exactly what the
// policy selects in Prometheus, newlines included.
func TestInjectedRegexMeansThePolicy(t *testing.T) {
	e := policy(t, `{env!~"prod.*"}`)
	got, err := e.Inject(amMatchers(t, `alertname="X"`))
	if err != nil {
		t.Fatal(err)
	}
	injected := got[1]
	for _, v := range []string{"", "prod", "prod-1", "prod\nx", "dev", "x\nprod"} {
		if p, a := e.selectors[0][0].Matches(v), injected.Matches(v); p != a {
			t.Errorf("value %q: policy matches %v, silence matcher %s matches %v", v, p, injected, a)
		}
	}
}

func TestContradicts(t *testing.T) {
	for _, tc := range []struct {
		matchers string
		want     bool
	}{
		{`a="1", a="2"`, true},
		{`a="1", a="1"`, false},
		{`a="1", a!="1"`, true},
		{`a="1", a=~"1|2"`, false},
		{`a="1", a=~"2|3"`, true},
		{`a=~"x.*", a!~"x.*"`, true},
		{`a="1", b="2"`, false},
		{`a=~"1", a=~"2"`, false}, // not detected: harmless, selects nothing
	} {
		if got := contradicts(amTerms(amMatchers(t, tc.matchers))); got != tc.want {
			t.Errorf("{%s}: got %v, want %v", tc.matchers, got, tc.want)
		}
	}
}

func TestUpstreamFilters(t *testing.T) {
	for _, tc := range []struct {
		policy []string
		want   []string
	}{
		{[]string{`{team="a"}`}, []string{`team="a"`}},
		{[]string{`{team="a", env="prod", job=~"x.*", ns!="kube"}`}, []string{`team="a"`, `env="prod"`}},
		{[]string{`{team=""}`}, []string{`team=""`}},
		{[]string{`{team="ns-alice_1.example.com:80/x@y+z"}`}, []string{`team="ns-alice_1.example.com:80/x@y+z"`}},
		// Values a matcher parser could read otherwise are not sent.
		{[]string{`{team="a\"b", env="prod"}`}, []string{`env="prod"`}},
		{[]string{`{team="a b"}`}, nil},
		{[]string{`{team="é"}`}, nil},
		{[]string{`{team=~"a"}`}, nil},
		// A UTF-8 name is not sent: Alertmanager 0.26 and before cannot parse it.
		{[]string{`{"service.name"="checkout", team="a"}`}, []string{`team="a"`}},
		{[]string{`{"service.name"="checkout"}`}, nil},
		// A union is no single filter.
		{[]string{`{team="a"}`, `{team="b"}`}, nil},
	} {
		got := policy(t, tc.policy...).UpstreamFilters()
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: UpstreamFilters() = %q, want %q", tc.policy, got, tc.want)
		}
		// Alertmanager reads each as the equality matcher it came from.
		for _, f := range got {
			m, err := compat.Matcher(f, "test")
			if err != nil || m.Type != amlabels.MatchEqual || f != m.Name+`="`+m.Value+`"` {
				t.Errorf("%s: Alertmanager reads %v (%v)", f, m, err)
			}
		}
	}
}
