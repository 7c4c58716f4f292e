package prometheus

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/promgate/promgate/internal/promql"
)

func TestParseEnforcement(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Enforcement
		err  bool
	}{
		{"", EnforceRewrite, false},
		{"rewrite", EnforceRewrite, false},
		{"victoriametrics", EnforceVictoriaMetrics, false},
		{"vm", 0, true},
	} {
		got, err := ParseEnforcement(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseEnforcement(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// TestPushdown checks what VictoriaMetrics reads from a restricted
// identity's request in victoriametrics mode: the client's own query and
// match[] untouched, no series-selecting parameter of the client's, and
// the policy's selectors as extra_filters[].
func TestPushdown(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	teamA := []string{`{team="a"}`}
	for _, tc := range []struct {
		name       string
		policy     []string // selectors; nil: no enforcer
		method     string
		target     string
		body       string
		wantStatus int
		wantError  string
		wantParams map[string][]string
		wantPath   string // the path forwarded, when not the target's
	}{
		{name: "MetricsQL query untouched", policy: teamA, method: "GET",
			target:     "/api/v1/query?query=" + esc(`WITH (x = rate(foo_a)) sum(x) by (team)`) + "&time=10&step=30s",
			wantStatus: 200, wantParams: map[string][]string{"query": {`WITH (x = rate(foo_a)) sum(x) by (team)`}, "time": {"10"}, "step": {"30s"}, "extra_filters[]": teamA}},
		{name: "range query in a POST body", policy: teamA, method: "POST", target: "/api/v1/query_range",
			body:       "query=" + esc(`rate(foo_a)`) + "&start=1&end=2&step=1&nocache=1",
			wantStatus: 200, wantParams: map[string][]string{"query": {"rate(foo_a)"}, "start": {"1"}, "end": {"2"}, "step": {"1"}, "nocache": {"1"}, "extra_filters[]": teamA}},
		{name: "client filters in the URL removed", policy: teamA, method: "GET",
			target: "/api/v1/query?query=up&extra_filters[]=" + esc(`{__name__=~".+"}`) + "&extra_filters=" + esc(`{team="b"}`) +
				"&extra_label=team=b&extra_label[]=team=b",
			wantStatus: 200, wantParams: map[string][]string{"query": {"up"}, "extra_filters[]": teamA}},
		{name: "client filters in the body removed", policy: teamA, method: "POST", target: "/api/v1/query_range?extra_filters=" + esc(`{team="b"}`),
			body:       "query=up&start=1&end=2&step=1&extra_filters[]=" + esc(`{__name__=~".+"}`) + "&extra_label=team%3Db",
			wantStatus: 200, wantParams: map[string][]string{"query": {"up"}, "start": {"1"}, "end": {"2"}, "step": {"1"}, "extra_filters[]": teamA}},
		{name: "every selector one extra_filters[], regex and negative matchers", method: "GET",
			policy:     []string{`{team="c", env!="prod"}`, `{__name__=~"http_request.*", code!~"5..", team="a"}`, `{__name__!="secret"}`},
			target:     "/api/v1/query?query=up",
			wantStatus: 200, wantParams: map[string][]string{"query": {"up"}, "extra_filters[]": {
				`{team="c", env!="prod"}`, `{__name__=~"http_request.*", code!~"5..", team="a"}`, `{__name__!="secret", __name__=~".+"}`}}},
		{name: "UTF-8 label name quoted, regex escapes kept", method: "GET",
			policy:     []string{`{"service.name"="checkout"}`, `{__name__=~"http\\.server\\..*"}`},
			target:     "/api/v1/query?query=up",
			wantStatus: 200, wantParams: map[string][]string{"query": {"up"}, "extra_filters[]": {`{"service.name"="checkout"}`, `{__name__=~"http\\.server\\..*"}`}}},
		{name: "contradictory selectors: one that selects nothing", method: "GET",
			policy:     []string{`{team="a", team="b"}`},
			target:     "/api/v1/query?query=up",
			wantStatus: 200, wantParams: map[string][]string{"query": {"up"}, "extra_filters[]": {`{team="a", team="b"}`}}},
		{name: "no policy: refused", method: "GET", target: "/api/v1/query?query=up", wantStatus: 403, wantError: "the policy selects no series"},
		{name: "series match[] untouched", policy: teamA, method: "GET", target: "/api/v1/series?match[]=up&match[]=" + esc(`{job="x"}`) + "&start=1",
			wantStatus: 200, wantParams: map[string][]string{"match[]": {"up", `{job="x"}`}, "start": {"1"}, "extra_filters[]": teamA}},
		{name: "series without match[]: VictoriaMetrics answers", policy: teamA, method: "GET", target: "/api/v1/series",
			wantStatus: 200, wantParams: map[string][]string{"extra_filters[]": teamA}},
		{name: "labels without match[]: the policy as match[] too", policy: teamA, method: "GET", target: "/api/v1/labels?start=1",
			wantStatus: 200, wantParams: map[string][]string{"match[]": teamA, "start": {"1"}, "extra_filters[]": teamA}},
		{name: "label values", policy: teamA, method: "GET", target: "/api/v1/label/job/values?match[]=up",
			wantStatus: 200, wantParams: map[string][]string{"match[]": {"up"}, "extra_filters[]": teamA}},
		{name: "label values without match[]", policy: teamA, method: "GET", target: "/api/v1/label/__name__/values",
			wantStatus: 200, wantParams: map[string][]string{"match[]": teamA, "extra_filters[]": teamA}},
		{name: "federate", policy: teamA, method: "GET", target: "/federate?match[]=up&extra_label=team=b",
			wantStatus: 200, wantParams: map[string][]string{"match[]": {"up"}, "extra_filters[]": teamA}},
		{name: "export", policy: teamA, method: "POST", target: "/api/v1/export",
			body:       "match[]=up&start=1&end=2&max_rows_per_line=10&extra_filters[]=" + esc(`{team="b"}`),
			wantStatus: 200, wantParams: map[string][]string{"match[]": {"up"}, "start": {"1"}, "end": {"2"}, "max_rows_per_line": {"10"}, "extra_filters[]": teamA}},
		{name: "export csv not routed", policy: teamA, method: "GET", target: "/api/v1/export/csv?match[]=up", wantStatus: 403, wantError: "not available"},
		{name: "other paths keep rewrite", policy: teamA, method: "GET", target: "/api/v1/query_exemplars?query=up&start=1&end=2",
			wantStatus: 200, wantParams: map[string][]string{"query": {`{__name__="up",team="a"}`}, "start": {"1"}, "end": {"2"}}},
		{name: "admin API refused", policy: teamA, method: "GET", target: "/api/v1/admin/tsdb/delete_series?match[]=up", wantStatus: 403},
		{name: "query twice refused", policy: teamA, method: "GET", target: "/api/v1/query?query=up&query=x", wantStatus: 400, wantError: "more than once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var enf *promql.Enforcer
			if tc.policy != nil {
				enf = enforcer(t, tc.policy...)
			}
			got, up := handle(t, Options{MaxBodyBytes: 4096, Enforcement: EnforceVictoriaMetrics}, tc.method, tc.target, form, tc.body, enf)
			checkForwarded(t, got, up, tc.method, tc.wantStatus, tc.wantError, tc.wantParams)
		})
	}
}

// TestExportRewrite checks /api/v1/export in rewrite mode: match[] is
// required and narrowed by the policy.
func TestExportRewrite(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		wantStatus   int
		wantError    string
		wantParams   map[string][]string
	}{
		{name: "narrowed", target: "/api/v1/export?match[]=up&start=1&extra_filters[]=" + esc(`{team="b"}`),
			wantStatus: 200, wantParams: map[string][]string{"match[]": {`{__name__="up", team="a"}`}, "start": {"1"}}},
		{name: "match[] required", target: "/api/v1/export", wantStatus: 400, wantError: "missing `match[]` arg"},
		{name: "query not rewritten to extra_filters", target: "/api/v1/query?query=up&extra_filters[]=" + esc(`{team="b"}`),
			wantStatus: 200, wantParams: map[string][]string{"query": {`{__name__="up",team="a"}`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, up := handle(t, Options{}, "GET", tc.target, "", "", enforcer(t, `{team="a"}`))
			checkForwarded(t, got, up, "GET", tc.wantStatus, tc.wantError, tc.wantParams)
		})
	}
}

func esc(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", " ", "%20", `"`, "%22", "#", "%23", "=", "%3D").Replace(s)
}

func handle(t *testing.T, o Options, method, target, contentType, body string, enf *promql.Enforcer) (*httptest.ResponseRecorder, *recorder) {
	t.Helper()
	up := &recorder{}
	api := New(up, o)
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if method == "POST" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	api.Handle(rec, req, req.URL.Path, enf)
	return rec, up
}

func checkForwarded(t *testing.T, rec *httptest.ResponseRecorder, up *recorder, method string, wantStatus int, wantError string, wantParams map[string][]string) {
	t.Helper()
	if rec.Code != wantStatus {
		t.Fatalf("status %d, want %d; body %s", rec.Code, wantStatus, rec.Body)
	}
	if wantStatus >= 400 {
		var env struct{ Status, Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Status != "error" {
			t.Fatalf("not an error envelope: %s", rec.Body)
		}
		if !strings.Contains(env.Error, wantError) {
			t.Errorf("error %q, want it to contain %q", env.Error, wantError)
		}
		if len(up.got) != 0 {
			t.Errorf("a refused request reached the upstream: %v", up.got[0].URL)
		}
		return
	}
	if len(up.got) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(up.got))
	}
	got := up.params[0]
	if len(got) != len(wantParams) {
		t.Errorf("upstream params %q, want %q", got, wantParams)
	}
	for k, want := range wantParams {
		if strings.Join(got[k], "\n") != strings.Join(want, "\n") {
			t.Errorf("upstream %s = %q, want %q", k, got[k], want)
		}
	}
	if method == "POST" && up.got[0].URL.RawQuery != "" {
		t.Errorf("POST forwarded with a query string %q", up.got[0].URL.RawQuery)
	}
}

// TestRangeQueryOfRangeSelector checks that a range query of a bare range
// selector under a policy of several selectors asks once per selector and
// merges the answers, as the instant query does: VictoriaMetrics answers
// such a query (Prometheus refuses it, and its first error is the answer).
func TestRangeQueryOfRangeSelector(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers map[string]string
		want    string // substring of the answer
		series  int
	}{
		{name: "merged", answers: map[string]string{
			`{__name__="x",team="a"}[5m]`: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"x","team":"a"},"values":[[1,"1"]]}]}}`,
			`{__name__="x",env="p"}[5m]`:  `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"x","team":"a"},"values":[[1,"1"]]},{"metric":{"__name__":"x","env":"p"},"values":[[1,"2"]]}]}}`,
		}, want: `"resultType":"matrix"`, series: 2},
		{name: "first error is the answer", answers: map[string]string{
			`{__name__="x",team="a"}[5m]`: `{"status":"error","errorType":"bad_data","error":"invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"}`,
		}, want: `range vector`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &fixedUpstream{answers: tc.answers}
			api := New(up, Options{})
			req := httptest.NewRequest("GET", "/api/v1/query_range?query=x[5m]&start=1&end=2&step=1", nil)
			rec := httptest.NewRecorder()
			api.Handle(rec, req, "/api/v1/query_range", enforcer(t, `{team="a"}`, `{env="p"}`))
			if !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("answer %s, want it to contain %s", rec.Body, tc.want)
			}
			var got struct {
				Data struct{ Result []any }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Data.Result) != tc.series {
				t.Errorf("%d series, want %d: %s", len(got.Data.Result), tc.series, rec.Body)
			}
		})
	}
}
