package upstream

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Tests of an upstream of several servers, against real servers on
// loopback.

// recordingServer answers with its name and records the bodies it got.
type recordingServer struct {
	*httptest.Server
	name   string
	hits   atomic.Int64
	mu     sync.Mutex
	bodies []string
}

func newRecordingServer(t *testing.T, name string, h http.HandlerFunc, configure ...func(*http.Server)) *recordingServer {
	t.Helper()
	s := &recordingServer{name: name}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, "from "+name)
	}))
	for _, c := range configure {
		c(s.Config)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *recordingServer) lastBody() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bodies) == 0 {
		return ""
	}
	return s.bodies[len(s.bodies)-1]
}

// closedURL is the URL of a port nothing listens on: its connections are
// refused.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func balanced(t *testing.T, o Options, urls ...string) *Upstream {
	t.Helper()
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		o.Backends = append(o.Backends, u)
	}
	u, err := New(o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

// failing answers as a server that fails in one way.
func failing(mode string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch mode {
		case "502", "503", "504":
			code := map[string]int{"502": 502, "503": 503, "504": 504}[mode]
			http.Error(w, "failed", code)
		case "503-query-timeout":
			// Prometheus' answer to a query that ran out of time.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(503)
			io.WriteString(w, `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`)
		case "reset":
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}
	}
}

// TestRetries: which failure of the first server sends a request to the
// second, for reads and writes. A write never reaches both.
func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name         string
		mode         string // of the first server; "refused": nothing listens
		method, path string
		body         string
		streamed     bool // the body's length is unknown: streamed, not held
		wantCode     int
		wantSecond   int64 // requests the second server got
		wantDown     bool  // the first server left aside
	}{
		{name: "GET refused", mode: "refused", method: "GET", path: "/api/v1/query", wantCode: 200, wantSecond: 1, wantDown: true},
		{name: "GET 502", mode: "502", method: "GET", path: "/api/v1/query", wantCode: 200, wantSecond: 1, wantDown: true},
		{name: "GET 503", mode: "503", method: "GET", path: "/api/v1/query", wantCode: 200, wantSecond: 1, wantDown: true},
		{name: "GET 504: not retried (the query would be as slow)", mode: "504", method: "GET", path: "/api/v1/query", wantCode: 504, wantSecond: 0, wantDown: true},
		{name: "GET 503 query timeout: the query's failure", mode: "503-query-timeout", method: "GET", path: "/api/v1/query", wantCode: 503, wantSecond: 0, wantDown: false},
		{name: "GET reset: no answer, not retried", mode: "reset", method: "GET", path: "/api/v1/query", wantCode: 502, wantSecond: 0, wantDown: true},
		{name: "POST query 503", mode: "503", method: "POST", path: "/api/v1/query", body: "query=up", wantCode: 200, wantSecond: 1, wantDown: true},
		{name: "POST query_range 502", mode: "502", method: "POST", path: "/api/v1/query_range", body: "query=up&start=1&end=2&step=1", wantCode: 200, wantSecond: 1, wantDown: true},
		{name: "POST query streamed 503: not retried", mode: "503", method: "POST", path: "/api/v1/query", body: "query=up", streamed: true, wantCode: 503, wantSecond: 0, wantDown: true},
		{name: "POST query streamed refused: nothing read yet", mode: "refused", method: "POST", path: "/api/v1/query", body: "query=up", streamed: true, wantCode: 200, wantSecond: 1, wantDown: true},
		{name: "remote write 503: never to both", mode: "503", method: "POST", path: "/api/v1/write", body: "samples", wantCode: 503, wantSecond: 0, wantDown: true},
		{name: "remote write 502: never to both", mode: "502", method: "POST", path: "/api/v1/write", body: "samples", wantCode: 502, wantSecond: 0, wantDown: true},
		{name: "remote write reset: never to both", mode: "reset", method: "POST", path: "/api/v1/write", body: "samples", wantCode: 502, wantSecond: 0, wantDown: true},
		{name: "remote write refused: the first never saw it", mode: "refused", method: "POST", path: "/api/v1/write", body: "samples", wantCode: 200, wantSecond: 1, wantDown: true},
		{name: "OTLP 503: never to both", mode: "503", method: "POST", path: "/api/v1/otlp/v1/metrics", body: "points", wantCode: 503, wantSecond: 0, wantDown: true},
		{name: "silence POST 502: never to both", mode: "502", method: "POST", path: "/api/v2/silences", body: `{"comment":"x"}`, wantCode: 502, wantSecond: 0, wantDown: true},
		{name: "silence DELETE 503: never to both", mode: "503", method: "DELETE", path: "/api/v2/silence/abc", wantCode: 503, wantSecond: 0, wantDown: true},
		{name: "alerts POST refused", mode: "refused", method: "POST", path: "/api/v2/alerts", body: "[]", wantCode: 200, wantSecond: 1, wantDown: true},
		{name: "GET 200: no retry", mode: "ok", method: "GET", path: "/api/v1/query", wantCode: 200, wantSecond: 0, wantDown: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var firstURL string
			var first *recordingServer
			switch tc.mode {
			case "refused":
				firstURL = closedURL(t)
			case "ok":
				first = newRecordingServer(t, "a", nil)
				firstURL = first.URL
			default:
				first = newRecordingServer(t, "a", failing(tc.mode))
				firstURL = first.URL
			}
			second := newRecordingServer(t, "b", nil)
			u := balanced(t, Options{LoadBalancing: FirstAvailable}, firstURL, second.URL)

			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			if tc.streamed {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			u.ServeHTTP(rec, req)

			if rec.Code != tc.wantCode {
				t.Errorf("status %d, want %d (body %q)", rec.Code, tc.wantCode, rec.Body)
			}
			if got := second.hits.Load(); got != tc.wantSecond {
				t.Errorf("the second server got %d requests, want %d", got, tc.wantSecond)
			}
			if first != nil && first.hits.Load() != 1 {
				t.Errorf("the first server got %d requests, want 1", first.hits.Load())
			}
			if tc.wantSecond > 0 {
				if rec.Body.String() != "from b" {
					t.Errorf("answer %q, want the second server's", rec.Body)
				}
				if got := second.lastBody(); got != tc.body {
					t.Errorf("the second server got the body %q, want %q", got, tc.body)
				}
			}
			down := !u.lb.backends[0].healthy(time.Now().UnixNano())
			if down != tc.wantDown {
				t.Errorf("first server left aside: %v, want %v", down, tc.wantDown)
			}
			if !u.lb.backends[1].healthy(time.Now().UnixNano()) {
				t.Error("the second server was left aside")
			}
			for _, b := range u.lb.backends {
				if n := b.inflight.Load(); n != 0 {
					t.Errorf("%s: %d requests still counted in flight", b.name, n)
				}
			}
		})
	}
}

// TestDoRetries: callers that read the answer (Do) fail over as well.
func TestDoRetries(t *testing.T) {
	first := newRecordingServer(t, "a", failing("503"))
	second := newRecordingServer(t, "b", nil)
	u := balanced(t, Options{LoadBalancing: FirstAvailable}, first.URL, second.URL)
	ctx, cancel := u.WithTimeout(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "/api/v1/rules", nil)
	resp, err := u.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "from b" {
		t.Errorf("got %d %q, want 200 from b", resp.StatusCode, b)
	}
	for _, b := range u.lb.backends {
		if n := b.inflight.Load(); n != 0 {
			t.Errorf("%s: %d requests still counted in flight", b.name, n)
		}
	}
}

// TestLeastLoaded: a request goes to the server with fewer in flight;
// servers equally loaded take requests in turn.
func TestLeastLoaded(t *testing.T) {
	release := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
	}
	a := newRecordingServer(t, "a", h)
	b := newRecordingServer(t, "b", h)
	u := balanced(t, Options{}, a.URL, b.URL)
	gw := gateway(t, u)

	for range 20 {
		get(t, plainClient, gw.URL+"/fast", nil)
	}
	if a.hits.Load() != 10 || b.hits.Load() != 10 {
		t.Errorf("sequential requests: a %d, b %d, want 10 each (in turn)", a.hits.Load(), b.hits.Load())
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := plainClient.Get(gw.URL + "/slow")
		if err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "the slow request in flight", func() bool { return a.hits.Load()+b.hits.Load() == 21 })
	busy, idle := a, b
	if b.hits.Load() == 11 {
		busy, idle = b, a
	}
	for range 6 {
		get(t, plainClient, gw.URL+"/fast", nil)
	}
	close(release)
	<-done
	if busy.hits.Load() != 11 || idle.hits.Load() != 16 {
		t.Errorf("with one request in flight on %s: it got %d more, %s got %d; want all 6 on %s",
			busy.name, busy.hits.Load()-11, idle.name, idle.hits.Load()-10, idle.name)
	}
}

// TestFirstAvailable: the first server takes everything while it is
// healthy; the second stands by, and takes over when the first fails.
func TestFirstAvailable(t *testing.T) {
	var broken atomic.Bool
	a := newRecordingServer(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "down", 503)
		}
	})
	b := newRecordingServer(t, "b", nil)
	u := balanced(t, Options{LoadBalancing: FirstAvailable, FailTimeout: time.Hour}, a.URL, b.URL)
	gw := gateway(t, u)
	for range 5 {
		get(t, plainClient, gw.URL+"/x", nil)
	}
	if a.hits.Load() != 5 || b.hits.Load() != 0 {
		t.Fatalf("a %d, b %d: want 5 on the first", a.hits.Load(), b.hits.Load())
	}
	broken.Store(true)
	for range 5 {
		if resp, _ := get(t, plainClient, gw.URL+"/x", nil); resp.StatusCode != 200 {
			t.Errorf("status %d while the second server is up", resp.StatusCode)
		}
	}
	// The first failed once and is left aside for fail_timeout.
	if a.hits.Load() != 6 || b.hits.Load() != 5 {
		t.Errorf("a %d, b %d: want one more on the first (it failed), then all on the second", a.hits.Load(), b.hits.Load())
	}
}

// TestAllDownTriedAnyway: when every server is left aside, requests are
// still sent, and a server that answers is healthy again at once.
func TestAllDownTriedAnyway(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	h := func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "down", 502)
		}
	}
	a := newRecordingServer(t, "a", h)
	b := newRecordingServer(t, "b", h)
	u := balanced(t, Options{FailTimeout: time.Hour}, a.URL, b.URL)
	gw := gateway(t, u)
	if resp, _ := get(t, plainClient, gw.URL+"/x", nil); resp.StatusCode != 502 {
		t.Fatalf("status %d, want the last server's 502", resp.StatusCode)
	}
	if a.hits.Load() != 1 || b.hits.Load() != 1 {
		t.Fatalf("a %d, b %d: want each tried once", a.hits.Load(), b.hits.Load())
	}
	now := time.Now().UnixNano()
	if u.lb.backends[0].healthy(now) || u.lb.backends[1].healthy(now) {
		t.Fatal("servers that answered 502 are not left aside")
	}
	broken.Store(false)
	if resp, _ := get(t, plainClient, gw.URL+"/x", nil); resp.StatusCode != 200 {
		t.Fatalf("status %d with every server left aside but answering", resp.StatusCode)
	}
	healthy := 0
	for _, b := range u.lb.backends {
		if b.healthy(time.Now().UnixNano()) {
			healthy++
		}
	}
	if healthy != 1 {
		t.Errorf("%d servers healthy, want the one that answered", healthy)
	}
}

// TestFailTimeoutExpires: a server left aside takes requests again once
// its fail timeout has passed.
func TestFailTimeoutExpires(t *testing.T) {
	a := newRecordingServer(t, "a", nil)
	b := newRecordingServer(t, "b", nil)
	u := balanced(t, Options{LoadBalancing: FirstAvailable, FailTimeout: 50 * time.Millisecond}, a.URL, b.URL)
	u.lb.backends[0].fail(50 * time.Millisecond)
	gw := gateway(t, u)
	get(t, plainClient, gw.URL+"/x", nil)
	if b.hits.Load() != 1 {
		t.Fatalf("b %d: the first server is left aside, want the request on the second", b.hits.Load())
	}
	waitFor(t, "the fail timeout to pass", func() bool { return u.lb.backends[0].healthy(time.Now().UnixNano()) })
	get(t, plainClient, gw.URL+"/x", nil)
	if a.hits.Load() != 1 {
		t.Errorf("a %d: want the first server back", a.hits.Load())
	}
}

func TestBalancedOptions(t *testing.T) {
	a, _ := url.Parse("http://127.0.0.1:1")
	b, _ := url.Parse("http://user:secret@127.0.0.1:2/prefix/")
	if _, err := New(Options{Backends: []*url.URL{a, b}, LoadBalancing: "random"}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("an unknown load balancing was accepted")
	}
	u, err := New(Options{Backends: []*url.URL{a, b}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if got := u.lb.backends[1].name; got != "http://127.0.0.1:2/prefix" {
		t.Errorf("server name %q: want its URL without credentials", got)
	}
	if u.lb.failTimeout != DefaultFailTimeout || u.lb.firstAvailable {
		t.Errorf("defaults: fail timeout %s, first available %v", u.lb.failTimeout, u.lb.firstAvailable)
	}
	one, err := New(Options{Backends: []*url.URL{a}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if one.lb != nil || one.base != a {
		t.Error("one URL in Backends is not the same as URL")
	}
}

// TestBackendMetrics: requests, errors, retries and health by server; the
// counters of a server kept by a reload go on, those of a server removed
// are deleted.
func TestBackendMetrics(t *testing.T) {
	a := newRecordingServer(t, "a", failing("503"))
	b := newRecordingServer(t, "b", nil)
	m := NewBackendMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	u := balanced(t, Options{LoadBalancing: FirstAvailable, FailTimeout: time.Hour}, a.URL, b.URL)
	m.Use("prometheus", u)
	gw := gateway(t, u)
	for range 3 {
		get(t, plainClient, gw.URL+"/api/v1/query", nil)
	}
	want := map[string]float64{
		"promgate_upstream_backend_requests_total " + a.URL: 1,
		"promgate_upstream_backend_errors_total " + a.URL:   1,
		"promgate_upstream_backend_retries_total " + a.URL:  0,
		"promgate_upstream_backend_healthy " + a.URL:        0,
		"promgate_upstream_backend_requests_total " + b.URL: 3,
		"promgate_upstream_backend_errors_total " + b.URL:   0,
		"promgate_upstream_backend_retries_total " + b.URL:  1,
		"promgate_upstream_backend_healthy " + b.URL:        1,
	}
	checkBackendMetrics(t, reg, want)

	// A reload keeps b and replaces a by c.
	c := newRecordingServer(t, "c", nil)
	u2 := balanced(t, Options{}, b.URL, c.URL)
	m.Use("prometheus", u2)
	checkBackendMetrics(t, reg, map[string]float64{
		"promgate_upstream_backend_requests_total " + b.URL: 3,
		"promgate_upstream_backend_errors_total " + b.URL:   0,
		"promgate_upstream_backend_retries_total " + b.URL:  1,
		"promgate_upstream_backend_healthy " + b.URL:        1,
		"promgate_upstream_backend_requests_total " + c.URL: 0,
		"promgate_upstream_backend_errors_total " + c.URL:   0,
		"promgate_upstream_backend_retries_total " + c.URL:  0,
		"promgate_upstream_backend_healthy " + c.URL:        1,
	})
	// A single server has no series of its own.
	m.Use("prometheus", newUpstream(t, b.URL, Options{}))
	checkBackendMetrics(t, reg, map[string]float64{})
}

func checkBackendMetrics(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["upstream"] != "prometheus" {
				t.Errorf("%s: upstream %q", mf.GetName(), labels["upstream"])
			}
			got[mf.GetName()+" "+labels["backend"]] = value(m)
		}
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s", k)
		}
	}
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// TestStaleConnection: a server that closes a kept-alive connection as a
// request with a body is sent on it (before any answer) did not fail; a
// read goes to the next server, a write does not.
func TestStaleConnection(t *testing.T) {
	for _, tc := range []struct {
		path       string
		wantCode   int
		wantSecond int64
	}{
		{"/api/v1/query", 200, 1},
		{"/api/v1/write", 502, 0},
	} {
		t.Run(tc.path, func(t *testing.T) {
			type connKey struct{}
			first := newRecordingServer(t, "a", func(w http.ResponseWriter, r *http.Request) {
				n := r.Context().Value(connKey{}).(*atomic.Int64)
				if n.Add(1) == 2 {
					// The second request on a connection: closed unanswered,
					// as a server closing an idle connection at that instant.
					if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
						c.Close()
					}
				}
			}, func(srv *http.Server) {
				srv.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
					return context.WithValue(ctx, connKey{}, new(atomic.Int64))
				}
			})
			second := newRecordingServer(t, "b", nil)
			u := balanced(t, Options{LoadBalancing: FirstAvailable}, first.URL, second.URL)

			rec := httptest.NewRecorder()
			u.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/status/buildinfo", nil))
			if rec.Code != 200 || u.lb.backends[0].u.IdleConns() != 1 {
				t.Fatalf("first request: %d, %d idle connections to the first server", rec.Code, u.lb.backends[0].u.IdleConns())
			}
			rec = httptest.NewRecorder()
			u.ServeHTTP(rec, httptest.NewRequest("POST", tc.path, strings.NewReader("body")))
			if rec.Code != tc.wantCode || second.hits.Load() != tc.wantSecond {
				t.Errorf("status %d, the second server got %d; want %d, %d", rec.Code, second.hits.Load(), tc.wantCode, tc.wantSecond)
			}
			if first.hits.Load() != 2 {
				t.Errorf("the first server got %d requests, want 2", first.hits.Load())
			}
			if !u.lb.backends[0].healthy(time.Now().UnixNano()) {
				t.Error("a server that closed a kept-alive connection was left aside")
			}
		})
	}
}
