package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// v3Stack is a real Prometheus (on 3.x with the search API and query
// cost enabled) scraping targets of two teams, with a recorder between
// promgate and Prometheus: what promgate asks upstream is part of what
// these tests prove (the rules narrowed at the source).
type v3Stack struct {
	*liveStack
	promURL string // Prometheus itself
	promCfg string // its configuration file
	mu      sync.Mutex
	asked   []*url.URL // requests promgate sent upstream
}

const v3Rules = `groups:
- name: tenants
  interval: 1s
  rules:
  - alert: AppUp
    expr: up{job=~"app-.*"} == 1
    labels: {severity: info}
  - alert: TeamBStatic
    expr: vector(1)
    labels: {team: b}
  - record: team:app_requests:sum
    expr: sum by (team) (app_requests_total)
- name: team-b-only
  interval: 1s
  rules:
  - record: b_recording
    expr: vector(2)
    labels: {team: b}
- name: team-a-only
  interval: 1s
  rules:
  - record: a_recording
    expr: vector(3)
    labels: {team: a}
`

func startV3Stack(t *testing.T) *v3Stack {
	t.Helper()
	bin := requirePromgate(t)
	prometheus := requireTool(t, "prometheus")
	v3 := prometheusVersion(t).Major >= 3
	dir := t.TempDir()
	a := exporter(t, "# HELP app_requests Requests.\n# TYPE app_requests counter\napp_requests_total{path=\"/x\"} 5\napp_a_only 1\n")
	b := exporter(t, "# HELP app_requests Requests.\n# TYPE app_requests counter\napp_requests_total{path=\"/y\"} 7\napp_b_only 1\n")
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
- job_name: app-ab
  static_configs: [{targets: ["%[2]s"], labels: {team: a}}, {targets: ["%[3]s"], labels: {team: b}}]
- job_name: app-c-dropped
  static_configs: [{targets: ["%s"], labels: {team: c}}]
  relabel_configs: [{source_labels: [team], regex: c, action: drop}]
`, filepath.Join(dir, "rules.yml"), host(a), host(b), host(c))
	cfgFile := filepath.Join(dir, "prometheus.yml")
	for name, content := range map[string]string{"prometheus.yml": promCfg, "rules.yml": v3Rules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	prom, err := startServer(t, "prometheus-v3api", dir, prometheus, func(addr string) []string {
		args := []string{"--config.file=" + cfgFile, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr, "--web.enable-lifecycle"}
		if v3 {
			args = append(args, "--enable-feature=search-api,query-cost")
		}
		return args
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &v3Stack{promURL: prom.url, promCfg: cfgFile}
	target, _ := url.Parse(prom.url)
	proxy := httputil.NewSingleHostReverseProxy(target)
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		u := *r.URL
		s.asked = append(s.asked, &u)
		s.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.Close)

	gatePort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	gateURL := fmt.Sprintf("http://127.0.0.1:%d/prometheus", gatePort)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  basic_auth_users: {alice: %s, bob: %s, admin: %s}
policies:
  - {name: team-a, subjects: ["user:alice"], selectors: ['{team="a"}']}
  - {name: team-b, subjects: ["user:bob"], selectors: ['{team="b"}']}
  - {name: admins, subjects: ["user:admin"], allow_all: true}
`, rec.URL, hash, hash, hash)
	gateCfg := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(gateCfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gate, err := startAt(t, "promgate-v3api", dir, bin, gateURL+"/-/ready", "--config.file="+gateCfg,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", gatePort), "--web.external-url="+gateURL)
	if err != nil {
		t.Fatal(err)
	}
	s.liveStack = &liveStack{prom: prom, gate: gate, gateURL: gateURL, dir: dir}
	// Until every team's targets are scraped twice and the rules ran.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var d struct {
			Result []json.RawMessage
		}
		code, body := s.get(t, "admin", "/api/v1/query?query="+url.QueryEscape(`count_over_time(up{job=~"app-.*"}[1m]) >= 2 or count_over_time(a_recording[1m]) >= 2`))
		var env struct{ Data json.RawMessage }
		if code == 200 && json.Unmarshal(body, &env) == nil && json.Unmarshal(env.Data, &d) == nil && len(d.Result) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets not scraped after 60s: %s", body)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return s
}

// upstreamQueries returns the query strings promgate sent upstream on
// path since the last call.
func (s *v3Stack) upstreamQueries(path string) []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []url.Values
	for _, u := range s.asked {
		if u.Path == path {
			out = append(out, u.Query())
		}
	}
	s.asked = nil
	return out
}

// direct asks Prometheus itself.
func (s *v3Stack) direct(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(s.promURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// send is get with any method and a form body.
func (s *v3Stack) send(t *testing.T, user, method, path, form string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.gateURL+path, strings.NewReader(form))
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth(user, "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// searchResults reads an NDJSON answer of the search API: the values of
// key of its results, and its trailer.
func searchResults(t *testing.T, body []byte, key string) ([]string, map[string]any) {
	t.Helper()
	var out []string
	var trailer map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("not NDJSON: %v: %s", err, body)
		}
		if rs, ok := l["results"].([]any); ok {
			for _, r := range rs {
				out = append(out, r.(map[string]any)[key].(string))
			}
			continue
		}
		trailer = l
	}
	if trailer == nil || trailer["status"] != "success" {
		t.Fatalf("no successful trailer: %s", body)
	}
	return out, trailer
}

// TestPrometheus3API checks the endpoints new or changed in Prometheus 3
// through promgate for two tenants and an admin of one real Prometheus,
// and that they do not break against Prometheus 2.
func TestPrometheus3API(t *testing.T) {
	skipIfShort(t)
	s := startV3Stack(t)
	v3 := prometheusVersion(t).Major >= 3

	t.Run("scrape pools", func(t *testing.T) {
		type pools struct{ ScrapePools []string }
		for user, want := range map[string][]string{
			"alice": {"app-a", "app-ab"},
			"bob":   {"app-ab", "app-b"},
			"admin": {"app-a", "app-ab", "app-b", "app-c-dropped"},
		} {
			var p pools
			s.getJSON(t, user, "/api/v1/scrape_pools", &p)
			if !reflect.DeepEqual(p.ScrapePools, want) {
				t.Errorf("%s sees pools %v, want %v", user, p.ScrapePools, want)
			}
		}
		// A pool: only the tenant's targets of it; another's pool is as
		// one that does not exist.
		type targets struct {
			ActiveTargets []struct {
				Labels     map[string]string
				ScrapePool string
			}
			DroppedTargets []json.RawMessage
		}
		for _, tc := range []struct {
			user, pool string
			want       []string
		}{
			{"alice", "app-ab", []string{"app-ab/a"}},
			{"bob", "app-ab", []string{"app-ab/b"}},
			{"admin", "app-ab", []string{"app-ab/a", "app-ab/b"}},
			{"alice", "app-b", nil},
			{"alice", "no-such-pool", nil},
		} {
			var d targets
			s.getJSON(t, tc.user, "/api/v1/targets?scrapePool="+tc.pool, &d)
			var got []string
			for _, tg := range d.ActiveTargets {
				got = append(got, tg.ScrapePool+"/"+tg.Labels["team"])
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) || len(d.DroppedTargets) != 0 {
				t.Errorf("%s, pool %s: %v and %d dropped, want %v", tc.user, tc.pool, got, len(d.DroppedTargets), tc.want)
			}
		}
	})

	t.Run("search", func(t *testing.T) {
		if !v3 {
			code, body := s.get(t, "alice", "/api/v1/search/label_names")
			if code != 404 {
				t.Errorf("Prometheus 2 has no search API: got %d %s, want its 404", code, body)
			}
			return
		}
		var jobs []string
		s.getJSON(t, "alice", "/api/v1/label/job/values", &jobs)
		for _, tc := range []struct {
			name, user, method, path, form, key string
			want                                []string
		}{
			{"label values", "alice", "GET", "/api/v1/search/label_values?label=job", "", "value", jobs},
			{"label values POST", "alice", "POST", "/api/v1/search/label_values", "label=job&search[]=app", "value", []string{"app-a", "app-ab"}},
			{"label values with match", "bob", "GET", `/api/v1/search/label_values?label=job&match[]={job=~"app-a.*"}`, "", "value", []string{"app-ab"}},
			{"metric names", "alice", "GET", "/api/v1/search/metric_names?search[]=_only", "", "name", []string{"app_a_only"}},
			{"metric names POST", "bob", "POST", "/api/v1/search/metric_names", "search[]=_only&search[]=recording", "name", []string{"app_b_only", "b_recording"}},
			{"metric names, admin", "admin", "GET", "/api/v1/search/metric_names?search[]=_only", "", "name", []string{"app_a_only", "app_b_only"}},
			{"label names", "alice", "GET", "/api/v1/search/label_names?search[]=team", "", "name", []string{"team"}},
		} {
			code, body := s.send(t, tc.user, tc.method, tc.path, tc.form)
			if code != 200 {
				t.Errorf("%s: status %d: %s", tc.name, code, body)
				continue
			}
			got, _ := searchResults(t, body, tc.key)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: %s sees %v, want %v", tc.name, tc.user, got, tc.want)
			}
		}
		// A limit counts the tenant's names only: has_more says whether
		// more of hers remain (the admin has more).
		for user, want := range map[string]bool{"alice": false, "admin": true} {
			code, body := s.get(t, user, "/api/v1/search/metric_names?search[]=_only&limit=1&sort_by=alpha")
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			names, trailer := searchResults(t, body, "name")
			if !slices.Equal(names, []string{"app_a_only"}) || trailer["has_more"] != want {
				t.Errorf("%s's first _only name %v has_more=%v, want [app_a_only] has_more=%v", user, names, trailer["has_more"], want)
			}
		}
		// Every label name alice is told of is one of her series'.
		var labels []string
		s.getJSON(t, "alice", "/api/v1/labels", &labels)
		code, body := s.get(t, "alice", "/api/v1/search/label_names?limit=1000")
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		got, _ := searchResults(t, body, "name")
		slices.Sort(got)
		if !slices.Equal(got, labels) {
			t.Errorf("alice's searched label names %v, want her labels %v", got, labels)
		}
	})

	t.Run("query cost", func(t *testing.T) {
		if !v3 {
			if code, _ := s.get(t, "alice", "/api/v1/query_cost?query=up"); code != 404 {
				t.Errorf("Prometheus 2 has no query cost: got %d, want its 404", code)
			}
			return
		}
		type estimate struct {
			Estimate struct{ SeriesTouched, SamplesRead int64 }
		}
		for user, want := range map[string]int64{"alice": 2, "bob": 2, "admin": 4} {
			var e estimate
			s.getJSON(t, user, "/api/v1/query_cost?query=app_requests_total", &e)
			if e.Estimate.SeriesTouched != want {
				t.Errorf("%s: query_cost counts %d series, want %d (the tenant's)", user, e.Estimate.SeriesTouched, want)
			}
			s.getJSON(t, user, "/api/v1/query_range_cost?query=app_requests_total&start="+fmt.Sprint(time.Now().Add(-time.Minute).Unix())+"&end="+fmt.Sprint(time.Now().Unix())+"&step=15", &e)
			if e.Estimate.SeriesTouched != want {
				t.Errorf("%s: query_range_cost counts %d series, want %d", user, e.Estimate.SeriesTouched, want)
			}
		}
		if code, body := s.get(t, "alice", "/api/v1/query_cost?query=sum("); code != 400 {
			t.Errorf("a bad query: %d %s", code, body)
		}
	})

	t.Run("query stats and cost", func(t *testing.T) {
		// The samples a query reads are those of the series it selects: the
		// tenant's only, so stats pass.
		type qd struct {
			Result []json.RawMessage
			Stats  struct {
				Samples struct{ TotalQueryableSamples int64 }
			}
			Cost *struct {
				Actual struct{ SeriesTouched int64 }
			}
		}
		for user, want := range map[string]int64{"alice": 2, "bob": 2, "admin": 4} {
			var d qd
			s.getJSON(t, user, "/api/v1/query?query=app_requests_total&stats=all&cost=true", &d)
			if int64(len(d.Result)) != want || d.Stats.Samples.TotalQueryableSamples != want {
				t.Errorf("%s: %d series, stats count %d samples, want %d", user, len(d.Result), d.Stats.Samples.TotalQueryableSamples, want)
			}
			if v3 && (d.Cost == nil || d.Cost.Actual.SeriesTouched != want) {
				t.Errorf("%s: cost %+v, want %d series touched", user, d.Cost, want)
			}
		}
	})

	t.Run("rules", func(t *testing.T) {
		type rules struct {
			Groups []struct {
				Name  string
				Rules []struct{ Name string }
			}
			GroupNextToken string `json:"groupNextToken"`
		}
		names := func(r rules) (out []string) {
			for _, g := range r.Groups {
				for _, x := range g.Rules {
					out = append(out, g.Name+"/"+x.Name)
				}
			}
			return out
		}
		s.upstreamQueries("/api/v1/rules")
		var r rules
		s.getJSON(t, "bob", "/api/v1/rules?type=record", &r)
		if got := names(r); !slices.Equal(got, []string{"team-b-only/b_recording"}) {
			t.Errorf("bob's recording rules %v", got)
		}
		sent := s.upstreamQueries("/api/v1/rules")
		if len(sent) != 1 {
			t.Fatalf("rules asked upstream %d times", len(sent))
		}
		if !v3 {
			if m := sent[0]["match[]"]; m != nil {
				t.Errorf("Prometheus 2 sent match[] %v it does not read", m)
			}
		} else {
			if m := sent[0]["match[]"]; !slices.Equal(m, []string{`{team="b"}`}) {
				t.Fatalf("match[] upstream %q, want bob's policy", m)
			}
			// Narrowed at the source: Prometheus' own answer to what
			// promgate asked has none of the other teams' rules.
			code, body := s.direct(t, "/api/v1/rules?"+sent[0].Encode())
			var env struct{ Data rules }
			if code != 200 || json.Unmarshal(body, &env) != nil {
				t.Fatalf("%d %s", code, body)
			}
			if got := names(env.Data); !slices.Equal(got, []string{"team-b-only/b_recording"}) {
				t.Errorf("Prometheus answered promgate %v", got)
			}
		}
		// Alerts can make a rule the tenant's (AppUp's come from bob's
		// series): no policy upstream, AppUp kept.
		s.getJSON(t, "bob", "/api/v1/rules", &r)
		if got := sorted(names(r)); !slices.Equal(got, []string{"team-b-only/b_recording", "tenants/AppUp", "tenants/TeamBStatic"}) {
			t.Errorf("bob's rules %v", got)
		}
		if m := s.upstreamQueries("/api/v1/rules")[0]["match[]"]; m != nil {
			t.Errorf("match[] %v sent with alerts asked for", m)
		}
		if !v3 {
			return
		}
		// Pages over what is narrowed, exact: two groups, one a page.
		var pages []string
		next := ""
		for i := 0; i < 4; i++ {
			q := url.Values{"exclude_alerts": {"true"}, "group_limit": {"1"}}
			if next != "" {
				q.Set("group_next_token", next)
			}
			var p rules
			s.getJSON(t, "bob", "/api/v1/rules?"+q.Encode(), &p)
			pages = append(pages, strings.Join(names(p), ","))
			if next = p.GroupNextToken; next == "" {
				break
			}
		}
		if want := []string{"team-b-only/b_recording", "tenants/TeamBStatic"}; len(pages) != 2 || !slices.Equal(sorted(pages), want) {
			t.Errorf("bob's pages %q, want %q", pages, want)
		}
		for _, q := range s.upstreamQueries("/api/v1/rules") {
			if m := q["match[]"]; !slices.Equal(m, []string{`{team="b"}`}) || q.Get("group_limit") != "" {
				t.Errorf("sent upstream %v: want the policy and no paging", q)
			}
		}
		// The client's match[] with the policy; one Prometheus refuses is
		// refused.
		s.getJSON(t, "alice", "/api/v1/rules?type=record&match[]="+url.QueryEscape(`{team=~".+"}`), &r)
		if got := names(r); !slices.Equal(got, []string{"team-a-only/a_recording"}) {
			t.Errorf("alice's recording rules %v", got)
		}
		if m := s.upstreamQueries("/api/v1/rules")[0]["match[]"]; !slices.Equal(m, []string{`{team=~".+", team="a"}`}) {
			t.Errorf("match[] upstream %q", m)
		}
		if code, body := s.get(t, "alice", "/api/v1/rules?type=record&match[]="+url.QueryEscape(`{team=""}`)); code != 400 {
			t.Errorf("an empty matcher: %d %s", code, body)
		}
	})

	t.Run("notifications", func(t *testing.T) {
		if !v3 {
			for _, p := range []string{"/api/v1/notifications", "/api/v1/notifications/live"} {
				if code, body := s.get(t, "alice", p); code != 404 {
					t.Errorf("%s on Prometheus 2: %d %s, want 404", p, code, body)
				}
			}
			return
		}
		var list []json.RawMessage
		s.getJSON(t, "alice", "/api/v1/notifications", &list)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.gateURL+"/api/v1/notifications/live", nil)
		req.SetBasicAuth("alice", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("live: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		// A failed reload: the server's notification reaches the tenant.
		good, _ := os.ReadFile(s.promCfg)
		if err := os.WriteFile(s.promCfg, []byte("scrape_configs: [{job_name: x, bogus: 1}]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = os.WriteFile(s.promCfg, good, 0o644)
			http.Post(s.promURL+"/-/reload", "", nil)
		})
		if r, err := http.Post(s.promURL+"/-/reload", "", nil); err == nil {
			r.Body.Close()
		}
		sc := bufio.NewScanner(resp.Body)
		var text string
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var n struct{ Text string }
				_ = json.Unmarshal([]byte(d), &n)
				text = n.Text
				break
			}
		}
		if text != "Configuration reload has failed." {
			t.Errorf("live notification %q, want the failed reload (%v)", text, sc.Err())
		}
		s.getJSON(t, "alice", "/api/v1/notifications", &list)
		if len(list) != 1 || !strings.Contains(string(list[0]), "Configuration reload has failed.") {
			t.Errorf("alice's notifications %s", list)
		}
	})

	t.Run("admin only", func(t *testing.T) {
		for _, p := range []string{"/api/v1/status/tsdb?limit=3", "/api/v1/status/tsdb/blocks", "/api/v1/scrape_pools/config?scrapePool=app-a",
			"/api/v1/targets/relabel_steps?scrapePool=app-a&labels=" + url.QueryEscape(`{"__address__":"x"}`), "/api/v1/status/self_metrics"} {
			for _, user := range []string{"alice", "bob"} {
				code, body := s.get(t, user, p)
				var env struct{ ErrorType string }
				if code != 403 || json.Unmarshal(body, &env) != nil || env.ErrorType != "forbidden" {
					t.Errorf("%s as %s: %d %s, want 403", p, user, code, body)
				}
			}
			// The admin gets what Prometheus answers.
			want, _ := s.direct(t, p)
			if code, body := s.get(t, "admin", p); code != want {
				t.Errorf("%s as admin: %d %s, want %d", p, code, body, want)
			}
			if v3 && want != 200 {
				t.Errorf("%s: Prometheus 3 answered %d", p, want)
			}
		}
	})

	t.Run("pass", func(t *testing.T) {
		for _, p := range []string{"/api/v1/features", "/api/v1/openapi.yaml", "/api/v1/format_query?query=sum(up)", "/api/v1/parse_query?query=sum(up)"} {
			wantCode, wantBody := s.direct(t, p)
			code, body := s.get(t, "alice", p)
			if code != wantCode || string(body) != string(wantBody) {
				t.Errorf("%s as alice: %d %.200s, want Prometheus' %d %.200s", p, code, body, wantCode, wantBody)
			}
			if v3 && code != 200 {
				t.Errorf("%s: %d on Prometheus 3", p, code)
			}
		}
	})
}
