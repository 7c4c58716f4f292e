package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/promgate/promgate/internal/server"
)

func TestExplain(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		// want are lines of the output; stderr, when set, is in stderr.
		want   []string
		absent []string
		stderr string
		config string // testdata/explain.yml when empty
	}{{
		name:   "victoriametrics: the query goes as given, the policy as extra_filters[]",
		config: "testdata/explain-vm.yml",
		args:   []string{"--user", "bob", "--match", "up", "WITH (x = rate(y)) x"},
		want: []string{
			"sent:             WITH (x = rate(y)) x",
			"match[] sent:     up",
			`extra_filters[]:  {job="bob"}, {namespace="shared", env!="prod"} (handed down: the upstream keeps the series matching any of them)`,
		},
		absent: []string{" or "},
	}, {
		name: "group policy rewrites the query",
		args: []string{"--user", "alice", "--method", "basic", "sum(rate(http_requests_total[5m]))"},
		want: []string{
			"method:           basic",
			"groups:           team-a",
			"policies:         team-a",
			`    series whose label "namespace" is "a"`,
			`sent:             sum(rate({__name__="http_requests_total",namespace="a"}[5m]))`,
		},
	}, {
		name: "the identity's limits, each in the configuration's key",
		args: []string{"--user", "alice", "up"},
		want: []string{
			"limits:           rate: 5 requests per second, burst 5",
			"                  upstream_time: 0.05 seconds of upstream time per second, saved up to 3s (upstream_time_burst)",
			"                  max_query_length: 64 bytes",
			`                  blocked_queries: "^(?:.*_bucket.*)$": histograms are read through the recording rules`,
		},
	}, {
		name:   "no limits, no line",
		args:   []string{"--user", "bob", "up"},
		absent: []string{"limits:"},
	}, {
		name: "a query a guard refuses",
		args: []string{"--user", "alice", "sum(rate(http_request_duration_seconds_bucket[5m]))"},
		code: 1,
		want: []string{`refused:          query is blocked by the pattern "^(?:.*_bucket.*)$" (blocked_queries): histograms are read through the recording rules`},
	}, {
		name: "a query over max_query_length",
		args: []string{"--user", "alice", "sum by (instance, job, namespace) (rate(http_requests_total[5m]))"},
		code: 1,
		want: []string{"refused:          query is 65 bytes long, over the limit of 64 bytes (max_query_length)"},
	}, {
		name: "asserted group joins the configuration's",
		args: []string{"--user", "carol", "--group", "team-a", "up"},
		want: []string{"groups:           team-a", `sent:             {__name__="up",namespace="a"}`},
	}, {
		name: "templated union, bare range selector sent as several queries",
		args: []string{"--user", "bob", "foo[5m]"},
		want: []string{
			"  {job=\"bob\"}",
			"sent:             these, their answers merged by promgate:",
			`  {__name__="foo",job="bob"}[5m]`,
			`  {__name__="foo",env!="prod",namespace="shared"}[5m]`,
		},
	}, {
		name: "match[] combined with every selector",
		args: []string{"--user", "bob", "--match", "up"},
		want: []string{`match[] sent:     {__name__="up", job="bob"}, {__name__="up", namespace="shared", env!="prod"}`},
	}, {
		name: "alertmanager filter of one selector",
		args: []string{"--user", "alice", "--alertmanager-filter"},
		want: []string{`alert filter:     namespace="a" (added upstream; the answer is filtered by the selectors too)`},
	}, {
		name: "alertmanager filter of a union",
		args: []string{"--user", "bob", "--alertmanager-filter"},
		want: []string{"alert filter:     none added upstream; promgate drops the alerts outside the selectors from the answer"},
	}, {
		name: "silence gets the selector injected",
		args: []string{"--user", "alice", "--silence", `{alertname="Down"}`},
		want: []string{`silence owned:    no: promgate adds namespace="a"`, `silence sent:     alertname="Down", namespace="a"`},
	}, {
		name: "silence already owned",
		args: []string{"--user", "alice", "--silence", `alertname="Down",namespace="a"`},
		want: []string{"silence owned:    yes: its matchers imply the selectors"},
	}, {
		name:   "silence contradicting the policy is refused",
		args:   []string{"--user", "alice", "--silence", `{namespace="b"}`},
		code:   1,
		want:   []string{"refused:          silence matchers contradict the policy"},
		absent: []string{"silence sent:"},
		stderr: "refused: silence matchers contradict the policy",
	}, {
		name:   "silence under a union must imply a selector",
		args:   []string{"--user", "bob", "--silence", `{alertname="x"}`},
		code:   1,
		stderr: "must imply one of the policy's selectors",
	}, {
		name:   "no policy",
		args:   []string{"--user", "carol", "up"},
		code:   1,
		want:   []string{"policies:         (none)"},
		stderr: `refused: user "carol": no policy grants access to this identity`,
	}, {
		name:   "query that does not parse",
		args:   []string{"--user", "alice", "up{"},
		code:   1,
		stderr: `refused: invalid parameter "query"`,
	}, {
		name:   "bad match[]",
		args:   []string{"--user", "alice", "--match", "{"},
		code:   1,
		stderr: `refused: invalid parameter "match[]"`,
	}, {
		name: "allow_all forwards unchanged",
		args: []string{"--user", "root", "--alertmanager-filter", "up", "--match", "up"},
		want: []string{
			"policies:         admins",
			"access:           unrestricted (allow_all): requests are forwarded unchanged",
			"sent:             up",
			"match[] sent:     up",
			"alert filter:     none: listings are forwarded unchanged",
		},
		absent: []string{"series whose"},
	}, {
		name:   "configuration missing",
		config: "testdata/missing.yml",
		args:   []string{"--user", "alice", "up"},
		code:   2,
		stderr: "missing.yml",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "testdata/explain.yml"
			if tc.config != "" {
				cfg = tc.config
			}
			var out, errb bytes.Buffer
			code := run(append([]string{"explain", "--config.file=" + cfg}, tc.args...), strings.NewReader(""), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &out, &errb)
			}
			lines := strings.Split(out.String(), "\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no line %q in:\n%s", w, &out)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(out.String(), a) {
					t.Errorf("%q in:\n%s", a, &out)
				}
			}
			if !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("stderr %q does not contain %q", &errb, tc.stderr)
			}
		})
	}
}

func TestExplainJSON(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"explain", "--config.file=testdata/explain.yml", "--user", "bob", "--json", "--match", "up", `rate(x[1m])`}, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, &errb)
	}
	var ex server.Explanation
	if err := json.Unmarshal(out.Bytes(), &ex); err != nil {
		t.Fatalf("%v in %s", err, &out)
	}
	if ex.User != "bob" || len(ex.Selectors) != 2 || len(ex.Sent) != 1 || len(ex.MatchSent) != 2 {
		t.Fatalf("unexpected explanation: %+v", ex)
	}
	if !strings.Contains(ex.Sent[0], `job="bob"`) || !strings.Contains(ex.Sent[0], " or ") {
		t.Errorf("sent %q is not the union of the policy's selectors", ex.Sent[0])
	}
}
