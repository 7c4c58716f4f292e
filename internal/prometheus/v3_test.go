package prometheus

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// paths stands in for an upstream that answers each path with a fixed
// body (404 for the others) and records what it was asked.
type paths struct {
	answers map[string]string
	asked   []string       // paths, in order
	params  []url.Values   // what each request carried (r.ParseForm)
	headers []http.Header  // and its headers
	status  map[string]int // a status other than 200
	ctypes  map[string]string
}

func (u *paths) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		panic(err)
	}
	u.asked = append(u.asked, r.URL.Path)
	u.params = append(u.params, r.Form)
	u.headers = append(u.headers, r.Header)
	body, ok := u.answers[r.URL.Path]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "404 page not found\n")
		return
	}
	ct := "application/json"
	if c, ok := u.ctypes[r.URL.Path]; ok {
		ct = c
	}
	w.Header().Set("Content-Type", ct)
	if s, ok := u.status[r.URL.Path]; ok {
		w.WriteHeader(s)
	}
	io.WriteString(w, body)
}

func (u *paths) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (u *paths) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

// paramsOf returns what the upstream was sent on path (the last request).
func (u *paths) paramsOf(t *testing.T, path string) url.Values {
	t.Helper()
	for i := len(u.asked) - 1; i >= 0; i-- {
		if u.asked[i] == path {
			return u.params[i]
		}
	}
	t.Fatalf("%s was not asked upstream (asked: %v)", path, u.asked)
	return nil
}

func success(data string) string { return `{"status":"success","data":` + data + `}` }

func TestRulesPolicyMatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy []string
		want   []string // nil: no narrowing
	}{
		{"one selector", []string{`{team="a"}`}, []string{`{team="a"}`}},
		{"several", []string{`{team="a"}`, `{env=~"p.+", team!="b"}`}, []string{`{team="a"}`, `{env=~"p.+", team!="b"}`}},
		// A rule's labels have no __name__: its matchers go.
		{"metric names dropped", []string{`{__name__=~"node_.*", shared="true"}`}, []string{`{shared="true"}`}},
		// Left with nothing that refuses a rule without labels.
		{"only a name", []string{`{__name__=~"node_.*"}`}, nil},
		{"only empty-matching", []string{`{team!="b"}`}, nil},
		{"one of two cannot", []string{`{team="a"}`, `{__name__="up"}`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := rulesPolicyMatch(enforcer(t, tc.policy...).Match(nil))
			if tc.want == nil {
				if ok {
					t.Fatalf("narrowed by %v, want no narrowing", got)
				}
				return
			}
			if !ok {
				t.Fatalf("no narrowing, want %v", tc.want)
			}
			if s := rulesMatchProduct(nil, got); !slices.Equal(s, tc.want) {
				t.Errorf("got %v, want %v", s, tc.want)
			}
		})
	}
}

func TestRulesMatchProduct(t *testing.T) {
	ms := func(ss ...string) (out [][]*labels.Matcher) {
		for _, s := range ss {
			m, err := pqlParser.ParseMetricSelector(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		return out
	}
	got := rulesMatchProduct(ms(`{severity="page"}`, `{job="x"}`), ms(`{team="a"}`, `{team="c"}`))
	want := []string{`{severity="page", team="a"}`, `{severity="page", team="c"}`, `{job="x", team="a"}`, `{job="x", team="c"}`}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestRulesWithoutAlerts(t *testing.T) {
	for q, want := range map[string]bool{
		"":                                 false,
		"type=alert":                       false,
		"type=record":                      true,
		"type=RECORD":                      true, // Prometheus lower-cases it
		"exclude_alerts=true":              true,
		"exclude_alerts=TRUE":              true,
		"exclude_alerts=1":                 true,
		"exclude_alerts=false":             false,
		"exclude_alerts=yes":               false, // Prometheus refuses it
		"type=alert&exclude_alerts=t":      true,
		"type=alert&exclude_alerts=banana": false,
	} {
		vs, _ := url.ParseQuery(q)
		if got := rulesWithoutAlerts(vs); got != want {
			t.Errorf("%q: %v, want %v", q, got, want)
		}
	}
}

func TestMajorVersion(t *testing.T) {
	for v, want := range map[string]int{"3.16.0": 3, "2.42.0+ds": 2, "v3.0.0-rc.1": 3, "": -1, "main": -1, "10.1": 10} {
		got, ok := majorVersion(v)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("%q: %d, want %d", v, got, want)
		}
	}
}

// rulesAnswer has one recording rule of team b.
const rulesAnswer = `{"status":"success","data":{"groups":[{"name":"g","file":"f","rules":[{"name":"r","labels":{"team":"b"},"type":"recording"}]}]}}`

// TestRulesNarrowed: the policy goes upstream as match[] when the upstream
// reads it (by its version, or, without one, by /api/v1/features) and
// alerts cannot keep a rule; the client's match[] is combined with it, and
// refused when Prometheus would refuse it.
func TestRulesNarrowed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		version   string
		features  bool
		query     string
		prefix    bool
		wantMatch []string
		wantCode  int
	}{
		{name: "3.x, record", version: "3.16.0", query: "type=record", wantMatch: []string{`{team="a"}`}},
		{name: "3.x, exclude_alerts", version: "3.16.0", query: "exclude_alerts=true", wantMatch: []string{`{team="a"}`}},
		{name: "3.x with the client's", version: "3.16.0", query: `type=record&match[]={job="x"}`, wantMatch: []string{`{job="x", team="a"}`}},
		// Alerts can make a rule the tenant's: only the client's match[].
		{name: "3.x, alerts", version: "3.16.0", query: `match[]={job="x"}`, wantMatch: []string{`{job="x"}`}},
		{name: "3.x, no match", version: "3.16.0", query: "", wantMatch: nil},
		{name: "no version, features", version: "", features: true, query: "type=record", wantMatch: []string{`{team="a"}`}},
		{name: "no version, no features", version: "", query: "type=record", wantMatch: nil},
		{name: "2.x", version: "2.42.0+ds", query: "type=record", wantMatch: nil},
		{name: "name prefix option", version: "3.16.0", query: "type=record", prefix: true, wantMatch: nil},
		{name: "client's empty selector", version: "3.16.0", query: `type=record&match[]={job=""}`, wantCode: 400},
		{name: "client's bad selector", version: "3.16.0", query: `type=record&match[]={job=`, wantCode: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &paths{answers: map[string]string{
				"/api/v1/rules":            rulesAnswer,
				"/api/v1/status/buildinfo": success(`{"version":"` + tc.version + `"}`),
			}}
			if tc.features {
				up.answers["/api/v1/features"] = success(`{}`)
			}
			api := New(up, Options{AlertNamePrefix: tc.prefix})
			for range 2 { // the second from what was learnt
				rec := httptest.NewRecorder()
				api.Handle(rec, httptest.NewRequest("GET", "/api/v1/rules?"+tc.query, nil), "/api/v1/rules", enforcer(t, `{team="a"}`))
				if tc.wantCode != 0 {
					if rec.Code != tc.wantCode {
						t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantCode, rec.Body)
					}
					return
				}
				if rec.Code != 200 {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				if got := up.paramsOf(t, "/api/v1/rules")["match[]"]; !slices.Equal(got, tc.wantMatch) {
					t.Errorf("match[] upstream %q, want %q", got, tc.wantMatch)
				}
			}
			probes := 0
			for _, p := range up.asked {
				if p == "/api/v1/status/buildinfo" {
					probes++
				}
			}
			if probes > 1 {
				t.Errorf("buildinfo asked %d times, want at most once", probes)
			}
		})
	}
}

func TestFilterScrapePools(t *testing.T) {
	targets := success(`{"activeTargets":[
		{"labels":{"team":"a","job":"app-a"},"scrapePool":"app-a"},
		{"labels":{"team":"b","job":"app-b"},"scrapePool":"app-b"}],
		"droppedTargets":[{"discoveredLabels":{"team":"a"},"scrapePool":"dropped-a"},{"discoveredLabels":{"team":"c"},"scrapePool":"dropped-c"}],
		"droppedTargetCounts":{"dropped-a":1,"dropped-c":1}}`)
	for _, tc := range []struct {
		name, pools string
		policy      string
		want        string
	}{
		{"active and dropped", `{"scrapePools":["app-a","app-b","dropped-a","dropped-c","idle"]}`, `{team="a"}`, `{"scrapePools":["app-a","dropped-a"]}`},
		{"none", `{"scrapePools":["app-a","app-b"]}`, `{team="z"}`, `{"scrapePools":[]}`},
		{"null", `{"scrapePools":null}`, `{team="a"}`, `{"scrapePools":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &paths{answers: map[string]string{"/api/v1/targets": targets, "/api/v1/scrape_pools": success(tc.pools)}}
			rec := httptest.NewRecorder()
			New(up, Options{}).Handle(rec, httptest.NewRequest("GET", "/api/v1/scrape_pools", nil), "/api/v1/scrape_pools", enforcer(t, tc.policy))
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if want := success(tc.want); rec.Body.String() != want {
				t.Errorf("got %s, want %s", rec.Body, want)
			}
		})
	}
	t.Run("upstream without the endpoint", func(t *testing.T) {
		up := &paths{answers: map[string]string{"/api/v1/targets": targets}}
		rec := httptest.NewRecorder()
		New(up, Options{}).Handle(rec, httptest.NewRequest("GET", "/api/v1/scrape_pools", nil), "/api/v1/scrape_pools", enforcer(t, `{team="a"}`))
		if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"errorType":"not_found"`) {
			t.Errorf("status %d %s, want 404 in the envelope", rec.Code, rec.Body)
		}
	})
}

func TestFilterNotifications(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[]`, `[]`},
		{`null`, `[]`},
		{`[{"text":"Configuration reload has failed.","date":"2026-01-01T00:00:00Z","active":true}]`,
			`[{"text":"Configuration reload has failed.","date":"2026-01-01T00:00:00Z","active":true}]`},
		{`[{"text":"rule file /etc/team-b.yml: bad","active":true},{"text":"Prometheus is shutting down and gracefully stopping all operations.","active":true}]`,
			`[{"text":"Prometheus is shutting down and gracefully stopping all operations.","active":true}]`},
		{`[{"Text":"Configuration reload has failed.","active":true,"text":"secret"}]`, `[]`},
	} {
		out, _, err := filterNotificationsData(nil, []byte(tc.in))
		if err != nil || string(out) != tc.want {
			t.Errorf("%s: got %s %v, want %s", tc.in, out, err, tc.want)
		}
	}
	if _, _, err := filterNotificationsData(nil, []byte(`{"text":"x"}`)); err == nil {
		t.Error("an object taken for a list")
	}
}

func TestFilterEvents(t *testing.T) {
	known := `{"text":"Configuration reload has failed.","date":"2026-01-01T00:00:00Z","active":true}`
	for _, tc := range []struct{ name, in, want string }{
		{"known passes", "data: " + known + "\n\n", "data: " + known + "\n\n"},
		{"unknown dropped", "data: {\"text\":\"team b's rule file is bad\"}\n\n", ""},
		{"comments and fields dropped", ": hi\nevent: x\nid: 1\ndata: " + known + "\r\n\r\n", "data: " + known + "\n\n"},
		{"data over lines", "data: {\"text\":\ndata:\"Configuration reload has failed.\"}\n\n", "data: {\"text\":\ndata: \"Configuration reload has failed.\"}\n\n"},
		{"unfinished event dropped", "data: " + known + "\n", ""},
		{"a long unknown line", "data: {\"text\":\"" + strings.Repeat("x", 10000) + "\"}\n\ndata: " + known + "\n\n", "data: " + known + "\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			flushes := 0
			_ = filterEvents(strings.NewReader(tc.in), &out, func() { flushes++ })
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
			if want := strings.Count(tc.want, "\n\n"); flushes != want {
				t.Errorf("%d flushes, want %d", flushes, want)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		in := "data: " + strings.Repeat("x", maxEventBytes+10) + "\n\n"
		var out bytes.Buffer
		if err := filterEvents(strings.NewReader(in), &out, func() {}); err == nil || out.Len() != 0 {
			t.Errorf("err %v, out %d bytes", err, out.Len())
		}
	})
}

func TestNotificationsLive(t *testing.T) {
	known := `{"text":"Prometheus is starting and replaying the write-ahead log (WAL).","date":"2026-01-01T00:00:00Z","active":true}`
	up := &paths{
		answers: map[string]string{"/api/v1/notifications/live": "data: {\"text\":\"other\"}\n\ndata: " + known + "\n\n"},
		ctypes:  map[string]string{"/api/v1/notifications/live": "text/event-stream"},
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/v1/notifications/live?x=1", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	New(up, Options{}).Handle(rec, req, "/api/v1/notifications/live", enforcer(t, `{team="a"}`))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/event-stream" || rec.Body.String() != "data: "+known+"\n\n" {
		t.Errorf("got %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if len(up.params[0]) != 0 || up.headers[0].Get("Accept-Encoding") != "" {
		t.Errorf("sent upstream %v %v", up.params[0], up.headers[0])
	}
}

// TestV3Routes: what each endpoint of Prometheus 3 sends upstream for a
// tenant, and what a tenant cannot reach.
func TestV3Routes(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, method, target, body string
		wantStatus                 int
		wantPath                   string
		wantParams                 url.Values
	}{
		{name: "search metric names GET", method: "GET", target: "/api/v1/search/metric_names?search[]=up&limit=5&include_metadata=true&bogus=1",
			wantStatus: 200, wantPath: "/api/v1/search/metric_names",
			wantParams: url.Values{"search[]": {"up"}, "limit": {"5"}, "include_metadata": {"true"}, "match[]": {`{team="a"}`}}},
		{name: "search label values POST with match", method: "POST", target: "/api/v1/search/label_values",
			body:       `label=job&match[]={job=~"x.*"}&search[]=x&search[]=y&fuzz_threshold=50&fuzz_alg=jarowinkler&case_sensitive=false&sort_by=alpha&sort_dir=dsc&batch_size=3&include_score=true&start=1&end=2`,
			wantStatus: 200, wantPath: "/api/v1/search/label_values",
			wantParams: url.Values{"label": {"job"}, "match[]": {`{job=~"x.*", team="a"}`}, "search[]": {"x", "y"}, "fuzz_threshold": {"50"},
				"fuzz_alg": {"jarowinkler"}, "case_sensitive": {"false"}, "sort_by": {"alpha"}, "sort_dir": {"dsc"}, "batch_size": {"3"},
				"include_score": {"true"}, "start": {"1"}, "end": {"2"}}},
		{name: "search label names, bad match", method: "GET", target: "/api/v1/search/label_names?match[]={", wantStatus: 400},
		{name: "search label given twice", method: "POST", target: "/api/v1/search/label_values?label=team", body: "label=job", wantStatus: 400},
		{name: "query cost rewritten", method: "GET", target: "/api/v1/query_cost?query=sum(up)&time=5&max_series=10",
			wantStatus: 200, wantPath: "/api/v1/query_cost",
			wantParams: url.Values{"query": {`sum({__name__="up",team="a"})`}, "time": {"5"}, "max_series": {"10"}}},
		{name: "query range cost rewritten", method: "POST", target: "/api/v1/query_range_cost", body: "query=up&start=1&end=2&step=1",
			wantStatus: 200, wantPath: "/api/v1/query_range_cost",
			wantParams: url.Values{"query": {`{__name__="up",team="a"}`}, "start": {"1"}, "end": {"2"}, "step": {"1"}}},
		{name: "query cost, bad query", method: "GET", target: "/api/v1/query_cost?query=sum(", wantStatus: 400},
		{name: "query with 3.x parameters", method: "GET",
			target:     "/api/v1/query?query=up&stats=all&cost=true&limit=2&lookback_delta=1m&max_samples_read=9&max_query_duration=1s&other=1",
			wantStatus: 200, wantPath: "/api/v1/query",
			wantParams: url.Values{"query": {`{__name__="up",team="a"}`}, "stats": {"all"}, "cost": {"true"}, "limit": {"2"},
				"lookback_delta": {"1m"}, "max_samples_read": {"9"}, "max_query_duration": {"1s"}}},
		{name: "features pass", method: "GET", target: "/api/v1/features?x=1", wantStatus: 200, wantPath: "/api/v1/features", wantParams: url.Values{}},
		{name: "openapi passes", method: "GET", target: "/api/v1/openapi.yaml", wantStatus: 200, wantPath: "/api/v1/openapi.yaml", wantParams: url.Values{}},
		{name: "features POST", method: "POST", target: "/api/v1/features", wantStatus: 405},
		{name: "tsdb status", method: "GET", target: "/api/v1/status/tsdb?limit=5", wantStatus: 403},
		{name: "tsdb blocks", method: "GET", target: "/api/v1/status/tsdb/blocks", wantStatus: 403},
		{name: "scrape pool config", method: "GET", target: "/api/v1/scrape_pools/config?scrapePool=app-a", wantStatus: 403},
		{name: "relabel steps", method: "GET", target: "/api/v1/targets/relabel_steps?scrapePool=app-a&labels={}", wantStatus: 403},
		{name: "self metrics", method: "GET", target: "/api/v1/status/self_metrics", wantStatus: 403},
		// An OTLP export without its Content-Type (see otlp_test.go).
		{name: "otlp", method: "POST", target: "/api/v1/otlp/v1/metrics", wantStatus: 415},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &paths{answers: map[string]string{}}
			if tc.wantPath != "" {
				up.answers[tc.wantPath] = success(`{}`)
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.target, body)
			if tc.body != "" {
				req.Header.Set("Content-Type", form)
			}
			rec := httptest.NewRecorder()
			New(up, Options{}).Handle(rec, req, req.URL.Path, enforcer(t, `{team="a"}`))
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantPath == "" {
				if len(up.asked) != 0 {
					t.Errorf("asked upstream %v", up.asked)
				}
				var env struct{ Status string }
				if json.Unmarshal(rec.Body.Bytes(), &env) != nil || env.Status != "error" {
					t.Errorf("not an error envelope: %s", rec.Body)
				}
				return
			}
			got := up.paramsOf(t, tc.wantPath)
			if len(got) != len(tc.wantParams) {
				t.Errorf("params %v, want %v", got, tc.wantParams)
			}
			for k, v := range tc.wantParams {
				if !slices.Equal(got[k], v) {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestQueryCostSummed: a query promgate splits (a bare range selector
// under several selectors) costs the sum of its parts.
func TestQueryCostSummed(t *testing.T) {
	up := &paths{answers: map[string]string{"/api/v1/query_cost": `{"status":"success","data":{"estimate":{"seriesTouched":2,"samplesRead":30}},"warnings":["w"]}`}}
	rec := httptest.NewRecorder()
	New(up, Options{}).Handle(rec, httptest.NewRequest("GET", "/api/v1/query_cost?query=up[1m]", nil), "/api/v1/query_cost", enforcer(t, `{team="a"}`, `{env="p"}`))
	want := `{"status":"success","data":{"estimate":{"seriesTouched":4,"samplesRead":60}},"warnings":["w"]}`
	if rec.Code != 200 || rec.Body.String() != want {
		t.Errorf("got %d %s, want %s", rec.Code, rec.Body, want)
	}
	if len(up.asked) != 2 {
		t.Errorf("asked %v, want two parts", up.asked)
	}
	up.answers["/api/v1/query_cost"] = `{"status":"error","errorType":"bad_data","error":"nope"}`
	up.status = map[string]int{"/api/v1/query_cost": 400}
	rec = httptest.NewRecorder()
	New(up, Options{}).Handle(rec, httptest.NewRequest("GET", "/api/v1/query_cost?query=up[1m]", nil), "/api/v1/query_cost", enforcer(t, `{team="a"}`, `{env="p"}`))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "nope") {
		t.Errorf("an error part: got %d %s", rec.Code, rec.Body)
	}
}

// The 3.x UI reads droppedTargetCounts for every pool it lists: the
// tenant gets the counts of the dropped targets they see, with a zero for
// each of their active pools, and nothing of other tenants' pools.
func TestDroppedTargetCounts(t *testing.T) {
	targets := success(`{"activeTargets":[
		{"labels":{"team":"a","job":"app-a"},"scrapePool":"app-a"},
		{"labels":{"team":"b","job":"app-b"},"scrapePool":"app-b"}],
		"droppedTargets":[{"discoveredLabels":{"team":"a"},"scrapePool":"dropped-a"},{"discoveredLabels":{"team":"a"},"scrapePool":"dropped-a"},{"discoveredLabels":{"team":"b"},"scrapePool":"app-b"}],
		"droppedTargetCounts":{"app-a":0,"app-b":7,"dropped-a":2}}`)
	for _, tc := range []struct{ policy, want string }{
		{`{team="a"}`, `"droppedTargetCounts":{"app-a":0,"dropped-a":2}`},
		{`{team="b"}`, `"droppedTargetCounts":{"app-b":1}`},
		{`{team="z"}`, `"droppedTargetCounts":{}`},
	} {
		up := &paths{answers: map[string]string{"/api/v1/targets": targets}}
		rec := httptest.NewRecorder()
		New(up, Options{}).Handle(rec, httptest.NewRequest("GET", "/api/v1/targets", nil), "/api/v1/targets", enforcer(t, tc.policy))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %s, want %s", tc.policy, rec.Code, rec.Body, tc.want)
		}
	}
}
