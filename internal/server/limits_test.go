package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/internal/config"
)

// limitsServer is promgate with the given limits sections in front of a
// counting upstream; users name themselves in X-User (cheap to check, so
// that benchmarks measure the limits, not bcrypt).
func limitsServer(tb testing.TB, defaults, teamA string) (*Server, *upstreamLog) {
	tb.Helper()
	var calls upstreamLog
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.ParseForm() == nil {
			calls.last.Store(r.Form.Get("query"))
		}
		io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	tb.Cleanup(up.Close)
	cfg, err := config.Parse(fmt.Appendf(nil, `upstreams:
  prometheus: {url: %s}
authentication:
  trusted_header: {name: X-User, trusted_sources: [192.0.2.0/24]}
%s
policies:
  - name: a
    subjects: ["user:alice", "user:carol"]
    selectors: ['{team="a"}']
%s
  - {name: b, subjects: ["user:bob"], selectors: ['{team="b"}']}
  - {name: admins, subjects: ["user:root"], allow_all: true}
`, up.URL, defaults, teamA))
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	st, err := Build(cfg, BuildOptions{}, logger)
	if err != nil {
		tb.Fatal(err)
	}
	return New(Options{Logger: logger, Registry: prometheus.NewRegistry()}, st), &calls
}

// upstreamLog counts the upstream's requests and keeps the last query.
type upstreamLog struct {
	atomic.Int64
	last atomic.Value
}

func get(srv http.Handler, user, target string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", target, nil) // from 192.0.2.1
	req.Header.Set("X-User", user)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec
}

func TestLimitsServe(t *testing.T) {
	srv, calls := limitsServer(t, `limits:
  max_range: 1d
  blocked_queries:
    - {pattern: '.*_bucket.*', reason: "histograms are read through recording rules"}`, `    limits:
      rate: 1
      burst: 2`)
	rangeQ := func(q, start string) string {
		return "/api/v1/query_range?" + url.Values{"query": {q}, "start": {start}, "end": {"1700000000"}, "step": {"60"}}.Encode()
	}
	for _, tc := range []struct {
		name, user, target string
		status             int
		body, retryAfter   string
		upstream           bool
	}{
		{"alice within her burst", "alice", "/api/v1/query?query=up", 200, "success", "", true},
		{"alice within her burst again", "alice", "/api/v1/query?query=up", 200, "success", "", true},
		{"alice over her rate", "alice", "/api/v1/query?query=up", 429, `"errorType":"too_many_requests"`, "1", false},
		{"alice over her rate on Alertmanager's paths too", "alice", "/alertmanager/api/v2/alerts", 429, `rate limit of 1 requests per second`, "1", false},
		{"carol has a bucket of her own", "carol", "/api/v1/query?query=up", 200, "success", "", true},
		{"bob has no rate limit", "bob", "/api/v1/query?query=up", 200, "success", "", true},
		{"range over max_range", "bob", rangeQ("up", "1699900000"), 422, `"errorType":"execution","error":"query range of 1d3h46m40s (end - start) is over the limit of 1d (max_range)"`, "", false},
		{"range within max_range", "bob", rangeQ("up", "1699990000"), 200, "success", "", true},
		{"blocked pattern", "bob", "/api/v1/query?query=" + url.QueryEscape(`histogram_quantile(0.9, rate(x_bucket[5m]))`), 422, "histograms are read through recording rules", "", false},
		{"unreadable start", "bob", rangeQ("up", "yesterday"), 400, `invalid parameter \"start\"`, "", false},
		{"allow_all meets the default guards too", "root", rangeQ("up", "1699900000"), 422, "(max_range)", "", false},
		{"allow_all within them passes as asked", "root", rangeQ("up", "1699990000"), 200, "success", "", true},
		{"allow_all query that does not parse is the upstream's to refuse", "root", rangeQ("up{", "1699990000"), 200, "success", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := calls.Load()
			rec := get(srv, tc.user, tc.target)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) || rec.Header().Get("Retry-After") != tc.retryAfter {
				t.Fatalf("got %d %q Retry-After %q; want %d with %q, Retry-After %q", rec.Code, rec.Body, rec.Header().Get("Retry-After"), tc.status, tc.body, tc.retryAfter)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Errorf("body is not JSON: %s", rec.Body)
			}
			if sent := calls.Load() != before; sent != tc.upstream {
				t.Errorf("upstream called: %v, want %v", sent, tc.upstream)
			}
		})
	}
}

// An allow_all identity's POST body is read for the guards and still
// reaches the upstream whole.
func TestLimitsAllowAllPost(t *testing.T) {
	srv, calls := limitsServer(t, "limits: {max_query_length: 20}", "")
	for _, tc := range []struct {
		query  string
		status int
	}{{"sum(rate(x[5m]))", 200}, {"sum(rate(some_long_metric_name[5m]))", 422}} {
		calls.last.Store("")
		req := httptest.NewRequest("POST", "/api/v1/query", strings.NewReader(url.Values{"query": {tc.query}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-User", "root")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s: %d %s", tc.query, rec.Code, rec.Body)
		}
		want := ""
		if tc.status == 200 {
			want = tc.query
		}
		if got := calls.last.Load(); got != want {
			t.Errorf("%s: the upstream read %q, want %q", tc.query, got, want)
		}
	}
}

// BenchmarkLimits is the small query with every limit set (none of them
// refusing) against none: what the limits cost on promgate's busiest path.
func BenchmarkLimits(b *testing.B) {
	for _, bc := range []struct{ name, defaults string }{
		{"off", ""},
		{"on", `limits:
  rate: 1000000000
  burst: 1000000000
  max_concurrent: 1000
  upstream_time: 1000000000
  max_range: 1d
  max_lookback: 30d
  min_step: 1s
  max_points: 11000
  max_query_length: 4096
  blocked_queries:
    - {pattern: 'count\(\{.*\}\)', reason: "too expensive"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv, _ := limitsServer(b, bc.defaults, "")
			target := "/api/v1/query?query=up"
			if rec := get(srv, "alice", target); rec.Code != 200 {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
			b.ReportAllocs()
			for b.Loop() {
				get(srv, "alice", target)
			}
		})
	}
}
