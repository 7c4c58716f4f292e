package prometheus

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/promgate/promgate/internal/limits"
	"github.com/promgate/promgate/internal/upstream"
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

// TestSeriesLimitHeld sends answers longer than the upstream client's copy
// buffer (32 KiB) through a real upstream client: one under the limit
// passes as the upstream sent it (its gzip included), one over it is cut.
func TestSeriesLimitHeld(t *testing.T) {
	const entries = 1000 // about 90 KiB
	var series, vector strings.Builder
	for i := range entries {
		if i > 0 {
			series.WriteByte(',')
			vector.WriteByte(',')
		}
		fmt.Fprintf(&series, `{"__name__":"up","instance":"host-%04d:9100","job":"node","team":"a"}`, i)
		fmt.Fprintf(&vector, `{"metric":{"__name__":"up","instance":"host-%04d:9100","job":"node"},"value":[1,"1"]}`, i)
	}
	answers := map[string]string{
		"/api/v1/series":           success("[" + series.String() + "]"),
		"/api/v1/query":            success(`{"resultType":"vector","result":[` + vector.String() + `]}`),
		"/api/v1/labels":           `{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\""}`,
		"/api/v1/label/job/values": "Service Unavailable",
		"/api/v1/status/buildinfo": success(`{"version":"2.42.0"}`),
	}
	status := map[string]int{"/api/v1/labels": 400, "/api/v1/label/job/values": 503}
	zip := func(s string) []byte {
		// Not promgate's level: a body compressed again would differ.
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return b.Bytes()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/label/instance/values" {
			// Half the announced answer, then the connection closes.
			w.Header().Set("Content-Length", "100")
			_, _ = w.Write([]byte(`{"status":"success","data":[`))
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
			return
		}
		body := []byte(answers[r.URL.Path])
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			body = zip(string(body))
		}
		if s := status[r.URL.Path]; s != 0 {
			w.WriteHeader(s)
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	up, err := upstream.New(upstream.Options{URL: base}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	api := New(up, Options{})
	for _, tc := range []struct {
		name      string
		path      string
		gzip      bool
		maxSeries int
		wantCode  int
		wantLen   int  // entries in the answer
		wantSent  bool // the upstream's body, byte for byte
	}{
		{name: "series at the limit", path: "/api/v1/series", maxSeries: entries, wantCode: 200, wantLen: entries, wantSent: true},
		{name: "series one over", path: "/api/v1/series", maxSeries: entries - 1, wantCode: 200, wantLen: entries - 1},
		{name: "series at the limit, gzip", path: "/api/v1/series", gzip: true, maxSeries: entries, wantCode: 200, wantLen: entries, wantSent: true},
		{name: "series one over, gzip", path: "/api/v1/series", gzip: true, maxSeries: entries - 1, wantCode: 200, wantLen: entries - 1},
		{name: "query at the limit", path: "/api/v1/query", maxSeries: entries, wantCode: 200, wantLen: entries, wantSent: true},
		{name: "query one over", path: "/api/v1/query", maxSeries: entries - 1, wantCode: 200, wantLen: entries - 1},
		{name: "query at the limit, gzip", path: "/api/v1/query", gzip: true, maxSeries: entries, wantCode: 200, wantLen: entries, wantSent: true},
		{name: "query one over, gzip", path: "/api/v1/query", gzip: true, maxSeries: entries - 1, wantCode: 200, wantLen: entries - 1},
		{name: "query far over, gzip", path: "/api/v1/query", gzip: true, maxSeries: 1, wantCode: 200, wantLen: 1},
		{name: "an error passes", path: "/api/v1/labels", maxSeries: 1, wantCode: 400, wantSent: true},
		{name: "an error passes, gzip", path: "/api/v1/labels", gzip: true, maxSeries: 1, wantCode: 400, wantSent: true},
		{name: "unreadable", path: "/api/v1/label/job/values", maxSeries: 1, wantCode: 502},
		{name: "unreadable, gzip", path: "/api/v1/label/job/values", gzip: true, maxSeries: 1, wantCode: 502},
		{name: "cut midway", path: "/api/v1/label/instance/values", maxSeries: 1, wantCode: 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			query := "match[]=up"
			if tc.path == "/api/v1/query" {
				query = "query=up"
			}
			req := httptest.NewRequest("GET", tc.path+"?"+query, nil)
			if tc.gzip {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			req = req.WithContext(limits.NewContext(req.Context(), &limits.Limits{MaxSeries: tc.maxSeries}))
			rec := httptest.NewRecorder()
			api.Handle(rec, req, tc.path, enforcer(t, `{team="a"}`))
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d: %.200s", rec.Code, tc.wantCode, rec.Body)
			}
			body := rec.Body.Bytes()
			if tc.wantSent {
				want := []byte(answers[tc.path])
				if tc.gzip {
					want = zip(answers[tc.path])
				}
				if !bytes.Equal(body, want) {
					t.Errorf("the answer is not the upstream's as sent (Content-Encoding %q)", rec.Header().Get("Content-Encoding"))
				}
				if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(len(want)) {
					t.Errorf("Content-Length %q, want %d", got, len(want))
				}
			}
			body = decoded(t, rec.Header(), body)
			var ar struct {
				Status   string          `json:"status"`
				Data     json.RawMessage `json:"data"`
				Warnings []string        `json:"warnings"`
			}
			if err := json.Unmarshal(body, &ar); err != nil {
				t.Fatalf("answer %.200s: %v", body, err)
			}
			if tc.wantCode != 200 {
				return
			}
			var items []json.RawMessage
			var qd queryData
			if tc.path == "/api/v1/query" {
				if err := json.Unmarshal(ar.Data, &qd); err != nil {
					t.Fatal(err)
				}
				ar.Data = qd.Result
			}
			if err := json.Unmarshal(ar.Data, &items); err != nil {
				t.Fatal(err)
			}
			if len(items) != tc.wantLen {
				t.Errorf("%d entries, want %d", len(items), tc.wantLen)
			}
			if got, want := slices.Contains(ar.Warnings, truncationWarning), tc.wantLen < entries; got != want {
				t.Errorf("truncation warning %v, want %v", got, want)
			}
		})
	}
}

// TestPassesWhole: only a plain success under the limit takes the short
// way; anything unusual goes through truncate, as every answer did.
func TestPassesWhole(t *testing.T) {
	for _, tc := range []struct {
		path, raw string
		n         int
		want      bool
	}{
		{"/api/v1/labels", `{"status":"success","data":["a","b"]}`, 2, true},
		{"/api/v1/labels", ` {"data":["a","b"],"status":"success"} `, 2, true},
		{"/api/v1/labels", `{"status":"success","data":["a","b"]}`, 1, false},
		{"/api/v1/labels", `{"status":"succ\u0065ss","data":["a"]}`, 1, true},
		{"/api/v1/query", `{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}`, 1, true},
		{"/api/v1/query", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}`, 1, true},
		{"/api/v1/query", `{"status":"success","data":{"resultType":"vector","result":[{},{}]}}`, 1, false},
		{"/api/v1/labels", `{"status":"success","data":["a"],"data":["a","b"]}`, 1, false},
		{"/api/v1/labels", `{"status":"success","data":["a"],"stat\u0075s":"error"}`, 1, false},
		{"/api/v1/labels", `{"Status":"success","data":["a"]}`, 1, false},
		{"/api/v1/labels", `{"status":"success","data":["a"]} x`, 1, false},
		{"/api/v1/labels", `{"status":"success","data":["a"`, 1, false},
		{"/api/v1/labels", `{"status":"error","data":["a"]}`, 1, false},
		{"/api/v1/labels", `{"status":null,"data":["a"]}`, 1, false},
		{"/api/v1/labels", `{"status":"success","data":{"a":1}}`, 1, false},
		{"/api/v1/labels", `{"status":"success"}`, 1, false},
		{"/api/v1/labels", `null`, 1, false},
		{"/api/v1/labels", ``, 1, false},
	} {
		h := &heldAnswer{}
		if got := h.passesWhole(tc.path, []byte(tc.raw), tc.n); got != tc.want {
			t.Errorf("%s %s, limit %d: %v, want %v", tc.path, tc.raw, tc.n, got, tc.want)
		}
	}
}
