package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/config"
)

func metricsConfig(t *testing.T, upstream, hash, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, `upstreams:
  prometheus: {url: %s}
authentication:
  basic_auth_users: {alice: %[2]s, bob: %[2]s, carol: %[2]s, root: %[2]s, nobody: %[2]s}
policies:
  - {name: team-a, subjects: ["user:alice", "user:carol"], selectors: ['{team="a"}']}
  - {name: team-b, subjects: ["user:bob", "user:carol"], selectors: ['{team="b"}']}
  - {name: admins, subjects: ["user:root"], allow_all: true}
%s`, upstream, hash, extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The per-policy metrics after requests through the handler.
func TestPolicyMetrics(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	defer up.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	logger := slog.New(slog.DiscardHandler)
	st, err := Build(metricsConfig(t, up.URL, string(hash), "metrics: {per_user: true, max_users: 2}\n"), BuildOptions{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv := New(Options{Logger: logger, Registry: reg, MetricsForAdminsOnly: true}, st)

	for _, rq := range []struct {
		user, pass, method, path, body string
		status                         int
	}{
		{"alice", "pw", "GET", "/api/v1/query?query=up", "", 200},
		{"alice", "pw", "POST", "/api/v1/query", "query=up", 200},
		{"bob", "pw", "GET", "/api/v1/query?query=up", "", 200},
		{"carol", "pw", "GET", "/api/v1/query?query=up", "", 200}, // team-a: the first policy naming her
		{"alice", "pw", "GET", "/api/v1/status/flags", "", 403},
		{"alice", "pw", "GET", "/metrics", "", 403},
		{"nobody", "pw", "GET", "/api/v1/query?query=up", "", 403},
		{"", "", "GET", "/api/v1/query?query=up", "", 401},
		{"alice", "wrong", "GET", "/api/v1/query?query=up", "", 401},
		{"root", "pw", "GET", "/api/v1/query?query=up", "", 200},
	} {
		var body io.Reader
		if rq.body != "" {
			body = strings.NewReader(rq.body)
		}
		req := httptest.NewRequest(rq.method, rq.path, body)
		if rq.body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if rq.user != "" {
			req.SetBasicAuth(rq.user, rq.pass)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != rq.status {
			t.Fatalf("%s %s as %q: status %d, want %d: %s", rq.method, rq.path, rq.user, rec.Code, rq.status, rec.Body)
		}
	}

	m := srv.metrics
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"team-a 200", m.policyRequests.WithLabelValues("team-a", "200"), 3},
		{"team-a 403", m.policyRequests.WithLabelValues("team-a", "403"), 2},
		{"team-b 200", m.policyRequests.WithLabelValues("team-b", "200"), 1},
		{"admins 200", m.policyRequests.WithLabelValues("admins", "200"), 1},
		{"no policy 403", m.policyRequests.WithLabelValues(noPolicy, "403"), 1},
		{"refused logins 401", m.policyRequests.WithLabelValues(noPolicy, "401"), 2},
		{"team-a forbidden", m.policyDenials.WithLabelValues("team-a", denyForbidden), 1},
		{"team-a admin only", m.policyDenials.WithLabelValues("team-a", denyAdminOnly), 1},
		{"no policy", m.policyDenials.WithLabelValues(noPolicy, denyNoPolicy), 1},
		{"team-b denied nothing", m.policyDenials.WithLabelValues("team-b", denyForbidden), 0},
		{"request body", m.bytesIn.WithLabelValues("team-a"), float64(len("query=up"))},
		{"no credentials", m.authFailures.WithLabelValues("none"), 1},
		{"wrong password", m.authFailures.WithLabelValues("basic"), 1},
		{"no block", m.bruteForceBlocks, 0},
		{"upstream answers", m.upstreamRequests.WithLabelValues("prometheus", "200"), 5},
		{"alice", m.userRequests.WithLabelValues("alice", "200"), 2},
		{"bob", m.userRequests.WithLabelValues("bob", "200"), 1},
		{"past the cap", m.userRequests.WithLabelValues(otherUsers, "200"), 2}, // carol, root
	} {
		if got := value(t, tc.c); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := value(t, m.bytesOut.WithLabelValues("team-b")); got < 50 {
		t.Errorf("team-b response bytes %v", got)
	}
	if got := count(m.userRequests); got != 5 { // alice 200 and 403, bob, other 200 and 403 (nobody)
		t.Errorf("%d per-user series", got)
	}

	// Durations are native histograms with classic buckets.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "promgate_policy_request_duration_seconds" {
			continue
		}
		for _, metric := range mf.GetMetric() {
			h := metric.GetHistogram()
			if metric.GetLabel()[0].GetValue() == "team-a" {
				found = true
				if h.GetSampleCount() != 5 || h.Schema == nil || len(h.GetPositiveSpan())+int(h.GetZeroCount()) == 0 || len(h.GetBucket()) == 0 {
					t.Errorf("team-a histogram: count %d, schema %v, spans %v, classic buckets %d",
						h.GetSampleCount(), h.Schema, h.GetPositiveSpan(), len(h.GetBucket()))
				}
			}
		}
	}
	if !found {
		t.Error("no duration histogram for team-a")
	}

	// A reload without team-b and without per-user series: team-b's
	// series go, team-a's stay.
	cfg := metricsConfig(t, up.URL, string(hash), "")
	cfg.Rules = cfg.Rules[:1]
	cfg.Rules = append(cfg.Rules, metricsConfig(t, up.URL, string(hash), "").Rules[2])
	st2, err := Build(cfg, BuildOptions{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv.Swap(st2)
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want int
	}{
		{"team-b gone", m.policyRequests, 5}, // team-a 200, 403; admins 200; (none) 401, 403
		{"users gone", m.userRequests, 0},
		{"durations", m.policyDuration, 3},
	} {
		if got := count(tc.c); got != tc.want {
			t.Errorf("%s: %d series, want %d", tc.name, got, tc.want)
		}
	}
	if got := value(t, m.policyRequests.WithLabelValues("team-a", "200")); got != 3 {
		t.Errorf("team-a lost its count on reload: %v", got)
	}
}

// A guesser past the brute-force limit is counted as blocked.
func TestBruteForceBlockMetric(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg := metricsConfig(t, "http://127.0.0.1:1", string(hash), "")
	cfg.Authentication.BruteForce.MaxFailures = 2
	cfg.Authentication.BruteForce.Window = 60e9
	logger := slog.New(slog.DiscardHandler)
	st, err := Build(cfg, BuildOptions{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Logger: logger, Registry: prometheus.NewRegistry()}, st)
	codes := ""
	for range 4 {
		req := httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
		req.SetBasicAuth("alice", "guess")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		codes += fmt.Sprint(rec.Code, " ")
	}
	if codes != "401 401 429 429 " {
		t.Fatalf("codes %s", codes)
	}
	if got := value(t, srv.metrics.bruteForceBlocks); got != 2 {
		t.Errorf("blocked %v, want 2", got)
	}
	if got := value(t, srv.metrics.authFailures.WithLabelValues("basic")); got != 4 {
		t.Errorf("failures %v, want 4", got)
	}
}

// value is the value of a counter.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// count is the number of series of a collector.
func count(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

// The metrics' share of a request: the cached children, two native
// histograms and the counters.
func BenchmarkObserve(b *testing.B) {
	m := newMetrics(prometheus.NewRegistry())
	info := &requestInfo{policy: "team-a", user: "alice"}
	b.ReportAllocs()
	for b.Loop() {
		m.observe("/api/v1/query", 200, 3*time.Millisecond, info, 512)
	}
}
