package alertmanager

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	silA  = "aaaaaaaa-0000-4000-8000-000000000001"
	silB  = "bbbbbbbb-0000-4000-8000-000000000002"
	silNo = "cccccccc-0000-4000-8000-000000000003"
)

// fakeAM stands in for Alertmanager in these HTTP-layer tests: canned
// answers, and a record of what promgate sent. The real Alertmanager is in
// e2e/.
type fakeAM struct {
	got    []string // "METHOD path?query"
	bodies []string // request bodies, by request
	gzip   bool     // compress answers
	header []http.Header
	// answers replace the canned answers, by "METHOD path" (status 200)
	answers map[string]string
}

func (f *fakeAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.got = append(f.got, r.Method+" "+r.URL.RequestURI())
	f.bodies = append(f.bodies, string(body))
	f.header = append(f.header, r.Header.Clone())
	status, answer := f.answer(r.Method, r.URL.Path)
	if answer != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	if f.gzip {
		w.Header().Set("Content-Encoding", "gzip")
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = io.WriteString(zw, answer)
		_ = zw.Close()
		answer = b.String()
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (f *fakeAM) answer(method, path string) (int, string) {
	if a, ok := f.answers[method+" "+path]; ok {
		return 200, a
	}
	alerts := "[" + gettableAlert("fa", map[string]string{"alertname": "X", "team": "a"}, []string{silA, silB}, nil) + "," +
		gettableAlert("fb", map[string]string{"alertname": "X", "team": "b"}, []string{silB}, nil) + "]"
	silences := "[" + silenceJSON(silA, `{"name":"team","value":"a","isRegex":false,"isEqual":true}`) + "," +
		silenceJSON(silB, `{"name":"team","value":"b","isRegex":false,"isEqual":true}`) + "]"
	switch method + " " + path {
	case "GET /api/v2/alerts":
		return 200, alerts
	case "GET /api/v2/alerts/groups":
		return 200, `[{"alerts":` + alerts + `,"labels":{"alertname":"X"},"receiver":{"name":"default"}}]`
	case "GET /api/v2/silences":
		return 200, silences
	case "GET /api/v2/silence/" + silA:
		return 200, silenceJSON(silA, `{"name":"team","value":"a","isRegex":false,"isEqual":true}`)
	case "GET /api/v2/silence/" + silB:
		return 200, silenceJSON(silB, `{"name":"team","value":"b","isRegex":false,"isEqual":true}`)
	case "GET /api/v2/silence/" + silNo:
		return 404, ""
	case "DELETE /api/v2/silence/" + silA:
		return 200, ""
	case "POST /api/v2/silences":
		return 200, `{"silenceID":"` + silA + `"}`
	case "POST /api/v2/alerts":
		return 200, ""
	case "GET /api/v2/status":
		return 200, `{"cluster":{"peers":[],"status":"disabled"},"config":{"original":` + jsonString(amConfig) + `},"uptime":"u","versionInfo":{"version":"0.25.0"}}`
	case "GET /api/v2/receivers":
		return 200, `[{"name":"default"},{"name":"team-a"},{"name":"team-b"}]`
	case "GET /", "GET /script.js":
		return 200, "ui"
	}
	return 500, `"unexpected request"`
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (f *fakeAM) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (f *fakeAM) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

func selectors(t *testing.T, sels ...string) [][]*labels.Matcher {
	t.Helper()
	var out [][]*labels.Matcher
	for _, s := range sels {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ms)
	}
	return out
}

func TestHandle(t *testing.T) {
	json := "application/json"
	newSilence := func(matchers string, id string) string {
		s := `{"matchers":[` + matchers + `],` + validTimes
		if id != "" {
			s += `,"id":"` + id + `"`
		}
		return s + "}"
	}
	for _, tc := range []struct {
		name        string
		policy      []string // default {team="a"}
		opts        Options
		method      string
		target      string
		contentType string
		body        string
		gzip        bool
		answers     map[string]string // upstream answers replaced

		wantStatus   int
		wantBody     string   // exact, when set
		wantContains []string // substrings of the body
		wantAbsent   []string // not in the body
		wantUpstream []string // requests sent, in order; nil: none
		wantSent     string   // body of the last request sent, when set
	}{
		{name: "v1 refused in v1's envelope", method: "GET", target: "/api/v1/alerts", wantStatus: 403,
			wantContains: []string{`"status":"error"`, `"errorType":"forbidden"`, "API v1"}},
		{name: "unknown v2 path", method: "GET", target: "/api/v2/nope", wantStatus: 403,
			wantBody: `{"code":403,"message":"path /api/v2/nope is not available to restricted users"}`},
		{name: "metrics refused", method: "GET", target: "/metrics", wantStatus: 403},
		{name: "reload refused", method: "POST", target: "/-/reload", wantStatus: 403},
		{name: "dot segments refused", method: "GET", target: "/lib/../api/v1/alerts", wantStatus: 403},
		{name: "wrong method", method: "PUT", target: "/api/v2/alerts", wantStatus: 405,
			wantBody: `{"code":405,"message":"method PUT is not allowed, but [GET,POST] are"}`},
		{name: "static passes", method: "GET", target: "/script.js", wantStatus: 200, wantBody: "ui",
			wantUpstream: []string{"GET /script.js"}},

		{name: "alerts filtered, foreign silence ID removed", method: "GET",
			target:     "/api/v2/alerts?filter=alertname%3D%22X%22&active=true&silenced=false&group=x",
			wantStatus: 200, wantContains: []string{`"fingerprint":"fa"`, `"silencedBy":["` + silA + `"]`},
			wantAbsent:   []string{`"fb"`, silB},
			wantUpstream: []string{"GET /api/v2/alerts?active=true&filter=alertname%3D%22X%22&filter=team%3D%22a%22&silenced=false", "GET /api/v2/silences"}},
		{name: "gzip answer read", method: "GET", target: "/api/v2/alerts", gzip: true,
			wantStatus: 200, wantContains: []string{`"fingerprint":"fa"`}, wantAbsent: []string{`"fb"`},
			wantUpstream: []string{"GET /api/v2/alerts?filter=team%3D%22a%22", "GET /api/v2/silences"}},
		// Alertmanager is asked for the tenant's share only when one
		// filter says it; the answer is filtered by promgate either way
		// (fakeAM ignores filters).
		{name: "union policy: no upstream filter", policy: []string{`{team="a"}`, `{team="b"}`}, method: "GET", target: "/api/v2/alerts",
			wantStatus: 200, wantContains: []string{`"fingerprint":"fa"`, `"fingerprint":"fb"`},
			wantUpstream: []string{"GET /api/v2/alerts", "GET /api/v2/silences"}},
		{name: "regex policy: no upstream filter", policy: []string{`{team=~"a|c"}`}, method: "GET", target: "/api/v2/alerts",
			wantStatus: 200, wantContains: []string{`"fingerprint":"fa"`}, wantAbsent: []string{`"fb"`},
			wantUpstream: []string{"GET /api/v2/alerts", "GET /api/v2/silences"}},
		// Keys clients read otherwise (JavaScript, Python: exactly; Go:
		// without regard to case, merging repeats) are refused, or given
		// once.
		{name: "alert labels spelt otherwise refused", method: "GET", target: "/api/v2/alerts",
			answers:    map[string]string{"GET /api/v2/alerts": `[{"labels":{"team":"b"},"Labels":{"team":"a"}}]`},
			wantStatus: 502, wantBody: `"unexpected answer from Alertmanager"`,
			wantUpstream: []string{"GET /api/v2/alerts?filter=team%3D%22a%22"}},
		{name: "group receiver spelt otherwise refused", method: "GET", target: "/api/v2/alerts/groups",
			answers:    map[string]string{"GET /api/v2/alerts/groups": `[{"alerts":[{"labels":{"team":"a"}}],"Receiver":{"name":"team-b"},"receiver":{"name":"team-a"}}]`},
			wantStatus: 502, wantBody: `"unexpected answer from Alertmanager"`,
			wantUpstream: []string{"GET /api/v2/alerts/groups?filter=team%3D%22a%22"}},
		{name: "alert labels given twice: the last decides", method: "GET", target: "/api/v2/alerts/groups",
			answers:    map[string]string{"GET /api/v2/alerts/groups": `[{"alerts":[{"labels":{"team":"b"},"labels":{"team":"a"}},{"labels":{"team":"a"},"labels":{"team":"b"}}],"receiver":{"name":"r"}}]`},
			wantStatus: 200, wantBody: `[{"receiver":{"name":"r"},"alerts":[{"labels":{"team":"a"}}]}]`,
			wantUpstream: []string{"GET /api/v2/alerts/groups?filter=team%3D%22a%22"}},
		{name: "silence matchers spelt otherwise refused", method: "GET", target: "/api/v2/silence/" + silA,
			answers: map[string]string{"GET /api/v2/silence/" + silA: `{"id":"` + silA + `","matchers":[{"name":"team","value":"b","isRegex":false}],` +
				`"Matchers":[{"name":"team","value":"a","isRegex":false}],"status":{"state":"active"},` + validTimes + `}`},
			wantStatus: 502, wantBody: `"unexpected answer from Alertmanager"`, wantUpstream: []string{"GET /api/v2/silence/" + silA}},
		{name: "silence matchers given twice: the last, once", method: "GET", target: "/api/v2/silence/" + silA,
			answers: map[string]string{"GET /api/v2/silence/" + silA: `{"id":"` + silA + `","matchers":[{"name":"team","value":"b","isRegex":false}],` +
				`"matchers":[{"name":"team","value":"a","isRegex":false}]}`},
			wantStatus: 200, wantBody: `{"id":"` + silA + `","matchers":[{"isRegex":false,"name":"team","value":"a"}]}`,
			wantUpstream: []string{"GET /api/v2/silence/" + silA}},
		{name: "silences with matchers spelt otherwise refused", method: "GET", target: "/api/v2/silences",
			answers: map[string]string{"GET /api/v2/silences": `[{"id":"` + silA + `","matchers":[{"name":"team","value":"b","isRegex":false}],` +
				`"Matchers":[{"name":"team","value":"a","isRegex":false}]}]`},
			wantStatus: 502, wantBody: `"unexpected answer from Alertmanager"`, wantUpstream: []string{"GET /api/v2/silences"}},
		{name: "bad filter never reaches Alertmanager", method: "GET", target: "/api/v2/alerts?filter=foo",
			wantStatus: 400, wantBody: `"bad matcher format: foo"`},
		{name: "bad receiver regex never reaches Alertmanager", method: "GET", target: "/api/v2/alerts/groups?receiver=(",
			wantStatus: 400, wantBody: `"failed to parse receiver param: error parsing regexp: missing closing ): ` + "`^(?:()$`" + `"`},
		{name: "groups filtered", method: "GET", target: "/api/v2/alerts/groups?receiver=default",
			wantStatus: 200, wantContains: []string{`"fingerprint":"fa"`, `"receiver":{"name":"default"}`}, wantAbsent: []string{`"fb"`},
			wantUpstream: []string{"GET /api/v2/alerts/groups?filter=team%3D%22a%22&receiver=default", "GET /api/v2/silences"}},
		{name: "post own alert", method: "POST", target: "/api/v2/alerts", contentType: json,
			body: `[{"labels":{"alertname":"X","team":"a"}}]`, wantStatus: 200,
			wantUpstream: []string{"GET /api/v2/status", "POST /api/v2/alerts"}, wantSent: `[{"labels":{"alertname":"X","team":"a"}}]`},
		{name: "post an alert inhibiting other teams' warnings", method: "POST", target: "/api/v2/alerts", contentType: json,
			body: `[{"labels":{"alertname":"ClusterDown","team":"a"}}]`, wantStatus: 403,
			wantContains: []string{`is a source of inhibit rule 0, whose targets are not all in the policy {team=\"a\"}`},
			wantUpstream: []string{"GET /api/v2/status"}},
		{name: "post foreign alert", method: "POST", target: "/api/v2/alerts", contentType: json,
			body: `[{"labels":{"alertname":"X","team":"a"}},{"labels":{"alertname":"X","team":"b"}}]`, wantStatus: 403,
			wantContains: []string{`alert 1 with labels {alertname=\"X\", team=\"b\"} is not allowed by the policy {team=\"a\"}`}},
		{name: "post alerts as text", method: "POST", target: "/api/v2/alerts", contentType: "text/plain",
			body: `[]`, wantStatus: 415, wantContains: []string{`"code":415`}},

		{name: "silences filtered", method: "GET", target: "/api/v2/silences?filter=team%3D%22a%22",
			wantStatus: 200, wantContains: []string{silA}, wantAbsent: []string{silB},
			wantUpstream: []string{"GET /api/v2/silences?filter=team%3D%22a%22"}},
		{name: "own silence", method: "GET", target: "/api/v2/silence/" + silA, wantStatus: 200, wantContains: []string{silA},
			wantUpstream: []string{"GET /api/v2/silence/" + silA}},
		{name: "foreign silence is not found", method: "GET", target: "/api/v2/silence/" + silB,
			wantStatus: 404, wantBody: `"silence not found"`, wantUpstream: []string{"GET /api/v2/silence/" + silB}},
		{name: "missing silence is not found alike", method: "GET", target: "/api/v2/silence/" + silNo,
			wantStatus: 404, wantBody: `"silence not found"`, wantUpstream: []string{"GET /api/v2/silence/" + silNo}},
		{name: "silence ID not a UUID", method: "GET", target: "/api/v2/silence/xyz",
			wantStatus: 422, wantBody: `{"code":601,"message":"silenceID in path must be of type uuid: \"xyz\""}`},
		{name: "expire own silence", method: "DELETE", target: "/api/v2/silence/" + silA, wantStatus: 200,
			wantUpstream: []string{"GET /api/v2/silence/" + silA, "DELETE /api/v2/silence/" + silA}},
		{name: "expire foreign silence", method: "DELETE", target: "/api/v2/silence/" + silB, wantStatus: 403,
			wantContains: []string{"does not exist or is not yours"},
			wantUpstream: []string{"GET /api/v2/silence/" + silB}},
		{name: "expire missing silence", method: "DELETE", target: "/api/v2/silence/" + silNo, wantStatus: 403,
			wantContains: []string{"does not exist or is not yours"},
			wantUpstream: []string{"GET /api/v2/silence/" + silNo}},

		{name: "new silence gets the team", method: "POST", target: "/api/v2/silences", contentType: json,
			body:       newSilence(`{"name":"alertname","value":"X","isRegex":false}`, ""),
			wantStatus: 200, wantUpstream: []string{"POST /api/v2/silences"},
			wantSent: `{"matchers":[{"name":"alertname","value":"X","isRegex":false},{"name":"team","value":"a","isRegex":false,"isEqual":true}],` + validTimes + `}`},
		// UTF-8 label names (Alertmanager 0.27+): in a silence's matchers,
		// in the policy, and in filters written in the UTF-8 matcher syntax.
		{name: "UTF-8 policy injected into a silence", policy: []string{`{"service.name"="checkout"}`}, method: "POST", target: "/api/v2/silences", contentType: json,
			body:       newSilence(`{"name":"http.route","value":"/cart","isRegex":false}`, ""),
			wantStatus: 200, wantUpstream: []string{"POST /api/v2/silences"},
			wantSent: `{"matchers":[{"name":"http.route","value":"/cart","isRegex":false},{"name":"service.name","value":"checkout","isRegex":false,"isEqual":true}],` + validTimes + `}`},
		{name: "UTF-8 silence contradicting the policy", policy: []string{`{"service.name"="checkout"}`}, method: "POST", target: "/api/v2/silences", contentType: json,
			body:       newSilence(`{"name":"service.name","value":"cart","isRegex":false}`, ""),
			wantStatus: 403, wantContains: []string{"contradict the policy"}},
		{name: "UTF-8 filter passes", method: "GET", target: "/api/v2/alerts?filter=%22service.name%22%3D%22checkout%22",
			wantStatus: 200, wantContains: []string{`"fingerprint":"fa"`}, wantAbsent: []string{`"fb"`},
			wantUpstream: []string{"GET /api/v2/alerts?filter=%22service.name%22%3D%22checkout%22&filter=team%3D%22a%22", "GET /api/v2/silences"}},
		{name: "silence contradicting the policy", method: "POST", target: "/api/v2/silences", contentType: json,
			body:       newSilence(`{"name":"team","value":"b","isRegex":false}`, ""),
			wantStatus: 403, wantContains: []string{"contradict the policy {team=\\\"a\\\"}"}},
		{name: "several selectors: required", policy: []string{`{team="a"}`, `{team="c"}`}, method: "POST", target: "/api/v2/silences", contentType: json,
			body:       newSilence(`{"name":"alertname","value":"X","isRegex":false}`, ""),
			wantStatus: 403, wantContains: []string{`{team=\"a\"} or {team=\"c\"}`}},
		{name: "update own silence", method: "POST", target: "/api/v2/silences", contentType: json,
			body:       newSilence(`{"name":"team","value":"a","isRegex":false}`, silA),
			wantStatus: 200, wantUpstream: []string{"GET /api/v2/silence/" + silA, "POST /api/v2/silences"}},
		{name: "update foreign silence", method: "POST", target: "/api/v2/silences", contentType: json,
			body:       newSilence(`{"name":"team","value":"a","isRegex":false}`, silB),
			wantStatus: 403, wantContains: []string{"does not exist or is not yours"},
			wantUpstream: []string{"GET /api/v2/silence/" + silB}},
		{name: "malformed silence", method: "POST", target: "/api/v2/silences", contentType: json, body: `{bad`,
			wantStatus: 400, wantContains: []string{`"code":400`, `parsing silence body`}},
		{name: "silence without matchers", method: "POST", target: "/api/v2/silences", contentType: json, body: newSilence(``, ""),
			wantStatus: 422, wantBody: `{"code":612,"message":"matchers in body should have at least 1 items"}`},
		{name: "silence with an invalid regex", method: "POST", target: "/api/v2/silences", contentType: json,
			body:       newSilence(`{"name":"x","value":"(","isRegex":true}`, ""),
			wantStatus: 400, wantContains: []string{`"silence invalid: invalid label matcher 0: invalid regular expression`}},
		{name: "too large", opts: Options{MaxBodyBytes: 10}, method: "POST", target: "/api/v2/silences", contentType: json,
			body: newSilence(`{"name":"x","value":"y","isRegex":false}`, ""), wantStatus: 413},

		{name: "status redacted", method: "GET", target: "/api/v2/status", wantStatus: 200,
			wantContains: []string{`"original":""`, `"version":"0.25.0"`}, wantAbsent: []string{"team-b"},
			wantUpstream: []string{"GET /api/v2/status"}},
		{name: "receivers routed", method: "GET", target: "/api/v2/receivers", wantStatus: 200,
			wantBody: `[{"name":"team-a"}]`, wantUpstream: []string{"GET /api/v2/receivers", "GET /api/v2/status"}},
		{name: "receivers all", opts: Options{Receivers: ReceiversAll}, method: "GET", target: "/api/v2/receivers", wantStatus: 200,
			wantBody: `[{"name":"default"},{"name":"team-a"},{"name":"team-b"}]`, wantUpstream: []string{"GET /api/v2/receivers"}},
		{name: "receivers none", opts: Options{Receivers: ReceiversNone}, method: "GET", target: "/api/v2/receivers", wantStatus: 200,
			wantBody: `[]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &fakeAM{gzip: tc.gzip, answers: tc.answers}
			a := New(up, tc.opts)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := httptest.NewRequest(tc.method, tc.target, body)
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			r.Header.Set("Accept-Encoding", "gzip")
			r.Header.Set("Authorization", "Basic YWxpY2U6cGFzcw==")
			pol := tc.policy
			if pol == nil {
				pol = []string{`{team="a"}`}
			}
			w := httptest.NewRecorder()
			a.Handle(w, r, r.URL.Path, selectors(t, pol...))

			got := w.Body.String()
			if w.Code != tc.wantStatus {
				t.Errorf("status %d, want %d; body %s", w.Code, tc.wantStatus, got)
			}
			if got == "" && w.Code >= 400 {
				t.Error("error with an empty body")
			}
			if tc.wantBody != "" && got != tc.wantBody {
				t.Errorf("body %s\nwant %s", got, tc.wantBody)
			}
			for _, s := range tc.wantContains {
				if !strings.Contains(got, s) {
					t.Errorf("body %s lacks %s", got, s)
				}
			}
			for _, s := range tc.wantAbsent {
				if strings.Contains(got, s) {
					t.Errorf("body %s holds %s", got, s)
				}
			}
			if w.Code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
				t.Errorf("error Content-Type %q", w.Header().Get("Content-Type"))
			}
			if strings.Join(up.got, "\n") != strings.Join(tc.wantUpstream, "\n") {
				t.Errorf("upstream got\n  %s\nwant\n  %s", strings.Join(up.got, "\n  "), strings.Join(tc.wantUpstream, "\n  "))
			}
			if tc.wantSent != "" && (len(up.bodies) == 0 || up.bodies[len(up.bodies)-1] != tc.wantSent) {
				t.Errorf("sent %q\nwant %q", up.bodies, tc.wantSent)
			}
			for i, h := range up.header {
				if tc.target != "/script.js" && h.Get("Accept-Encoding") != "identity" {
					t.Errorf("request %d asked for %s", i, h.Get("Accept-Encoding"))
				}
			}
		})
	}
}
