package alertmanager

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/promgate/promgate/internal/jsonscan"
)

// amConfig is a configuration as Alertmanager 0.25 prints it in
// config.original (secrets masked), with one route per team.
const amConfig = `global:
  resolve_timeout: 5m
route:
  receiver: default
  group_by:
  - alertname
  continue: false
  routes:
  - receiver: team-a
    matchers:
    - team="a"
    continue: false
  - receiver: team-a-pager
    match:
      team: a
      severity: page
    continue: true
  - receiver: team-b
    matchers:
    - team=~"b|b2"
    continue: false
    routes:
    - receiver: team-b-db
      match_re:
        service: db.*
  - receiver: audit
    matchers:
    - env="prod"
    continue: true
  - matchers:
    - team="c"
inhibit_rules:
- source_matchers: [alertname="ClusterDown"]
  target_matchers: [severity="warning"]
- source_match: {alertname: TeamDown}
  target_match_re: {severity: warning|info}
  equal: [team]
- source_matchers: [alertname="Impossible"]
  target_matchers: [x="1", x="2"]
receivers:
- name: default
- name: team-a
- name: team-a-pager
- name: team-b
- name: team-b-db
- name: audit
- name: unused
  webhook_configs:
  - url: <secret>
templates: []
`

func TestReceivers(t *testing.T) {
	for _, tc := range []struct {
		policy []string
		want   []string
	}{
		// team="a" always takes the first route, which does not continue:
		// neither the pager route after it nor the root's default.
		{[]string{`{team="a"}`}, []string{"team-a"}},
		// Any team b alert takes the team-b route; db ones go on to its
		// child, the others stay at team-b.
		{[]string{`{team="b"}`}, []string{"team-b", "team-b-db"}},
		{[]string{`{team="b", service="web"}`}, []string{"team-b"}},
		{[]string{`{team="b", service="db1"}`}, []string{"team-b-db"}},
		// A route without a receiver inherits its parent's; before it,
		// prod alerts go to audit too.
		{[]string{`{team="c"}`}, []string{"audit", "default"}},
		{[]string{`{team="c", env!="prod"}`}, []string{"default"}},
		// Maybe prod, maybe not: audit continues, then default (a team d
		// alert matches no other route).
		{[]string{`{team="d"}`}, []string{"audit", "default"}},
		{[]string{`{team="d", env="prod"}`}, []string{"audit"}},
		{[]string{`{team="d", env="dev"}`}, []string{"default"}},
		{[]string{`{team="a"}`, `{team="b", service="web"}`}, []string{"team-a", "team-b"}},
		// Unknown team: anything but the team routes.
		{[]string{`{team=~".+"}`}, []string{"audit", "default", "team-a", "team-a-pager", "team-b", "team-b-db"}},
	} {
		cfg, err := ParseConfig(amConfig)
		if err != nil {
			t.Fatal(err)
		}
		got := policy(t, tc.policy...).Receivers(cfg)
		if names := slices.Sorted(maps.Keys(got)); !reflect.DeepEqual(names, tc.want) {
			t.Errorf("%v: got %v, want %v", tc.policy, names, tc.want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, cfg := range []string{
		"",
		"route: [",
		"route:\n  routes:\n  - matchers: ['a=~\"(\"']\n",
		"route: {}\ninhibit_rules:\n- source_matchers: ['a=']\n  target_match_re: {a: '('}\n",
	} {
		if _, err := ParseConfig(cfg); err == nil {
			t.Errorf("ParseConfig(%q): no error", cfg)
		}
	}
}

func TestCheckInhibitions(t *testing.T) {
	cfg, err := ParseConfig(amConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		policy []string
		labels map[string]string
		want   error
	}{
		// Not a source of any rule.
		{[]string{`{team="a"}`}, map[string]string{"alertname": "X", "team": "a"}, nil},
		// ClusterDown inhibits every team's warnings.
		{[]string{`{team="a"}`}, map[string]string{"alertname": "ClusterDown", "team": "a"}, ErrInhibits},
		// ... unless the policy is about warnings of everybody.
		{[]string{`{severity="warning"}`}, map[string]string{"alertname": "ClusterDown", "severity": "warning"}, nil},
		// TeamDown inhibits within its team only (equal: [team]).
		{[]string{`{team="a"}`}, map[string]string{"alertname": "TeamDown", "team": "a"}, nil},
		{[]string{`{team=~"a|b"}`}, map[string]string{"alertname": "TeamDown", "team": "b"}, nil},
		// Targets restricted further by the policy: a team a alert that is
		// not a warning or info is not the tenant's to inhibit.
		{[]string{`{team="a", severity!="page"}`}, map[string]string{"alertname": "TeamDown", "team": "a", "severity": "info"}, nil},
		{[]string{`{team="a", env="dev"}`}, map[string]string{"alertname": "TeamDown", "team": "a", "env": "dev"}, ErrInhibits},
		// A rule whose targets cannot exist inhibits nothing.
		{[]string{`{team="a"}`}, map[string]string{"alertname": "Impossible", "team": "a"}, nil},
	} {
		err := policy(t, tc.policy...).CheckInhibitions(cfg, []PostableAlert{{Labels: map[string]string{"alertname": "Fine", "team": "a"}}, {Labels: tc.labels}})
		if !errors.Is(err, tc.want) {
			t.Errorf("%v posting %v: %v, want %v", tc.policy, tc.labels, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "alert 1 with labels") {
			t.Errorf("error %q does not name the alert", err)
		}
	}
}

func TestFilterReceivers(t *testing.T) {
	out, err := FilterReceivers([]byte(`[{"name":"default"},{"name":"team-a"},{"name":"team-b"}]`), map[string]bool{"team-a": true})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `[{"name":"team-a"}]` {
		t.Errorf("got %s", out)
	}
	out, _ = FilterReceivers([]byte(`[{"name":"default"}]`), nil)
	if string(out) != `[]` {
		t.Errorf("got %s", out)
	}
}

// TestFilterReceiversAmbiguousKeys: a receiver's name given twice is read
// as clients matching keys exactly read it (the last) and written once;
// spelt otherwise ("Name", which encoding/json reads), refused.
func TestFilterReceiversAmbiguousKeys(t *testing.T) {
	keep := map[string]bool{"team-a": true}
	for _, tc := range []struct{ body, want string }{
		{`[{"name":"team-b","name":"team-a"}]`, `[{"name":"team-a"}]`},
		{`[{"name":"team-a","name":"team-b"}]`, `[]`},
		{`[{"name":"team-b","Name":"team-a"}]`, "refused"},
		{`[{"NAME":"team-b"},{"name":"team-a"}]`, "refused"},
	} {
		out, err := FilterReceivers([]byte(tc.body), keep)
		switch {
		case tc.want == "refused":
			if !errors.Is(err, jsonscan.ErrSpelling) {
				t.Errorf("%s: %s, %v; want %v", tc.body, out, err, jsonscan.ErrSpelling)
			}
		case err != nil || string(out) != tc.want:
			t.Errorf("%s: %s, %v; want %s", tc.body, out, err, tc.want)
		}
	}
}

func TestRedactStatus(t *testing.T) {
	in := `{"cluster":{"name":"01GZ","peers":[{"address":"10.0.0.1:9094","name":"01GZ"},{"address":"10.0.0.2:9094","name":"01H0"}],"status":"ready"},` +
		`"config":{"original":"route:\n  receiver: team-b\n"},"uptime":"2026-11-22T01:14:15.284Z",` +
		`"versionInfo":{"branch":"debian/sid","buildDate":"20230409","buildUser":"u","goVersion":"go1.19.8","revision":"r","version":"0.25.0"},"future":"x"}`
	out, err := RedactStatus([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster":{"name":"01GZ","status":"ready","peers":[{"name":"01GZ","address":""},{"name":"01H0","address":""}]},"config":{"original":""},` +
		`"uptime":"2026-11-22T01:14:15.284Z","versionInfo":{"branch":"debian/sid","buildDate":"20230409","buildUser":"u","goVersion":"go1.19.8","revision":"r","version":"0.25.0"}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	for _, leak := range []string{"10.0.0", "team-b", "future"} {
		if strings.Contains(string(out), leak) {
			t.Errorf("%q left in %s", leak, out)
		}
	}

	// Clustering disabled: no name, no peers; still the shape clients read.
	out, err = RedactStatus([]byte(`{"cluster":{"peers":[],"status":"disabled"},"config":{"original":"x"},"uptime":"u","versionInfo":{"version":"0.25.0"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	_ = json.Unmarshal(out, &s)
	if !reflect.DeepEqual(s["cluster"], map[string]any{"status": "disabled", "peers": []any{}}) || !reflect.DeepEqual(s["config"], map[string]any{"original": ""}) {
		t.Errorf("got %s", out)
	}

	if _, err := RedactStatus([]byte(`{"config":{}}`)); err == nil {
		t.Error("a status without version, uptime and cluster: no error")
	}
}
