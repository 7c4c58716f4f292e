package prometheus

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// Thanos Query's parameters: the ones that cannot widen what a tenant sees
// reach the upstream as sent, next to the rewritten query; storeMatch[] is
// refused before anything goes upstream.
func TestThanosParams(t *testing.T) {
	for _, tc := range []struct {
		name       string
		target     string
		wantStatus int
		wantError  string
		wantParams map[string][]string
	}{
		{name: "query: every passed parameter", target: "/api/v1/query?query=up&dedup=false&partial_response=true&max_source_resolution=5m&engine=thanos&analyze=true&shard_info=%7B%7D&replicaLabels[]=replica&replicaLabels[]=rule_replica",
			wantStatus: 200, wantParams: map[string][]string{"query": {`{__name__="up",team="a"}`}, "dedup": {"false"}, "partial_response": {"true"},
				"max_source_resolution": {"5m"}, "engine": {"thanos"}, "analyze": {"true"}, "shard_info": {"{}"}, "replicaLabels[]": {"replica", "rule_replica"}}},
		{name: "query_range: dedup and max_source_resolution", target: "/api/v1/query_range?query=up&start=1&end=2&step=1&dedup=true&max_source_resolution=auto",
			wantStatus: 200, wantParams: map[string][]string{"query": {`{__name__="up",team="a"}`}, "start": {"1"}, "end": {"2"}, "step": {"1"},
				"dedup": {"true"}, "max_source_resolution": {"auto"}}},
		{name: "series: dedup, partial_response, replicaLabels[]", target: "/api/v1/series?match[]=up&dedup=false&partial_response=false&replicaLabels[]=r",
			wantStatus: 200, wantParams: map[string][]string{"match[]": {`{__name__="up", team="a"}`}, "dedup": {"false"}, "partial_response": {"false"}, "replicaLabels[]": {"r"}}},
		{name: "labels: dedup", target: "/api/v1/labels?dedup=false",
			wantStatus: 200, wantParams: map[string][]string{"match[]": {`{team="a"}`}, "dedup": {"false"}}},
		{name: "label values: partial_response", target: "/api/v1/label/job/values?partial_response=true",
			wantStatus: 200, wantParams: map[string][]string{"match[]": {`{team="a"}`}, "partial_response": {"true"}}},
		{name: "dedup given twice", target: "/api/v1/query?query=up&dedup=true&dedup=false", wantStatus: 400, wantError: `parameter "dedup" given more than once`},
		{name: "query: storeMatch[] refused", target: "/api/v1/query?query=up&storeMatch[]=%7B__address__%3D%22x%22%7D", wantStatus: 400, wantError: `"storeMatch[]" selects Thanos stores`},
		{name: "series: storeMatch[] refused", target: "/api/v1/series?match[]=up&storeMatch[]=%7B%7D", wantStatus: 400, wantError: `"storeMatch[]"`},
		{name: "labels: storeMatch[] refused", target: "/api/v1/labels?storeMatch[]=%7B%7D", wantStatus: 400, wantError: `"storeMatch[]"`},
		{name: "stores refused", target: "/api/v1/stores", wantStatus: 403, wantError: "not available"},
		{name: "query_explain refused", target: "/api/v1/query_explain?query=up", wantStatus: 403, wantError: "not available"},
		{name: "query_range_explain refused", target: "/api/v1/query_range_explain?query=up", wantStatus: 403, wantError: "not available"},
		{name: "exemplars: Thanos parameters dropped", target: "/api/v1/query_exemplars?query=up&dedup=false",
			wantStatus: 200, wantParams: map[string][]string{"query": {`{__name__="up",team="a"}`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &recorder{}
			api := New(up, Options{})
			req := httptest.NewRequest("GET", tc.target, nil)
			rec := httptest.NewRecorder()
			api.Handle(rec, req, req.URL.Path, enforcer(t, `{team="a"}`))
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantStatus >= 400 {
				var env struct{ Status, ErrorType, Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Status != "error" {
					t.Fatalf("not an error envelope: %s", rec.Body)
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
			got := up.params[0]
			if len(got) != len(tc.wantParams) {
				t.Errorf("upstream params %v, want %v", got, tc.wantParams)
			}
			for k, want := range tc.wantParams {
				if strings.Join(got[k], "\n") != strings.Join(want, "\n") {
					t.Errorf("upstream %s = %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

// Thanos Query's UI routes are static pages: they pass, without their
// query string; the API they read is enforced.
func TestThanosUIPages(t *testing.T) {
	for _, path := range []string{"/stores", "/global", "/loaded", "/blocks", "/graph", "/static/js/main.js"} {
		t.Run(path, func(t *testing.T) {
			up := &recorder{}
			api := New(up, Options{})
			req := httptest.NewRequest("GET", path+"?x=1", nil)
			rec := httptest.NewRecorder()
			api.Handle(rec, req, req.URL.Path, enforcer(t, `{team="a"}`))
			if rec.Code != 200 || len(up.got) != 1 {
				t.Fatalf("status %d, %d upstream requests; want 200 and 1", rec.Code, len(up.got))
			}
			if q := up.got[0].URL.RawQuery; q != "" {
				t.Errorf("query string %q forwarded", q)
			}
		})
	}
}
