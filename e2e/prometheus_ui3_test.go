package e2e

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/chromedp/chromedp"
)

// ui3Stack is a live Prometheus 3 serving its web UI, promgate in front of
// it, and the nginx of examples/nginx in front of promgate: the browser
// sends nginx a password in a header, nginx passes the user to promgate in
// the trusted header. Everything is served under /prometheus.
type ui3Stack struct {
	base string // http://127.0.0.1:PORT/prometheus, nginx
	prom *server
}

// prometheusUIDir is the directory a Prometheus built without the
// builtinassets tag serves its UI from, when it runs there:
// $PROMGATE_PROMETHEUS_UI (make e2e-current sets it), or what
// scripts/build-ui.sh prints (it builds the UI once into the cache).
func prometheusUIDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("PROMGATE_PROMETHEUS_UI"); dir != "" {
		return dir
	}
	out, err := exec.Command("bash", filepath.Join("..", "scripts", "build-ui.sh")).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("scripts/build-ui.sh: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out))
}

func startUI3Stack(t *testing.T) *ui3Stack {
	t.Helper()
	bin := requirePromgate(t)
	prometheus := requireTool(t, "prometheus")
	nginx := findNginx(t)
	dir := t.TempDir()

	// Prometheus reads its UI from ./static when its working directory is
	// named "ui"; the process' log goes there too, so the directory is the
	// test's, with the cached assets linked in.
	work := filepath.Join(dir, "ui")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(prometheusUIDir(t), "static"), filepath.Join(work, "static")); err != nil {
		t.Fatal(err)
	}

	a := exporter(t, "# HELP app_requests Requests.\n# TYPE app_requests counter\napp_requests_total{path=\"/x\"} 5\n# HELP app_a_only Only team a has it.\n# TYPE app_a_only gauge\napp_a_only 1\n# EOF\n")
	b := exporter(t, "# HELP app_requests Requests.\n# TYPE app_requests counter\napp_requests_total{path=\"/y\"} 7\n# HELP app_b_only Only team b has it.\n# TYPE app_b_only gauge\napp_b_only 1\n# EOF\n")
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
- job_name: app-a
  static_configs: [{targets: ["%s"], labels: {team: a}}]
- job_name: app-b
  static_configs: [{targets: ["%s"], labels: {team: b}}]
`, filepath.Join(dir, "rules.yml"), strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://"))
	for name, content := range map[string]string{"prometheus.yml": promCfg, "rules.yml": liveRules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	nginxPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d/prometheus", nginxPort)
	prom, err := startServer(t, "prometheus-ui3", work, prometheus, func(addr string) []string {
		return []string{"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr,
			"--web.external-url=" + base, "--web.route-prefix=/", "--log.level=warn"}
	})
	if err != nil {
		t.Fatal(err)
	}

	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  trusted_header:
    name: X-Prometheus-Injectable
    trusted_sources: [127.0.0.1/32]
policies:
  - {name: team-a, subjects: ["user:alice"], selectors: ['{team="a"}']}
  - {name: team-b, subjects: ["user:bob"], selectors: ['{team="b"}']}
  - {name: admins, subjects: ["user:admin"], allow_all: true}
`, prom.url)
	cfgFile := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gate, err := startServer(t, "promgate-ui3", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + cfgFile, "--web.listen-address=" + addr,
			"--web.external-url=" + base, "--web.route-prefix=/"}
	})
	if err != nil {
		t.Fatal(err)
	}
	startExampleNginx(t, nginx, dir, strings.TrimPrefix(gate.url, "http://"), nginxPort)
	s := &ui3Stack{base: base, prom: prom}
	// Both teams' targets scraped and the rules evaluated.
	deadline := time.Now().Add(60 * time.Second)
	for {
		// 2 scraped targets, and the alerts of liveRules firing.
		req, _ := http.NewRequest("GET", base+"/api/v1/query?query="+url.QueryEscape(`count(up == 1) + count(ALERTS{alertstate="firing"})`), nil)
		req.SetBasicAuth("admin", "admin-pw")
		var got struct {
			Data struct {
				Result []struct{ Value [2]any }
			}
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
		}
		if len(got.Data.Result) == 1 && got.Data.Result[0].Value[1] == "7" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets not scraped and alerts not firing after 60s: %+v", got)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return s
}

// startExampleNginx runs examples/nginx/nginx.conf on port, in front of
// promgate, for alice, bob and admin (passwords "<user>-pw").
func startExampleNginx(t *testing.T, nginx, dir, promgate string, port int) {
	t.Helper()
	// Salted SHA-1 ({SSHA}, RFC 2307) is a scheme nginx checks itself.
	var htpasswd strings.Builder
	for _, u := range []string{"alice", "bob", "admin"} {
		salt := []byte("salt-" + u)
		sum := sha1.Sum(append([]byte(u+"-pw"), salt...))
		fmt.Fprintf(&htpasswd, "%s:{SSHA}%s\n", u, base64.StdEncoding.EncodeToString(append(sum[:], salt...)))
	}
	htFile := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htFile, []byte(htpasswd.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.ParseFiles(filepath.Join("..", "examples", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	if err := tmpl.Execute(&conf, map[string]string{
		"Dir": dir, "Htpasswd": htFile, "Promgate": promgate, "Listen": fmt.Sprintf("127.0.0.1:%d", port),
	}); err != nil {
		t.Fatal(err)
	}
	nginxConf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(nginxConf, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	global := "daemon off;"
	if os.Geteuid() == 0 {
		// Workers would drop to nobody, who cannot read the test's
		// private temporary directory.
		global += " user root;"
	}
	cmd := exec.Command(nginx, "-c", nginxConf, "-p", dir, "-g", global)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// SIGTERM: the master stops its workers too.
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	waitStatus(t, fmt.Sprintf("http://127.0.0.1:%d/prometheus/-/ready", port), 401)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})
}

// basicAuthHeader is the Authorization header of user with password
// "<user>-pw".
func basicAuthHeader(user, pass string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
}

// ui3Tenant is what a tenant of the UI stack owns, and what is another's.
type ui3Tenant struct {
	user                         string
	team, job, alert, onlyMetric string // theirs
	otherTeam, otherJob          string
	otherAlert, otherMetric      string
	otherRule                    string
}

var ui3Tenants = []ui3Tenant{
	{user: "alice", team: "a", job: "app-a", alert: "TeamAStatic", onlyMetric: "app_a_only",
		otherTeam: "b", otherJob: "app-b", otherAlert: "TeamBStatic", otherMetric: "app_b_only", otherRule: "b_recording"},
	{user: "bob", team: "b", job: "app-b", alert: "TeamBStatic", onlyMetric: "app_b_only",
		otherTeam: "a", otherJob: "app-a", otherAlert: "TeamAStatic", otherMetric: "app_a_only", otherRule: "TeamAStatic"},
}

// uiRefusalText is how the UI shows promgate's refusal of an API call: the
// error message of its JSON envelope.
const uiRefusalText = "is not available to restricted users"

// notificationsPath is the UI's live notification stream, asked by every
// page for the badge in the header; its own subtest judges it.
const notificationsPath = "/api/v1/notifications/live"

// TestPrometheus3UIInChromium uses Prometheus 3's web UI through nginx and
// promgate (under /prometheus) in headless Chromium, as alice and as bob:
// each page a tenant may use shows only their data and nothing broken; the
// pages that show configuration show promgate's refusal. Screenshots are
// kept among the artifacts.
func TestPrometheus3UIInChromium(t *testing.T) {
	skipIfShort(t)
	onlyPrometheus3(t, "Prometheus 2.x has no mantine UI (its UI is TestPrometheusUIInChromium's)")
	s := startUI3Stack(t)

	for _, tn := range ui3Tenants {
		t.Run(tn.user, func(t *testing.T) {
			b := newBrowser(t, "prometheus-3-ui-"+tn.user, basicAuthHeader(tn.user, tn.user+"-pw"))
			ownLabel, otherLabel := fmt.Sprintf(`team="%s"`, tn.team), fmt.Sprintf(`team="%s"`, tn.otherTeam)

			// noOther fails when the page shows another tenant's data.
			noOther := func(t *testing.T, text string, others ...string) {
				t.Helper()
				for _, o := range others {
					if strings.Contains(text, o) {
						t.Errorf("the page shows another tenant's %s:\n%s", o, truncate(text, 2000))
					}
				}
			}
			// notBroken fails on error banners and failed requests, but for
			// the notification stream (judged by its own subtest).
			notBroken := func(t *testing.T, text string) {
				t.Helper()
				if f := unexpected(b.takeFailures(), notificationsPath); len(f) > 0 {
					t.Errorf("failed requests: %v", f)
				}
				if strings.Contains(text, "Error") || strings.Contains(text, uiRefusalText) {
					t.Errorf("the page shows an error:\n%s", truncate(text, 2000))
				}
			}

			t.Run("query page", func(t *testing.T) {
				b := b.in(t)
				b.open(s.base + "/query")
				b.waitFor("the expression editor", `document.querySelector(".cm-content") !== null`)
				// Typed and run as a person does; completion asks the
				// API for metric and label names as the text is typed.
				b.run("typing", chromedp.Click(chromedp.CSS(".cm-content")), chromedp.SendKeys(chromedp.CSS(".cm-content"), "app_"))
				b.waitFor("completions", `document.querySelectorAll(".cm-completionLabel").length > 0`)
				b.settle(500 * time.Millisecond)
				completions := eval[[]string](b, `Array.from(document.querySelectorAll(".cm-completionLabel")).map(e => e.textContent)`)
				b.screenshot(t, "completion")
				if !slices.Contains(completions, tn.onlyMetric) || slices.Contains(completions, tn.otherMetric) {
					t.Errorf("completions of app_: %q, want %s's metric names only", completions, tn.user)
				}
				b.run("running the query",
					chromedp.SendKeys(chromedp.CSS(".cm-content"), "requests_total"),
					chromedp.Click(chromedp.Search(`//button[normalize-space()="Execute"]`)),
				)
				b.waitText("Result series:")
				b.settle(time.Second)
				rows := eval[[]string](b, `Array.from(document.querySelectorAll("table tr")).map(r => r.innerText)`)
				b.screenshot(t, "query")
				if len(rows) != 1 || !strings.Contains(rows[0], "app_requests_total") || !strings.Contains(rows[0], ownLabel) {
					t.Errorf("the table: %q, want one series of %s", rows, ownLabel)
				}
				text := b.bodyText()
				noOther(t, text, otherLabel, tn.otherJob)
				notBroken(t, text)

				// Another tenant's metric is no result, not an error.
				b.open(s.base + "/query?g0.expr=" + url.QueryEscape(tn.otherMetric) + "&g0.tab=table")
				text = b.waitText("Empty query result")
				notBroken(t, text)
			})

			t.Run("graph URL of 2.x", func(t *testing.T) {
				b := b.in(t)
				// A bookmark of the 2.x UI: /graph redirects to /query, the
				// old numeric tab still means the table.
				b.open(s.base + "/graph?g0.expr=" + url.QueryEscape("count by (team) (up)") + "&g0.tab=1")
				b.waitText("Result series:")
				b.settle(time.Second)
				if loc := eval[string](b, "location.pathname"); loc != "/prometheus/query" {
					t.Errorf("the browser is at %s, want /prometheus/query", loc)
				}
				rows := eval[[]string](b, `Array.from(document.querySelectorAll("table tr")).map(r => r.innerText)`)
				if len(rows) != 1 || !strings.Contains(rows[0], fmt.Sprintf(`{team="%s"}`, tn.team)) {
					t.Errorf("count by (team) (up): %q, want one row of team %s", rows, tn.team)
				}
				b.screenshot(t, "graph-redirect")
				notBroken(t, b.bodyText())
			})

			t.Run("alerts page", func(t *testing.T) {
				b := b.in(t)
				b.open(s.base + "/alerts")
				b.waitText(tn.alert)
				b.settle(time.Second)
				text := b.bodyText()
				b.screenshot(t, "alerts")
				if !strings.Contains(text, "AppUp") {
					t.Errorf("AppUp (firing for %s's target) is missing:\n%s", tn.user, truncate(text, 2000))
				}
				noOther(t, text, tn.otherAlert)
				notBroken(t, text)
			})

			t.Run("rules page", func(t *testing.T) {
				b := b.in(t)
				b.open(s.base + "/rules")
				b.waitText(tn.alert)
				b.settle(time.Second)
				text := b.bodyText()
				b.screenshot(t, "rules")
				noOther(t, text, tn.otherAlert, tn.otherRule)
				notBroken(t, text)
			})

			// Target health and service discovery list the scrape pools
			// (/api/v1/scrape_pools), then the targets of each.
			for _, page := range []string{"/targets", "/service-discovery"} {
				t.Run(strings.TrimPrefix(page, "/")+" page", func(t *testing.T) {
					b := b.in(t)
					b.open(s.base + page)
					b.waitFor("the targets or an error", fmt.Sprintf(
						`document.body.innerText.includes(%s) || document.body.innerText.includes("Error")`, jsString(ownLabel)))
					b.settle(time.Second)
					text := b.bodyText()
					b.screenshot(t, strings.TrimPrefix(page, "/"))
					if !strings.Contains(text, tn.job) || !strings.Contains(text, ownLabel) {
						t.Errorf("%s's target (job %s) is not shown:\n%s", tn.user, tn.job, truncate(text, 2000))
					}
					noOther(t, text, tn.otherJob, otherLabel)
					notBroken(t, text)
				})
			}

			// Pages of the server's configuration and state: promgate
			// refuses their API calls, and the UI says so.
			for _, tc := range []struct {
				page string
				data []string // what the page shows when its data comes through
			}{
				{"/status", []string{"Storage retention", "GOMAXPROCS"}},
				{"/flags", []string{"web.listen-address", "storage.tsdb.path"}},
				{"/config", []string{"scrape_configs", "job_name"}},
				{"/alertmanager-discovery", []string{"Active Alertmanagers"}},
			} {
				t.Run(strings.TrimPrefix(tc.page, "/")+" page", func(t *testing.T) {
					b := b.in(t)
					b.open(s.base + tc.page)
					text := b.waitText(uiRefusalText)
					b.screenshot(t, strings.TrimPrefix(tc.page, "/"))
					noOther(t, text, tc.data...)
				})
			}
			// TSDB status counts series by metric and label: refused, or
			// counted over the tenant's series only.
			t.Run("tsdb-status page", func(t *testing.T) {
				b := b.in(t)
				b.open(s.base + "/tsdb-status")
				b.waitFor("the TSDB status or an error", `document.body.innerText.includes("Error") || document.body.innerText.includes("Head")`)
				b.settle(time.Second)
				text := b.bodyText()
				b.screenshot(t, "tsdb-status")
				noOther(t, text, tn.otherMetric, tn.otherJob)
				if !strings.Contains(text, uiRefusalText) {
					notBroken(t, text)
				}
			})

			// The header's notification badge reads a live stream of
			// server notifications on every page: it must connect (the
			// badge shows "!" when it cannot).
			t.Run("notification badge", func(t *testing.T) {
				b := b.in(t)
				b.open(s.base + "/query")
				b.waitFor("the header", `document.body.innerText.includes("Alerts")`)
				b.settle(2 * time.Second)
				b.screenshot(t, "header")
				var failed []string
				for _, f := range b.takeFailures() {
					if strings.Contains(f, "/api/v1/notifications") {
						failed = append(failed, f)
					}
				}
				badge := eval[string](b, `Array.from(document.querySelectorAll("[class*=Indicator-indicator]")).map(e => e.textContent).join(",")`)
				if len(failed) > 0 || badge == "!" {
					t.Errorf("the notification badge is broken: badge %q, failed requests %v", badge, failed)
				}
			})
		})
	}
}

// TestPrometheus3UIRedirects follows, through nginx and promgate as a
// tenant, the URLs of Prometheus 2.x's UI that Prometheus 3 redirects
// (/graph to /query, / to /query), and checks each answer equals what
// Prometheus itself answers, with the same Location.
func TestPrometheus3UIRedirects(t *testing.T) {
	skipIfShort(t)
	onlyPrometheus3(t, "Prometheus 2.x's redirects are TestUIRedirects'")
	s := startUI3Stack(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u, user string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		if user != "" {
			req.SetBasicAuth(user, user+"-pw")
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	for _, tc := range []struct {
		path, location string
	}{
		{"/graph", "/prometheus/query?"}, // path.Join keeps the "?"
		{"/graph?g0.expr=up&g0.tab=1&g0.range_input=1h", "/prometheus/query?g0.expr=up&g0.tab=1&g0.range_input=1h"},
		{"/", "/prometheus/query"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			wantCode, wantLoc := get(s.prom.url+tc.path, "")
			if wantCode != http.StatusFound || wantLoc != tc.location {
				t.Fatalf("Prometheus itself: %d to %q, want 302 to %q", wantCode, wantLoc, tc.location)
			}
			for _, user := range []string{"alice", "bob"} {
				if code, loc := get(s.base+tc.path, user); code != wantCode || loc != wantLoc {
					t.Errorf("as %s through promgate: %d to %q, want %d to %q", user, code, loc, wantCode, wantLoc)
				}
			}
		})
	}
}
