package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"
)

// engineQueries is how many queries Prometheus has evaluated: the count of
// its inner_eval summary.
func engineQueries(t *testing.T, promURL string) string {
	t.Helper()
	resp, err := httpClient.Get(promURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, `prometheus_engine_query_duration_seconds_count{slice="inner_eval"} `); ok {
			return rest
		}
	}
	t.Fatalf("no inner_eval count in Prometheus' metrics")
	return ""
}

// teamsDirect runs q on Prometheus itself, without promgate, and returns
// the teams of the answer.
func teamsDirect(t *testing.T, promURL, q string) []string {
	t.Helper()
	vs := url.Values{"query": {q}, "time": {"1700000000"}}
	resp, err := httpClient.Get(promURL + "/api/v1/query?" + vs.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Error  string
		Data   struct {
			Result []struct{ Metric map[string]string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("%s on Prometheus: %v %s", q, err, body.Error)
	}
	var teams []string
	for _, r := range body.Data.Result {
		teams = append(teams, r.Metric["team"])
	}
	slices.Sort(teams)
	return teams
}

// shows waits until the server-rendered page has an element matching sel
// (a DOM query survives the form's navigation, where polling a script
// does not) and checks that its text holds every one of want.
func shows(b *browser, sel string, want ...string) string {
	b.t.Helper()
	b.run("waiting for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	text := b.bodyText()
	for _, w := range want {
		if !strings.Contains(text, w) {
			b.t.Errorf("the page does not show %q:\n%s", w, text)
		}
	}
	return text
}

// TestWhoamiPage opens /-/whoami in Chromium as a tenant and as an admin:
// the page shows the identity and its selectors, explains a query typed in
// its box without Prometheus evaluating anything, and the query it shows,
// run on Prometheus directly, answers what the tenant gets through
// promgate. promgate explain prints the same rewrite offline. An admin
// explains for another user; a tenant may not.
func TestWhoamiPage(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	prom := startSmallPrometheus(t)
	dir := t.TempDir()
	hash := func(pw string) string { return authHash(t, pw, bcrypt.MinCost) }
	users := "    frank: " + hash("frank-pw") + "\n    carol: " + hash("carol-pw") + "\n    root: " + hash("root-pw")
	file := filepath.Join(dir, "promgate.yml")
	// Limits for everyone, none of them reached here: the page lists them.
	authWriteFile(t, file, reloadConfig(prom.url, users, "limits:\n  upstream_time: 0.5\n  max_query_length: 200\n"))
	gate, err := startServer(t, "promgate-whoami", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr, "--config.auto-reload-interval=0"}
	})
	if err != nil {
		t.Fatal(err)
	}
	const query = "count by (team) (up)"

	var pageSent string
	t.Run("a tenant sees its identity and explains a query", func(t *testing.T) {
		b := newBrowser(t, "whoami-frank", basicAuthHeader("frank", "frank-pw")).in(t)
		b.open(gate.url + "/-/whoami")
		text := shows(b, "#identity", "who am I", "frank", "team-a", `{team="a"}`, `label "team" is "a"`,
			"upstream_time: 0.5 seconds of upstream time per second, saved up to 30s (upstream_time_burst)", "max_query_length: 200 bytes", "answers 429 with Retry-After")
		if strings.Contains(text, `{team="b"}`) {
			t.Errorf("frank's page shows another tenant's selector:\n%s", text)
		}
		if eval[bool](b, `document.getElementById("for-user") !== null`) {
			t.Error("a restricted user is offered to explain for others")
		}
		b.screenshot(t, "identity")

		before := engineQueries(t, prom.url)
		b.run("typing a query", chromedp.SendKeys(chromedp.CSS("#explain"), query), chromedp.Click(chromedp.CSS("#submit")))
		shows(b, "pre.sent", "What promgate sends")
		b.screenshot(t, "explained")
		if after := engineQueries(t, prom.url); after != before {
			t.Errorf("explaining evaluated queries on Prometheus: %s before, %s after", before, after)
		}
		pageSent = eval[string](b, `Array.from(document.querySelectorAll("pre.sent")).map(e => e.textContent).join("\n")`)
		if !strings.Contains(pageSent, `team="a"`) || strings.Contains(pageSent, "\n") {
			t.Fatalf("sent %q: want one query with the tenant's selector", pageSent)
		}
		if got, want := teamsDirect(t, prom.url, pageSent), []string{"a"}; !slices.Equal(got, want) {
			t.Errorf("the query shown answers teams %v on Prometheus, want %v", got, want)
		}
		code, teams := teamsSeen(t, gate.url, func(r *http.Request) { r.SetBasicAuth("frank", "frank-pw") })
		if code != 200 || !slices.Equal(teams, []string{"a"}) {
			t.Errorf("through promgate: %d %v", code, teams)
		}
		if f := b.takeFailures(); len(f) > 0 {
			t.Errorf("failures: %v", f)
		}

		// An injection attempt comes back as text.
		b.open(gate.url + "/-/whoami?explain=" + url.QueryEscape(`up{x="</pre><b id=inj>"}`))
		shows(b, "pre.sent", "What promgate sends")
		if eval[bool](b, `document.getElementById("inj") !== null`) {
			t.Error("the query's text became markup")
		}

		b.open(gate.url + "/-/whoami?explain=up&user=carol")
		shows(b, "#error", "Only unrestricted")
		b.screenshot(t, "refused-other-user")
		f := b.takeFailures()
		if u := unexpected(f, "403 "); len(u) > 0 || len(f) == 0 {
			t.Errorf("want the page's 403 alone, got %v", f)
		}
	})

	t.Run("promgate explain prints the page's rewrite", func(t *testing.T) {
		if pageSent == "" {
			t.Skip("the page gave no query")
		}
		out, err := exec.Command(bin, "explain", "--config.file="+file, "--user", "frank", query).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(string(out), "sent:             "+pageSent+"\n") {
			t.Errorf("explain printed\n%s\nwant sent: %s", out, pageSent)
		}
	})

	t.Run("an admin explains for another user", func(t *testing.T) {
		b := newBrowser(t, "whoami-root", basicAuthHeader("root", "root-pw")).in(t)
		b.open(gate.url + "/-/whoami")
		shows(b, "#identity", "root", "admins", "Everything")
		b.run("explaining for carol",
			chromedp.SendKeys(chromedp.CSS("#explain"), query),
			chromedp.SendKeys(chromedp.CSS("#for-user"), "carol"),
			chromedp.Click(chromedp.CSS("#submit")))
		shows(b, "pre.sent", "For user carol", `{team="b"}`, "What promgate sends")
		b.screenshot(t, "for-carol")
		sent := eval[string](b, `document.querySelector("pre.sent").textContent`)
		if got, want := teamsDirect(t, prom.url, sent), []string{"b"}; !slices.Equal(got, want) {
			t.Errorf("carol's query %q answers teams %v, want %v", sent, got, want)
		}
		b.open(gate.url + "/-/whoami?user=nobody")
		shows(b, "#refusal", "no policy grants access")
		if f := b.takeFailures(); len(f) > 0 {
			t.Errorf("failures: %v", f)
		}
	})

	t.Run("API clients still get JSON", func(t *testing.T) {
		req, _ := http.NewRequest("GET", gate.url+"/-/whoami", nil)
		req.SetBasicAuth("frank", "frank-pw")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Status string
			Data   struct{ User string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Data.User != "frank" {
			t.Errorf("%v %+v", err, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	})
}
