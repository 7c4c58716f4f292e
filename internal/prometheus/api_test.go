package prometheus

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/promgate/promgate/internal/promql"
)

// recorder stands in for the upstream in these HTTP-layer tests: it records
// what would have been forwarded. The real Prometheus is in e2e/.
type recorder struct {
	got []*http.Request
	// params are what the upstream would read: r.ParseForm, as Prometheus.
	params []url.Values
}

func (u *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		panic(err)
	}
	u.got = append(u.got, r)
	u.params = append(u.params, r.Form)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
}

func (u *recorder) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (u *recorder) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

func enforcer(t *testing.T, sels ...string) *promql.Enforcer {
	t.Helper()
	var ms [][]*labels.Matcher
	for _, s := range sels {
		m, err := pqlParser.ParseMetricSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	e, err := promql.New(ms)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestHandle(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name        string
		method      string
		target      string
		contentType string
		body        string
		wantStatus  int
		wantError   string              // substring of the error envelope
		wantParams  map[string][]string // what the upstream reads
	}{
		{name: "GET query rewritten", method: "GET", target: "/api/v1/query?query=up&time=10",
			wantStatus: 200, wantParams: map[string][]string{"query": {`{__name__="up",team="a"}`}, "time": {"10"}}},
		{name: "POST query rewritten", method: "POST", target: "/api/v1/query_range", contentType: form,
			body: "query=sum(rate(x[5m]))&start=1&end=2&step=1", wantStatus: 200,
			wantParams: map[string][]string{"query": {`sum(rate({__name__="x",team="a"}[5m]))`}, "start": {"1"}, "end": {"2"}, "step": {"1"}}},
		{name: "query in URL and body is refused", method: "POST", target: "/api/v1/query?query=up", contentType: form,
			body: "query=secret_metric", wantStatus: 400, wantError: `parameter \"query\" given more than once`},
		{name: "query twice in URL is refused", method: "GET", target: "/api/v1/query?query=up&query=other", wantStatus: 400, wantError: "more than once"},
		{name: "unknown parameters dropped", method: "GET", target: "/api/v1/query?query=up&extra_label=x",
			wantStatus: 200, wantParams: map[string][]string{"query": {`{__name__="up",team="a"}`}}},
		{name: "unparsable PromQL", method: "GET", target: "/api/v1/query?query=sum(", wantStatus: 400, wantError: "parse error"},
		{name: "missing query", method: "GET", target: "/api/v1/query", wantStatus: 400, wantError: "invalid parameter"},
		{name: "multipart refused", method: "POST", target: "/api/v1/query", contentType: "multipart/form-data; boundary=x",
			body: "--x\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nup\r\n--x--\r\n", wantStatus: 415, wantError: "Content-Type"},
		{name: "oversize body", method: "POST", target: "/api/v1/query", contentType: form,
			body: "query=" + strings.Repeat("a", 2048), wantStatus: 413, wantError: "larger than"},
		{name: "bad query string", method: "GET", target: "/api/v1/query?query=%zz", wantStatus: 400, wantError: "invalid query string"},
		{name: "series needs match[]", method: "GET", target: "/api/v1/series", wantStatus: 400, wantError: "no match[] parameter provided"},
		{name: "series match[] combined", method: "GET", target: "/api/v1/series?match[]=up&match[]={job=%22x%22}",
			wantStatus: 200, wantParams: map[string][]string{"match[]": {`{__name__="up", team="a"}`, `{job="x", team="a"}`}}},
		{name: "match[] not a selector", method: "GET", target: "/api/v1/series?match[]=sum(up)", wantStatus: 400, wantError: `invalid parameter \"match[]\"`},
		{name: "labels without match[] = the policy", method: "GET", target: "/api/v1/labels?start=1",
			wantStatus: 200, wantParams: map[string][]string{"match[]": {`{team="a"}`}, "start": {"1"}}},
		{name: "label values", method: "GET", target: "/api/v1/label/job/values",
			wantStatus: 200, wantParams: map[string][]string{"match[]": {`{team="a"}`}}},
		{name: "federate without match[] is empty", method: "GET", target: "/federate", wantStatus: 200},
		{name: "admin API refused", method: "POST", target: "/api/v1/admin/tsdb/delete_series?match[]=up", wantStatus: 403, wantError: "not available"},
		{name: "status config refused", method: "GET", target: "/api/v1/status/config", wantStatus: 403},
		{name: "label path traversal refused", method: "GET", target: "/api/v1/label/a/../../status/config/values", wantStatus: 403},
		{name: "wrong method", method: "DELETE", target: "/api/v1/query?query=up", wantStatus: 405, wantError: "not allowed"},
		{name: "buildinfo passes", method: "GET", target: "/api/v1/status/buildinfo", wantStatus: 200, wantParams: map[string][]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &recorder{}
			api := New(up, Options{MaxBodyBytes: 1024})
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			path := req.URL.Path
			api.Handle(rec, req, path, enforcer(t, `{team="a"}`))

			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantStatus >= 400 {
				var env struct{ Status, ErrorType, Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Status != "error" {
					t.Fatalf("not an error envelope: %s", rec.Body)
				}
				if !strings.Contains(env.Error, strings.ReplaceAll(tc.wantError, `\"`, `"`)) {
					t.Errorf("error %q, want it to contain %q", env.Error, tc.wantError)
				}
				if len(up.got) != 0 {
					t.Errorf("a refused request reached the upstream: %v", up.got[0].URL)
				}
				return
			}
			if tc.wantParams == nil {
				if len(up.got) != 0 {
					t.Errorf("expected no upstream request, got %v", up.got[0].URL)
				}
				return
			}
			if len(up.got) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(up.got))
			}
			got := up.params[0]
			if len(got) != len(tc.wantParams) {
				t.Errorf("upstream params %v, want %v", got, tc.wantParams)
			}
			for k, want := range tc.wantParams {
				if strings.Join(got[k], "\n") != strings.Join(want, "\n") {
					t.Errorf("upstream %s = %q, want %q", k, got[k], want)
				}
			}
			// What the upstream reads in the URL and in the body must agree:
			// only one of them carries parameters.
			if up.got[0].URL.RawQuery != "" && tc.method == "POST" {
				t.Errorf("POST forwarded with a query string %q", up.got[0].URL.RawQuery)
			}
		})
	}
}

func TestMergeMatrices(t *testing.T) {
	// An instant query for a bare range selector under two selectors runs
	// once per selector; the series common to both come back once.
	answers := map[string]string{
		`{__name__="x",team="a"}[5m]`: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"x","team":"a"},"values":[[1,"1"]]},{"metric":{"__name__":"x","team":"a","env":"p"},"values":[[1,"2"]]}]}}`,
		`{__name__="x",env="p"}[5m]`:  `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"x","team":"a","env":"p"},"values":[[1,"2"]]},{"metric":{"__name__":"x","team":"b","env":"p"},"values":[[1,"3"]]}]},"warnings":["w"]}`,
	}
	up := &fixedUpstream{answers: answers}
	api := New(up, Options{})
	req := httptest.NewRequest("GET", "/api/v1/query?query=x[5m]&time=1", nil)
	rec := httptest.NewRecorder()
	api.Handle(rec, req, "/api/v1/query", enforcer(t, `{team="a"}`, `{env="p"}`))
	var got struct {
		Status string
		Data   struct {
			ResultType string
			Result     []struct{ Metric map[string]string }
		}
		Warnings []string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err, rec.Body)
	}
	if got.Status != "success" || got.Data.ResultType != "matrix" || len(got.Data.Result) != 3 || len(got.Warnings) != 1 {
		t.Fatalf("merged answer wrong: %s", rec.Body)
	}
}

type fixedUpstream struct{ answers map[string]string }

func (u *fixedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	body, ok := u.answers[r.Form.Get("query")]
	if !ok {
		w.WriteHeader(500)
		body = `{"status":"error","errorType":"internal","error":"unexpected query ` + r.Form.Get("query") + `"}`
	}
	io.WriteString(w, body)
}

func (u *fixedUpstream) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (u *fixedUpstream) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}
