package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/config"
)

// testUpstream records the requests it gets and answers with handle.
type testUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func (u *testUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func newTestUpstream(t *testing.T, handle http.HandlerFunc) *testUpstream {
	t.Helper()
	u := &testUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Method+" "+r.URL.RequestURI())
		u.mu.Unlock()
		handle(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// newTestServer serves a Prometheus upstream under /prometheus to alice
// ({team="a"}) and root (allow_all), password "pw".
func newTestServer(t *testing.T, upstreamURL string, opts Options) *Server {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg, err := config.Parse(fmt.Appendf(nil, `upstreams:
  prometheus: {url: %s}
authentication:
  basic_auth_users: {alice: %s, root: %s}
policies:
  - {name: a, subjects: ["user:alice"], selectors: ['{team="a"}']}
  - {name: admins, subjects: ["user:root"], allow_all: true}
`, upstreamURL, hash, hash))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	st, err := Build(cfg, BuildOptions{PublicPrefix: "/prometheus"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger, opts.RoutePrefix, opts.Registry = logger, "/prometheus", prometheus.NewRegistry()
	return New(opts, st)
}

// envelopeOf checks that body is Prometheus' error envelope and returns
// its errorType.
func envelopeOf(t *testing.T, body []byte) string {
	t.Helper()
	var e struct{ Status, ErrorType, Error string }
	if err := json.Unmarshal(body, &e); err != nil || e.Status != "error" || e.Error == "" {
		t.Errorf("not an error envelope: %s", body)
	}
	return e.ErrorType
}

// A tenant may not reload, wherever it comes from: behind a proxy on the
// same host every request comes from 127.0.0.1.
func TestPublicReloadIsForAdmins(t *testing.T) {
	up := newTestUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	for _, tc := range []struct {
		name         string
		publicReload bool
		user, method string
		remote       string
		status       int
		reloaded     bool
	}{
		{"tenant from localhost", true, "alice", "POST", "127.0.0.1:40000", 403, false},
		{"tenant from ::1", true, "alice", "POST", "[::1]:40000", 403, false},
		{"tenant from afar", true, "alice", "PUT", "192.0.2.7:40000", 403, false},
		{"admin", true, "root", "POST", "192.0.2.7:40000", 200, true},
		{"admin with PUT", true, "root", "PUT", "127.0.0.1:40000", 200, true},
		{"nobody", true, "", "POST", "127.0.0.1:40000", 401, false},
		{"wrong method", true, "root", "GET", "127.0.0.1:40000", 405, false},
		{"admin, public reload off", false, "root", "POST", "127.0.0.1:40000", 403, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reloaded := false
			srv := newTestServer(t, up.URL, Options{PublicReload: tc.publicReload, Reload: func() error { reloaded = true; return nil }})
			req := httptest.NewRequest(tc.method, "/prometheus/-/reload", nil)
			req.RemoteAddr = tc.remote
			if tc.user != "" {
				req.SetBasicAuth(tc.user, "pw")
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != tc.status || reloaded != tc.reloaded {
				t.Fatalf("status %d reloaded %v (%s); want %d %v", rec.Code, reloaded, rec.Body, tc.status, tc.reloaded)
			}
			if rec.Code >= 400 {
				envelopeOf(t, rec.Body.Bytes())
			}
			if rec.Code == 405 && rec.Header().Get("Allow") != "POST, PUT" {
				t.Errorf("Allow %q", rec.Header().Get("Allow"))
			}
			if len(up.requests()) > 0 {
				t.Errorf("the upstream was called: %v", up.requests())
			}
		})
	}
}

func TestInternalHandler(t *testing.T) {
	up := newTestUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	reloads := 0
	srv := newTestServer(t, up.URL, Options{Reload: func() error { reloads++; return nil }, MetricsForAdminsOnly: true})
	noReload := newTestServer(t, up.URL, Options{})
	// A tenant's request first, so that the metrics have a sample.
	tenant := httptest.NewRequest("GET", "/prometheus/-/whoami", nil)
	tenant.SetBasicAuth("alice", "pw")
	srv.ServeHTTP(httptest.NewRecorder(), tenant)

	for _, tc := range []struct {
		name, method, path string
		srv                *Server
		status             int
		body               string // substring
		reloads            int
	}{
		{"healthy", "GET", "/-/healthy", srv, 200, "Healthy", 0},
		{"ready", "GET", "/-/ready", srv, 200, "Ready", 0},
		{"metrics without login", "GET", "/metrics", srv, 200, `promgate_http_requests_total{code="200",handler="whoami"} 1`, 0},
		{"reload without login, whatever --web.reload says", "POST", "/-/reload", srv, 200, "", 1},
		{"reload with PUT", "PUT", "/-/reload", srv, 200, "", 1},
		{"reload needs POST", "GET", "/-/reload", srv, 405, "method_not_allowed", 0},
		{"reload disabled", "POST", "/-/reload", noReload, 403, "not enabled", 0},
		{"pprof index", "GET", "/debug/pprof/", srv, 200, "goroutine", 0},
		{"pprof without the slash", "GET", "/debug/pprof", srv, 301, "", 0},
		{"a named profile", "GET", "/debug/pprof/goroutine?debug=1", srv, 200, "goroutine profile:", 0},
		{"cmdline", "GET", "/debug/pprof/cmdline", srv, 200, "", 0},
		{"no route prefix here", "GET", "/prometheus/metrics", srv, 404, "not_found", 0},
		{"never the upstream", "GET", "/api/v1/query?query=up", srv, 404, "not_found", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := reloads
			rec := httptest.NewRecorder()
			tc.srv.Internal().ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) || reloads-before != tc.reloads {
				t.Fatalf("status %d reloads %d body %.300s; want %d, %d, containing %q", rec.Code, reloads-before, rec.Body, tc.status, tc.reloads, tc.body)
			}
			if rec.Code >= 400 {
				envelopeOf(t, rec.Body.Bytes())
			}
		})
	}
	if len(up.requests()) > 0 {
		t.Errorf("the upstream was called: %v", up.requests())
	}
}

// With an internal listener, /metrics on the tenants' port is for allow_all
// identities; without one it stays open, as scrapes of it expect.
func TestPublicMetrics(t *testing.T) {
	up := newTestUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	for _, tc := range []struct {
		name     string
		internal bool
		user     string
		status   int
	}{
		{"no internal listener, no login", false, "", 200},
		{"no internal listener, tenant", false, "alice", 200},
		{"internal listener, no login", true, "", 401},
		{"internal listener, tenant", true, "alice", 403},
		{"internal listener, admin", true, "root", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, up.URL, Options{MetricsForAdminsOnly: tc.internal})
			req := httptest.NewRequest("GET", "/prometheus/metrics", nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, "pw")
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d %.200s; want %d", rec.Code, rec.Body, tc.status)
			}
			if rec.Code == 200 && !strings.Contains(rec.Body.String(), "promgate_authentication_failures_total") {
				t.Errorf("no metrics: %.200s", rec.Body)
			}
			if rec.Code >= 400 {
				envelopeOf(t, rec.Body.Bytes())
			}
		})
	}
	if len(up.requests()) > 0 {
		t.Errorf("the upstream was called: %v", up.requests())
	}
}
