package prometheus

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// versionedUpstream answers format_query as Prometheus 3 (quoted label
// names parse) or 2.x (they do not) and records everything else.
type versionedUpstream struct {
	recorder
	utf8   bool
	probes int
}

func (u *versionedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/format_query" {
		u.recorder.ServeHTTP(w, r)
		return
	}
	u.probes++
	w.Header().Set("Content-Type", "application/json")
	if !u.utf8 {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"status":"error","errorType":"bad_data","error":"1:2: parse error: unexpected string"}`)
		return
	}
	io.WriteString(w, `{"status":"success","data":"{\"promgate.probe\"=\"1\"}"}`)
}

func (u *versionedUpstream) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func TestUTF8Names(t *testing.T) {
	const (
		dotted = `{"service.name"="checkout"}`
		teamA  = `{team="a"}`
	)
	for _, tc := range []struct {
		name       string
		utf8       bool   // the upstream parses UTF-8 names
		policy     string // one selector
		target     string
		wantStatus int
		wantError  string
		wantParams map[string][]string
		wantURI    string // the request line's URI upstream, when set
		wantProbes int
	}{
		// A metric name is written as a __name__ matcher: 2.x parses it.
		{name: "dotted metric to 2.x", policy: teamA, target: `/api/v1/query?query={"http.server.duration"}`,
			wantStatus: 200, wantParams: map[string][]string{"query": {`{__name__="http.server.duration",team="a"}`}}},
		{name: "metric name regex policy to 2.x", policy: `{__name__=~"http\\.server\\..*"}`, target: `/api/v1/query?query=up`,
			wantStatus: 200, wantParams: map[string][]string{"query": {`{__name__="up",__name__=~"http\\.server\\..*"}`}}},
		{name: "query with UTF-8 label to 3.x", utf8: true, policy: teamA,
			target:     `/api/v1/query?query=` + urlq(`{"http.server.duration", "service.name"="x"}`),
			wantStatus: 200, wantProbes: 1,
			wantParams: map[string][]string{"query": {`{"service.name"="x",__name__="http.server.duration",team="a"}`}}},
		{name: "query with UTF-8 label to 2.x", policy: teamA,
			target:     `/api/v1/query?query=` + urlq(`{"http.server.duration", "service.name"="x"}`),
			wantStatus: 400, wantError: `label name "service.name" cannot be sent to this Prometheus`, wantProbes: 1},
		{name: "UTF-8 grouping to 2.x", policy: teamA, target: `/api/v1/query_range?query=` + urlq(`sum by ("k8s.pod") (up)`) + `&start=1&end=2&step=1`,
			wantStatus: 400, wantError: `label name "k8s.pod"`, wantProbes: 1},
		{name: "UTF-8 policy on a plain query to 2.x", policy: dotted, target: `/api/v1/query?query=up`,
			wantStatus: 400, wantError: `label name "service.name"`, wantProbes: 1},
		{name: "UTF-8 policy on a plain query to 3.x", utf8: true, policy: dotted, target: `/api/v1/query?query=up`,
			wantStatus: 200, wantProbes: 1, wantParams: map[string][]string{"query": {`{"service.name"="checkout",__name__="up"}`}}},
		{name: "series with UTF-8 policy to 3.x", utf8: true, policy: dotted, target: `/api/v1/series?match[]=` + urlq(`{"http.server.duration"}`),
			wantStatus: 200, wantProbes: 1, wantParams: map[string][]string{"match[]": {`{__name__="http.server.duration", "service.name"="checkout"}`}}},
		{name: "series with UTF-8 policy to 2.x", policy: dotted, target: `/api/v1/series?match[]=up`,
			wantStatus: 400, wantError: `label name "service.name"`, wantProbes: 1},
		{name: "labels with UTF-8 match[] to 2.x", policy: teamA, target: `/api/v1/labels?match[]=` + urlq(`{"a.b"="1"}`),
			wantStatus: 400, wantError: `label name "a.b"`, wantProbes: 1},
		{name: "federate with UTF-8 match[] to 2.x", policy: teamA, target: `/federate?match[]=` + urlq(`{"a.b"="1"}`),
			wantStatus: 400, wantError: `label name "a.b"`, wantProbes: 1},
		{name: "metadata under a UTF-8 policy to 2.x", policy: dotted, target: `/api/v1/metadata`,
			wantStatus: 400, wantError: `label name "service.name"`, wantProbes: 1},
		{name: "plain series to 2.x: no probe", policy: teamA, target: `/api/v1/series?match[]=up`,
			wantStatus: 200, wantParams: map[string][]string{"match[]": {`{__name__="up", team="a"}`}}},
		// Label values: U__ is Prometheus 3's escaping of a name in a path.
		{name: "U__ label values to 3.x", utf8: true, policy: teamA, target: `/api/v1/label/U__service_2e_name/values`,
			wantStatus: 200, wantProbes: 1, wantURI: "/api/v1/label/U__service_2e_name/values",
			wantParams: map[string][]string{"match[]": {`{team="a"}`}}},
		{name: "U__ label values to 2.x", policy: teamA, target: `/api/v1/label/U__service_2e_name/values`,
			wantStatus: 400, wantError: `label name "service.name"`, wantProbes: 1},
		{name: "dotted label values to 3.x", utf8: true, policy: teamA, target: `/api/v1/label/service.name/values`,
			wantStatus: 200, wantProbes: 1, wantURI: "/api/v1/label/service.name/values",
			wantParams: map[string][]string{"match[]": {`{team="a"}`}}},
		{name: "non-ASCII label values escaped once", utf8: true, policy: teamA, target: `/api/v1/label/%C3%BC/values`,
			wantStatus: 200, wantProbes: 1, wantURI: "/api/v1/label/%C3%BC/values",
			wantParams: map[string][]string{"match[]": {`{team="a"}`}}},
		{name: "U__ of a legacy name: as written, no probe", policy: teamA, target: `/api/v1/label/U__job/values`,
			wantStatus: 200, wantURI: "/api/v1/label/U__job/values", wantParams: map[string][]string{"match[]": {`{team="a"}`}}},
		{name: "invalid UTF-8 label name", utf8: true, policy: teamA, target: `/api/v1/label/%FF/values`,
			wantStatus: 400, wantError: `invalid label name`},
		{name: "U__ decoding to invalid UTF-8", utf8: true, policy: teamA, target: `/api/v1/label/U___d800_/values`,
			wantStatus: 200, wantProbes: 0, wantURI: "/api/v1/label/U___d800_/values", wantParams: map[string][]string{"match[]": {`{team="a"}`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &versionedUpstream{utf8: tc.utf8}
			api := New(up, Options{})
			req := httptest.NewRequest(http.MethodGet, tc.target, nil)
			rec := httptest.NewRecorder()
			api.Handle(rec, req, req.URL.Path, enforcer(t, tc.policy))
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if up.probes != tc.wantProbes {
				t.Errorf("%d probes, want %d", up.probes, tc.wantProbes)
			}
			if tc.wantStatus >= 400 {
				var env struct{ Status, ErrorType, Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Status != "error" || env.ErrorType != "bad_data" {
					t.Fatalf("not a bad_data envelope: %s", rec.Body)
				}
				if !strings.Contains(env.Error, tc.wantError) {
					t.Errorf("error %q, want it to contain %q", env.Error, tc.wantError)
				}
				if len(up.got) != 0 {
					t.Errorf("a refused request reached the upstream: %v", up.got[0].URL)
				}
				return
			}
			if len(up.got) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(up.got))
			}
			for k, want := range tc.wantParams {
				if got := up.params[0][k]; strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("upstream %s = %q, want %q", k, got, want)
				}
			}
			if tc.wantURI != "" {
				if got := up.got[0].URL.EscapedPath(); got != tc.wantURI {
					t.Errorf("upstream path %s, want %s", got, tc.wantURI)
				}
			}
		})
	}
}

// The verdict is asked once, not per request.
func TestUTF8ProbeCached(t *testing.T) {
	up := &versionedUpstream{utf8: true}
	api := New(up, Options{})
	enf := enforcer(t, `{"service.name"="checkout"}`)
	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up", nil)
		rec := httptest.NewRecorder()
		api.Handle(rec, req, req.URL.Path, enf)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	if up.probes != 1 {
		t.Errorf("%d probes, want 1", up.probes)
	}
}

func urlq(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", " ", "%20", `"`, "%22", "{", "%7B", "}", "%7D", "#", "%23")
	return r.Replace(s)
}

// mayQuoteName must hold for every query whose printed form names a UTF-8
// label, or checkQueryNames would let it through to a 2.x upstream.
func TestMayQuoteName(t *testing.T) {
	for _, q := range []string{
		`{"a.b"="1"}`, `up{job="x","a.b"!="1"}`, `up{"a.b"=~"1"}`, `up{"a.b"!~"1"}`,
		`sum by ("a.b") (up)`, `sum without (job, "a.b") (up)`,
		`up * on ("a.b") up`, `up * ignoring (job, "a.b") up`, `up * on (job) group_left ("a.b") up`, `up / on (job) group_right (instance, "a.b") up`,
		`rate({"a.b"="1"}[5m] offset 1m)`, `count_values("x", {"a.b"="1"})`,
	} {
		expr, err := pqlParser.ParseExpr(q)
		if err != nil {
			t.Fatal(err)
		}
		printed := expr.String()
		if !mayQuoteName(printed) {
			t.Errorf("%s is printed %s, which mayQuoteName passes over", q, printed)
		}
	}
	for _, q := range []string{`up{job="a"}`, `sum by (job) (rate(x{a="b"}[5m]))`, `{__name__="a.b"}`} {
		if mayQuoteName(q) {
			t.Errorf("mayQuoteName(%s): want false (no quoted name)", q)
		}
	}
}
