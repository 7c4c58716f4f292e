package prometheus

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/promgate/promgate/internal/limits"
)

func TestSeriesLimit(t *testing.T) {
	const (
		series = `[{"__name__":"up","i":"1"},{"__name__":"up","i":"2"},{"__name__":"up","i":"3"}]`
		vector = `{"resultType":"vector","result":[{"metric":{"i":"1"},"value":[1,"1"]},{"metric":{"i":"2"},"value":[1,"1"]},{"metric":{"i":"3"},"value":[1,"1"]}]}`
		scalar = `{"resultType":"scalar","result":[1,"1"]}`
	)
	for _, tc := range []struct {
		name      string
		version   string
		path      string
		query     string
		answer    string
		maxSeries int
		wantSent  []string // limit sent upstream
		wantLen   int      // entries in the answer; -1: a scalar
		wantWarn  bool
		wantCode  int
	}{
		{name: "series, 3.x: pushed", version: "3.16.0", path: "/api/v1/series", query: "match[]=up", answer: series, maxSeries: 2, wantSent: []string{"2"}, wantLen: 3},
		{name: "series, 2.51: pushed", version: "2.51.0", path: "/api/v1/series", query: "match[]=up", answer: series, maxSeries: 2, wantSent: []string{"2"}, wantLen: 3},
		{name: "series, client's lower", version: "3.16.0", path: "/api/v1/series", query: "match[]=up&limit=1", answer: series, maxSeries: 2, wantSent: []string{"1"}, wantLen: 3},
		{name: "series, client's higher is lowered", version: "3.16.0", path: "/api/v1/series", query: "match[]=up&limit=50", answer: series, maxSeries: 2, wantSent: []string{"2"}, wantLen: 3},
		{name: "series, client's 0 is lowered", version: "3.16.0", path: "/api/v1/series", query: "match[]=up&limit=0", answer: series, maxSeries: 2, wantSent: []string{"2"}, wantLen: 3},
		{name: "series, 2.42: truncated", version: "2.42.0+ds", path: "/api/v1/series", query: "match[]=up&limit=50", answer: series, maxSeries: 2, wantLen: 2, wantWarn: true},
		{name: "series, 2.42, client's lower", version: "2.42.0+ds", path: "/api/v1/series", query: "match[]=up&limit=1", answer: series, maxSeries: 2, wantLen: 1, wantWarn: true},
		{name: "series, 2.42, under the limit", version: "2.42.0+ds", path: "/api/v1/series", query: "match[]=up", answer: series, maxSeries: 3, wantLen: 3},
		{name: "no max_series: the client's as sent", version: "2.42.0+ds", path: "/api/v1/series", query: "match[]=up&limit=7", answer: series, wantSent: []string{"7"}, wantLen: 3},
		{name: "labels, 2.50: truncated", version: "2.50.1", path: "/api/v1/labels", answer: `["a","b","c"]`, maxSeries: 2, wantLen: 2, wantWarn: true},
		{name: "values, 2.51: pushed", version: "2.51.0", path: "/api/v1/label/job/values", answer: `["a","b","c"]`, maxSeries: 2, wantSent: []string{"2"}, wantLen: 3},
		{name: "query, 3.2: pushed", version: "3.2.0", path: "/api/v1/query", query: "query=up", answer: vector, maxSeries: 2, wantSent: []string{"2"}, wantLen: 3},
		{name: "query, 3.1: truncated", version: "3.1.0", path: "/api/v1/query", query: "query=up", answer: vector, maxSeries: 2, wantLen: 2, wantWarn: true},
		{name: "query, no version, features: pushed", version: "", path: "/api/v1/query", query: "query=up", answer: vector, maxSeries: 2, wantSent: []string{"2"}, wantLen: 3},
		{name: "query, 2.42: scalar untouched", version: "2.42.0", path: "/api/v1/query", query: "query=1", answer: scalar, maxSeries: 1, wantLen: -1},
		{name: "bad client limit", version: "3.16.0", path: "/api/v1/series", query: "match[]=up&limit=-1", answer: series, maxSeries: 2, wantCode: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &paths{answers: map[string]string{
				tc.path:                    success(tc.answer),
				"/api/v1/status/buildinfo": success(`{"version":"` + tc.version + `"}`),
				"/api/v1/features":         success(`{}`),
			}}
			api := New(up, Options{})
			req := httptest.NewRequest("GET", tc.path+"?"+tc.query, nil)
			req = req.WithContext(limits.NewContext(req.Context(), &limits.Limits{MaxSeries: tc.maxSeries}))
			rec := httptest.NewRecorder()
			api.Handle(rec, req, tc.path, enforcer(t, `{team="a"}`))
			if tc.wantCode != 0 {
				if rec.Code != tc.wantCode {
					t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantCode, rec.Body)
				}
				return
			}
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if got := up.paramsOf(t, tc.path)["limit"]; !slices.Equal(got, tc.wantSent) {
				t.Errorf("limit upstream %q, want %q", got, tc.wantSent)
			}
			var ar struct {
				Data     json.RawMessage `json:"data"`
				Warnings []string        `json:"warnings"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &ar); err != nil {
				t.Fatalf("answer %s: %v", rec.Body, err)
			}
			var items []json.RawMessage
			var qd queryData
			if json.Unmarshal(ar.Data, &qd) == nil && qd.ResultType != "" {
				if qd.ResultType == "scalar" {
					items = nil
				} else if err := json.Unmarshal(qd.Result, &items); err != nil {
					t.Fatal(err)
				}
			} else if err := json.Unmarshal(ar.Data, &items); err != nil {
				t.Fatal(err)
			}
			if tc.wantLen == -1 {
				if qd.ResultType != "scalar" {
					t.Errorf("answer %s, want the scalar", ar.Data)
				}
			} else if len(items) != tc.wantLen {
				t.Errorf("%d entries in the answer, want %d: %s", len(items), tc.wantLen, ar.Data)
			}
			if got := slices.Contains(ar.Warnings, truncationWarning); got != tc.wantWarn {
				t.Errorf("truncation warning %v, want %v (warnings %q)", got, tc.wantWarn, ar.Warnings)
			}
		})
	}
}

func TestMergedQueryLimit(t *testing.T) {
	// A bare range selector under two selectors: two upstream queries,
	// merged, then cut to the limit.
	up := &paths{answers: map[string]string{
		"/api/v1/query":            success(`{"resultType":"matrix","result":[{"metric":{"i":"1"},"values":[]},{"metric":{"i":"2"},"values":[]}]}`),
		"/api/v1/status/buildinfo": success(`{"version":"2.42.0"}`),
	}}
	api := New(up, Options{})
	req := httptest.NewRequest("GET", "/api/v1/query?query=up[5m]", nil)
	req = req.WithContext(limits.NewContext(req.Context(), &limits.Limits{MaxSeries: 1}))
	rec := httptest.NewRecorder()
	api.Handle(rec, req, "/api/v1/query", enforcer(t, `{team="a"}`, `{team="b"}`))
	var ar struct {
		Data     matrixData `json:"data"`
		Warnings []string   `json:"warnings"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ar); err != nil {
		t.Fatalf("answer %s: %v", rec.Body, err)
	}
	if len(ar.Data.Result) != 1 || !slices.Contains(ar.Warnings, truncationWarning) {
		t.Errorf("answer %s, want one series and the truncation warning", rec.Body)
	}
}

func TestEntries(t *testing.T) {
	for _, tc := range []struct {
		path, data string
		want       int
		wantErr    bool
	}{
		{"/api/v1/series", `[{"a":"1"},{"a":"2"}]`, 2, false},
		{"/api/v1/labels", ` [ ]`, 0, false},
		{"/api/v1/label/job/values", `["a","b","c"]`, 3, false},
		{"/api/v1/labels", `{"a":1}`, 0, true},
		{"/api/v1/query", `{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}`, 1, false},
		{"/api/v1/query_range", `{"result":[{"metric":{},"values":[]},{"metric":{},"values":[]}],"resultType":"matrix"}`, 2, false},
		{"/api/v1/query", `{"resultType":"scalar","result":[1,"1"]}`, -1, false},
		{"/api/v1/query", `{"resultType":"vector","result":[{"metric":{}`, 0, true},
	} {
		got, err := entries(tc.path, []byte(tc.data))
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("%s %s: %d, %v; want %d (error %v)", tc.path, tc.data, got, err, tc.want, tc.wantErr)
		}
	}
}
