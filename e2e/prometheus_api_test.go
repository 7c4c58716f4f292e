package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/testenv"
)

// liveStack is a real Prometheus that scrapes targets of two teams and
// evaluates alerting and recording rules, with promgate in front under
// /prometheus (Prometheus is told that external URL, as behind the nginx of
// the Prometheus guide).
type liveStack struct {
	prom, gate *server
	gateURL    string // promgate base URL including /prometheus
	dir        string
}

const liveRules = `groups:
- name: tenants
  interval: 1s
  rules:
  - alert: AppUp
    expr: up{job=~"app-.*"} == 1
    labels: {severity: info}
  - alert: TeamAStatic
    expr: vector(1)
    labels: {team: a}
  - alert: TeamBStatic
    expr: vector(1)
    labels: {team: b}
  - alert: "alice: CPUbusy"
    expr: vector(1)
  - record: team:app_requests:sum
    expr: sum by (team) (app_requests_total)
- name: team-b-only
  interval: 1s
  rules:
  - record: b_recording
    expr: vector(2)
    labels: {team: b}
`

// exporter serves a fixed exposition, as a scraped application would.
func exporter(t *testing.T, body string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := "text/plain; version=0.0.4"
		if strings.HasSuffix(body, "# EOF\n") {
			ct = "application/openmetrics-text; version=1.0.0; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func startLiveStack(t *testing.T) *liveStack {
	t.Helper()
	bin := requirePromgate(t)
	prometheus := requireTool(t, "prometheus")
	dir := t.TempDir()
	// OpenMetrics, so that the counters carry exemplars.
	a := exporter(t, "# HELP app_requests Requests.\n# TYPE app_requests counter\napp_requests_total{path=\"/x\"} 5 # {trace_id=\"trace-a\"} 1.0\n# HELP app_a_only Only team a has it.\n# TYPE app_a_only gauge\napp_a_only 1\n# EOF\n")
	b := exporter(t, "# HELP app_requests Requests.\n# TYPE app_requests counter\napp_requests_total{path=\"/y\"} 7 # {trace_id=\"trace-b\"} 1.0\n# HELP app_b_only Only team b has it.\n# TYPE app_b_only gauge\napp_b_only 1\n# EOF\n")
	c := exporter(t, "app_c_only 1\n")
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
- job_name: app-a
  static_configs: [{targets: ["%s"], labels: {team: a}}]
- job_name: app-b
  static_configs: [{targets: ["%s"], labels: {team: b}}]
- job_name: app-c-dropped
  static_configs: [{targets: ["%s"], labels: {team: c}}]
  relabel_configs: [{source_labels: [team], regex: c, action: drop}]
`, filepath.Join(dir, "rules.yml"), host(a), host(b), host(c))
	for name, content := range map[string]string{"prometheus.yml": promCfg, "rules.yml": liveRules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// promgate's port is chosen first: Prometheus must know its external URL.
	gatePort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	gateURL := fmt.Sprintf("http://127.0.0.1:%d/prometheus", gatePort)
	prom, err := startServer(t, "prometheus-live", dir, prometheus, func(addr string) []string {
		return []string{"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr,
			"--web.external-url=" + gateURL, "--web.route-prefix=/", "--web.enable-lifecycle",
			"--enable-feature=exemplar-storage"}
	})
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
    alerts_by_name_prefix: true
authentication:
  basic_auth_users: {alice: %s, bob: %s, admin: %s}
  trusted_header:
    name: X-Prometheus-Injectable
    trusted_sources: [127.0.0.1/32]
policies:
  - {name: team-a, subjects: ["user:alice"], selectors: ['{team="a"}']}
  - {name: team-b, subjects: ["user:bob"], selectors: ['{team="b"}']}
  - {name: admins, subjects: ["user:admin"], allow_all: true}
`, prom.url, hash, hash, hash)
	cfgFile := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gate, err := startAt(t, "promgate-live", dir, bin, gateURL+"/-/ready", "--config.file="+cfgFile,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", gatePort), "--web.external-url="+gateURL)
	if err != nil {
		t.Fatal(err)
	}
	s := &liveStack{prom: prom, gate: gate, gateURL: gateURL, dir: dir}
	// Wait until both teams' targets are scraped and the alerts fire.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var got struct {
			Data struct{ Alerts []struct{ State string } }
		}
		_, body := s.get(t, "admin", "/api/v1/alerts")
		_ = json.Unmarshal(body, &got)
		firing := 0
		for _, a := range got.Data.Alerts {
			if a.State == "firing" {
				firing++
			}
		}
		if firing >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts not firing after 60s: %s", body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return s
}

// get fetches path under /prometheus as user (password "pw").
func (s *liveStack) get(t *testing.T, user, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.gateURL+path, nil)
	if user != "" {
		req.SetBasicAuth(user, "pw")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func (s *liveStack) getJSON(t *testing.T, user, path string, into any) {
	t.Helper()
	code, body := s.get(t, user, path)
	if code != 200 {
		t.Fatalf("%s as %s: status %d: %s", path, user, code, body)
	}
	var env struct {
		Status string
		Data   json.RawMessage
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		t.Fatalf("%s as %s: %v %s", path, user, err, body)
	}
	if err := json.Unmarshal(env.Data, into); err != nil {
		t.Fatalf("%s as %s: %v %s", path, user, err, env.Data)
	}
}

func sorted(ss []string) []string { slices.Sort(ss); return slices.Compact(ss) }

// TestPrometheusEndpoints checks alerts, rules, targets, metadata, status
// and the UI through promgate for two tenants and an admin of one real
// Prometheus.
func TestPrometheusEndpoints(t *testing.T) {
	skipIfShort(t)
	s := startLiveStack(t)

	type labelled struct {
		Labels map[string]string
	}
	t.Run("alerts", func(t *testing.T) {
		for user, want := range map[string][]string{
			// "alice: CPUbusy" is alice's by its name (alerts_by_name_prefix).
			"alice": {"AppUp/a", "TeamAStatic/a", "alice: CPUbusy/"},
			"bob":   {"AppUp/b", "TeamBStatic/b"},
			"admin": {"AppUp/a", "AppUp/b", "TeamAStatic/a", "TeamBStatic/b", "alice: CPUbusy/"},
		} {
			var d struct{ Alerts []labelled }
			s.getJSON(t, user, "/api/v1/alerts", &d)
			var got []string
			for _, a := range d.Alerts {
				got = append(got, a.Labels["alertname"]+"/"+a.Labels["team"])
			}
			if !slices.Equal(sorted(got), want) {
				t.Errorf("%s sees alerts %v, want %v", user, sorted(got), want)
			}
		}
	})

	t.Run("rules", func(t *testing.T) {
		type rules struct {
			Groups []struct {
				Name  string
				Rules []struct {
					Name   string
					Alerts []labelled
				}
			}
		}
		describe := func(d rules) []string {
			var out []string
			for _, g := range d.Groups {
				for _, r := range g.Rules {
					teams := []string{}
					for _, a := range r.Alerts {
						teams = append(teams, a.Labels["team"])
					}
					out = append(out, g.Name+"/"+r.Name+"/"+strings.Join(sorted(teams), ","))
				}
			}
			return sorted(out)
		}
		for _, tc := range []struct {
			user, query string
			want        []string
		}{
			{"alice", "", []string{"tenants/AppUp/a", "tenants/TeamAStatic/a", "tenants/alice: CPUbusy/"}},
			{"bob", "", []string{"team-b-only/b_recording/", "tenants/AppUp/b", "tenants/TeamBStatic/b"}},
			{"bob", "?type=record", []string{"team-b-only/b_recording/"}},
			{"bob", "?type=alert", []string{"tenants/AppUp/b", "tenants/TeamBStatic/b"}},
			{"admin", "?type=record", []string{"team-b-only/b_recording/", "tenants/team:app_requests:sum/"}},
		} {
			var d rules
			s.getJSON(t, tc.user, "/api/v1/rules"+tc.query, &d)
			if got := describe(d); !slices.Equal(got, tc.want) {
				t.Errorf("%s rules%s = %v, want %v", tc.user, tc.query, got, tc.want)
			}
		}
		// An odd filter value is Prometheus' own error, through promgate.
		code, body := s.get(t, "alice", "/api/v1/rules?type=bogus")
		if code != 400 || !strings.Contains(string(body), "bad_data") {
			t.Errorf("rules?type=bogus: %d %s", code, body)
		}
	})

	t.Run("targets", func(t *testing.T) {
		for user, want := range map[string][]string{
			"alice": {"active app-a"},
			"bob":   {"active app-b"},
			"admin": {"active app-a", "active app-b", "dropped c"},
		} {
			var d struct {
				ActiveTargets  []labelled
				DroppedTargets []struct{ DiscoveredLabels map[string]string }
			}
			s.getJSON(t, user, "/api/v1/targets", &d)
			var got []string
			for _, x := range d.ActiveTargets {
				got = append(got, "active "+x.Labels["job"])
			}
			for _, x := range d.DroppedTargets {
				got = append(got, "dropped "+x.DiscoveredLabels["team"])
			}
			if !slices.Equal(sorted(got), want) {
				t.Errorf("%s sees targets %v, want %v", user, sorted(got), want)
			}
		}
	})

	t.Run("targets metadata", func(t *testing.T) {
		var d []struct {
			Target map[string]string
			Metric string
		}
		s.getJSON(t, "alice", "/api/v1/targets/metadata", &d)
		var metrics []string
		for _, e := range d {
			if e.Target["job"] != "app-a" {
				t.Errorf("alice sees metadata of target %v", e.Target)
			}
			metrics = append(metrics, e.Metric)
		}
		if !slices.Contains(metrics, "app_a_only") || slices.Contains(metrics, "app_b_only") {
			t.Errorf("alice's target metadata metrics: %v", metrics)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		for user, tc := range map[string]struct{ has, hasNot string }{
			"alice": {"app_a_only", "app_b_only"},
			"bob":   {"app_b_only", "app_a_only"},
		} {
			var d map[string]json.RawMessage
			s.getJSON(t, user, "/api/v1/metadata", &d)
			if _, ok := d[tc.has]; !ok {
				t.Errorf("%s: metadata lacks %s: %v", user, tc.has, d)
			}
			if _, ok := d[tc.hasNot]; ok {
				t.Errorf("%s: metadata shows %s", user, tc.hasNot)
			}
		}
		var all map[string]json.RawMessage
		s.getJSON(t, "admin", "/api/v1/metadata", &all)
		if _, ok := all["app_b_only"]; !ok {
			t.Errorf("admin's metadata lacks app_b_only")
		}
	})

	t.Run("status and admin", func(t *testing.T) {
		for _, path := range []string{"/api/v1/status/config", "/api/v1/status/flags", "/api/v1/status/tsdb",
			"/api/v1/status/runtimeinfo", "/api/v1/status/walreplay", "/api/v1/admin/tsdb/snapshot", "/-/quit", "/api/v1/alertmanagers"} {
			if code, body := s.get(t, "alice", path); code != 403 || !strings.Contains(string(body), `"errorType":"forbidden"`) {
				t.Errorf("alice %s: %d %s", path, code, body)
			}
		}
		if code, body := s.get(t, "admin", "/api/v1/status/config"); code != 200 || !strings.Contains(string(body), "app-b") {
			t.Errorf("admin status/config: %d %s", code, body)
		}
		if code, body := s.get(t, "alice", "/api/v1/status/buildinfo"); code != 200 || !strings.Contains(string(body), "version") {
			t.Errorf("alice buildinfo: %d %s", code, body)
		}
	})

	type uiCase struct {
		user, path string
		code       int
		contains   string
	}
	checkUI := func(t *testing.T, cases []uiCase) {
		for _, tc := range cases {
			code, body := s.get(t, tc.user, tc.path)
			if code != tc.code || !strings.Contains(string(body), tc.contains) {
				t.Errorf("%s %s: %d, want %d containing %q: %.200s", tc.user, tc.path, code, tc.code, tc.contains, body)
			}
		}
	}
	t.Run("classic UI", func(t *testing.T) {
		onlyPrometheus2(t, "no classic UI (its pages, rendered in the browser, are tested in Chromium)")
		checkUI(t, []uiCase{
			{"alice", "/classic/graph", 200, "/prometheus/classic/static/"},
			{"alice", "/classic/static/js/graph/index.js", 200, "Prometheus.Graph"},
			{"admin", "/classic/alerts", 200, "TeamBStatic"},
		})
	})

	// Pages rendered on the server with data (2.x's classic pages, the
	// consoles) stay refused on every version.
	t.Run("UI", func(t *testing.T) {
		checkUI(t, []uiCase{
			{"alice", "/classic/alerts", 403, "forbidden"},
			{"alice", "/classic/targets", 403, "forbidden"},
			{"alice", "/classic/rules", 403, "forbidden"},
			{"alice", "/classic/config", 403, "forbidden"},
			{"alice", "/classic/flags", 403, "forbidden"},
			{"alice", "/classic/status", 403, "forbidden"},
			{"alice", "/classic/service-discovery", 403, "forbidden"},
			{"alice", "/consoles/index.html", 403, "forbidden"},
			{"", "/classic/graph", 401, "unauthorized"},
		})
		// Prometheus redirects / to its query page under its external
		// URL, which is promgate's: 2.42 (without the React UI) to the
		// classic expression browser, 3.x to /query.
		start := "/prometheus/classic/graph"
		if prometheusVersion(t).Major >= 3 {
			start = "/prometheus/query"
		}
		req, _ := http.NewRequest("GET", s.gateURL+"/", nil)
		req.SetBasicAuth("alice", "pw")
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != start {
			t.Errorf("/ redirects %d to %q", resp.StatusCode, loc)
		}
	})

	t.Run("federate", func(t *testing.T) {
		code, body := s.get(t, "alice", "/federate?match[]="+url.QueryEscape(`{job=~"app-.*"}`))
		if code != 200 || !strings.Contains(string(body), `team="a"`) || strings.Contains(string(body), `team="b"`) {
			t.Errorf("alice federate: %d %s", code, body)
		}
		if code, body := s.get(t, "admin", "/federate?match[]="+url.QueryEscape(`{job=~"app-.*"}`)); code != 200 || !strings.Contains(string(body), `team="b"`) {
			t.Errorf("admin federate: %d %s", code, body)
		}
	})

	t.Run("exemplars", func(t *testing.T) {
		now := time.Now()
		q := url.Values{"query": {`app_requests_total`}, "start": {fmt.Sprint(now.Add(-time.Hour).Unix())}, "end": {fmt.Sprint(now.Add(time.Minute).Unix())}}
		for user, tc := range map[string]struct{ has, hasNot string }{
			"alice": {"trace-a", "trace-b"},
			"bob":   {"trace-b", "trace-a"},
		} {
			code, body := s.get(t, user, "/api/v1/query_exemplars?"+q.Encode())
			if code != 200 || !strings.Contains(string(body), tc.has) || strings.Contains(string(body), tc.hasNot) {
				t.Errorf("%s exemplars: %d %s", user, code, body)
			}
		}
	})

	t.Run("format_query", func(t *testing.T) {
		code, body := s.get(t, "alice", "/api/v1/format_query?query="+url.QueryEscape("sum(rate(x[5m]))by(job)"))
		if code != 200 || !strings.Contains(string(body), "sum by (job)") {
			t.Errorf("format_query: %d %s", code, body)
		}
	})

	t.Run("promtool", func(t *testing.T) {
		promtool := requireTool(t, "promtool")
		// Debian's promtool 2.42 has no --http.config.file: credentials
		// go in the server URL.
		u, _ := url.Parse(s.gateURL)
		u.User = url.UserPassword("alice", "pw")
		server := u.String()
		run := func(args ...string) string {
			out, err := exec.Command(promtool, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		out := run("query", "instant", server, "app_requests_total")
		if !strings.Contains(out, `team="a"`) || strings.Contains(out, `team="b"`) {
			t.Errorf("promtool query instant: %s", out)
		}
		// The end lies ahead: RFC 3339 drops the fraction of a second, and
		// the first scrape may be younger than the second now falls in.
		out = run("query", "range", "--start="+time.Now().Add(-time.Minute).Format(time.RFC3339), "--end="+time.Now().Add(time.Minute).Format(time.RFC3339), "--step=5s", server, "sum by (team) (app_requests_total)")
		if !strings.Contains(out, `team="a"`) || strings.Contains(out, `team="b"`) {
			t.Errorf("promtool query range: %s", out)
		}
		out = run("query", "series", "--match=app_requests_total", server)
		if !strings.Contains(out, `team="a"`) || strings.Contains(out, `team="b"`) {
			t.Errorf("promtool query series: %s", out)
		}
		out = run("query", "labels", server, "job")
		if !strings.Contains(out, "app-a") || strings.Contains(out, "app-b") {
			t.Errorf("promtool query labels: %s", out)
		}
	})
}

// startAt starts bin whose address the caller chose (and put in args), and
// waits for readyURL. The process is stopped when the test ends.
func startAt(t *testing.T, name, dir, bin, readyURL string, args ...string) (*server, error) {
	u, err := url.Parse(readyURL)
	if err != nil {
		return nil, err
	}
	return startWith(t, testenv.Options{Name: name, Dir: dir, Addr: u.Host, ReadyPath: u.Path, Timeout: 60 * time.Second,
		Args: func(string) []string { return append([]string{bin}, args...) }})
}
