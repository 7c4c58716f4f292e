package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/promgate/promgate/internal/testenv"
)

// TestAlertmanagerUIInChromium uses Alertmanager's own UI through promgate
// under /alertmanager in headless Chromium: alice sees only team a's
// alerts; a silence she creates in the UI's form gets her team's matcher;
// bob neither sees nor expires it; the receivers offered follow promgate's
// upstreams.alertmanager.receivers; the status page shows no
// configuration. Screenshots are kept among the artifacts.
func TestAlertmanagerUIInChromium(t *testing.T) {
	skipIfShort(t)
	if v := alertmanagerVersion(t); !v.AtLeast(0, 26) {
		t.Skipf("Alertmanager %s: Debian's package ships no UI, only a placeholder page (TestAlertmanagerUIReplay replays the UI's API calls)", v)
	}
	s := startAMStack(t)
	s.postAlerts(t, teamAlerts...)
	base := s.gate.url + "/alertmanager/"
	alice := newBrowser(t, "alertmanager-ui-alice", basicAuthHeader("alice", amUsers["alice"]))
	bob := newBrowser(t, "alertmanager-ui-bob", basicAuthHeader("bob", amUsers["bob"]))

	// alertList expands every group of the alert list and returns its text.
	alertList := func(t *testing.T, b *browser, wait string) string {
		t.Helper()
		b = b.in(t)
		b.open(base + "#/alerts")
		b.waitText(wait)
		b.run("expanding the groups", chromedp.Click(chromedp.Search(`//button[normalize-space()="Expand all groups"]`)))
		b.waitText(`team="`)
		b.settle(500 * time.Millisecond)
		return b.bodyText()
	}
	// notBroken fails on failed requests and error messages.
	notBroken := func(t *testing.T, b *browser) {
		t.Helper()
		if f := b.takeFailures(); len(f) > 0 {
			t.Errorf("failed requests: %v", f)
		}
		if text := b.bodyText(); strings.Contains(text, "Error") {
			t.Errorf("the page shows an error:\n%s", truncate(text, 2000))
		}
	}

	t.Run("alert list", func(t *testing.T) {
		for _, tc := range []struct {
			b           *browser
			own, others []string
		}{
			{alice, []string{`alertname="HighLatency"`, `alertname="DiskFull"`, `team="a"`}, []string{`team="b"`, `team="c"`, "Heartbeat", "team-b", "team-c"}},
			{bob, []string{`alertname="HighLatency"`, `team="b"`}, []string{`team="a"`, `team="c"`, "DiskFull", "Heartbeat", "team-a", "team-c"}},
		} {
			text := alertList(t, tc.b, "HighLatency")
			tc.b.screenshot(t, "alerts")
			for _, o := range tc.own {
				if !strings.Contains(text, o) {
					t.Errorf("%s: the alert list lacks %s:\n%s", tc.b.name, o, truncate(text, 2000))
				}
			}
			for _, o := range tc.others {
				if strings.Contains(text, o) {
					t.Errorf("%s: the alert list shows %s:\n%s", tc.b.name, o, truncate(text, 2000))
				}
			}
			notBroken(t, tc.b)
		}
	})

	var aliceID string
	t.Run("silence from the form", func(t *testing.T) {
		alice := alice.in(t)
		before := s.silences(t)
		alice.open(base + "#/silences/new")
		alice.waitText("Creator")
		// One field at a time, each checked: the page renders anew
		// after each key, and a key typed meanwhile may be lost.
		const creator = `//label[normalize-space()="Creator"]/following-sibling::input`
		const comment = `//label[normalize-space()="Comment"]/following-sibling::textarea`
		xpathValue := func(xpath string) string {
			return fmt.Sprintf("document.evaluate(%s, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue.value", jsString(xpath))
		}
		alice.run("adding the matcher", chromedp.SendKeys(chromedp.CSS("#filter-bar-matcher"), `alertname="HighLatency"`+kb.Enter))
		alice.waitFor("the matcher added", `document.querySelector("#filter-bar-matcher").value === "" && document.body.innerText.includes('alertname="HighLatency"')`)
		alice.run("typing the creator", chromedp.SendKeys(chromedp.Search(creator), "alice"))
		alice.waitFor("the creator typed", xpathValue(creator)+` === "alice"`)
		alice.run("typing the comment", chromedp.SendKeys(chromedp.Search(comment), "created in the UI"))
		alice.waitFor("the comment typed", xpathValue(comment)+` === "created in the UI"`)
		alice.screenshot(t, "silence-form")
		alice.run("creating the silence", chromedp.Click(chromedp.Search(`//button[normalize-space()="Create"]`)))
		// The UI shows the new silence at #/silences/ID.
		alice.waitFor("the silence's page", `/^#\/silences\/[0-9a-f-]{36}$/.test(location.hash)`)
		aliceID = strings.TrimPrefix(eval[string](alice, "location.hash"), "#/silences/")
		alice.waitText("created in the UI")
		alice.settle(500 * time.Millisecond)
		alice.screenshot(t, "silence")
		notBroken(t, alice)

		after := s.silences(t)
		if _, old := before[aliceID]; old || after[aliceID].ID == "" {
			t.Fatalf("the UI shows silence %s, Alertmanager has %v", aliceID, after)
		}
		if got := after[aliceID].matchers(); got != `alertname="HighLatency",team="a"` {
			t.Errorf("alice's silence on Alertmanager: %s, want her team's matcher added", got)
		}
		// The page lists the matchers as name=value.
		text := alice.bodyText()
		if _, m, _ := strings.Cut(text, "Matchers"); !strings.Contains(m, "team=a") {
			t.Errorf("the silence's page does not show the matcher promgate added:\n%s", truncate(text, 2000))
		}
	})
	if aliceID == "" {
		t.Fatal("no silence created")
	}

	t.Run("bob and alice's silence", func(t *testing.T) {
		bob := bob.in(t)
		bob.open(base + "#/silences")
		bob.waitText("No silences found")
		bob.settle(500 * time.Millisecond)
		bob.screenshot(t, "silences")
		if text := bob.bodyText(); strings.Contains(text, "created in the UI") || strings.Contains(text, aliceID) {
			t.Errorf("bob's silence list shows alice's silence:\n%s", truncate(text, 2000))
		}
		notBroken(t, bob)

		// The silence's own page, by its ID: not found for bob.
		bob.open(base + "#/silences/" + aliceID)
		bob.settle(2 * time.Second)
		bob.screenshot(t, "alice-silence")
		if text := bob.bodyText(); strings.Contains(text, "created in the UI") || strings.Contains(text, `team="a"`) {
			t.Errorf("bob sees alice's silence:\n%s", truncate(text, 2000))
		}
		bob.takeFailures()
		// The UI's expire call, from bob's page.
		status := eval[int](bob, fmt.Sprintf(`fetch("api/v2/silence/%s", {method: "DELETE"}).then(r => r.status)`, aliceID))
		if status != 403 {
			t.Errorf("bob expiring alice's silence: status %d, want 403", status)
		}
		if got := s.silences(t)[aliceID]; got.Status.State != "active" {
			t.Errorf("alice's silence after bob's attempt: %+v", got)
		}
	})

	t.Run("alice expires her silence", func(t *testing.T) {
		alice := alice.in(t)
		alice.open(base + "#/silences/" + aliceID)
		alice.waitText("created in the UI", "Expire")
		alice.run("expiring", chromedp.Click(chromedp.Search(`//button[normalize-space()="Expire"]`)))
		// The UI asks first.
		alice.waitText("Confirm")
		alice.screenshot(t, "expire-confirm")
		alice.run("confirming", chromedp.Click(chromedp.Search(`//button[normalize-space()="Confirm"]`)))
		amEventually(t, 10*time.Second, "silence expired", func() error {
			if got := s.silences(t)[aliceID]; got.Status.State != "expired" {
				return fmt.Errorf("state %q", got.Status.State)
			}
			return nil
		})
		notBroken(t, alice)
	})

	t.Run("status page", func(t *testing.T) {
		alice := alice.in(t)
		alice.open(base + "#/status")
		alice.waitText("Version Information", "Config")
		alice.settle(time.Second)
		alice.screenshot(t, "status")
		text := alice.bodyText()
		// The configuration is the last section: it must be empty.
		_, cfg, _ := strings.Cut(text, "\nConfig")
		if strings.TrimSpace(cfg) != "" {
			t.Errorf("the status page shows configuration: %q", truncate(cfg, 1000))
		}
		for _, leak := range []string{"route:", "receivers:", "team-b", "inhibit_rules"} {
			if strings.Contains(text, leak) {
				t.Errorf("the status page shows %q", leak)
			}
		}
		notBroken(t, alice)
	})

	// The receiver filter of the alert list lists /api/v2/receivers.
	receivers := func(t *testing.T) []string {
		t.Helper()
		alice := alice.in(t)
		alice.open(base + "#/alerts")
		alice.waitText(`alertname="`)
		alice.settle(500 * time.Millisecond)
		alice.run("opening the receiver filter", chromedp.Click(chromedp.Search(`//div[starts-with(normalize-space(), "Receiver:")]`)))
		alice.settle(500 * time.Millisecond)
		items := eval[[]string](alice, `Array.from(document.querySelectorAll("li.nav-item.ml-auto *")).filter(e => e.children.length === 0).map(e => e.textContent.trim()).filter(s => s !== "")`)
		return slices.DeleteFunc(items, func(s string) bool { return strings.HasPrefix(s, "Receiver:") })
	}
	cfgFile := filepath.Join(s.dir, "promgate.yml")
	orig, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"routed", []string{"team-a"}},
		{"all", []string{"default", "team-a", "team-b", "team-c"}},
		{"none", nil},
	} {
		t.Run("receivers "+tc.mode, func(t *testing.T) {
			alice := alice.in(t)
			// promgate watches its configuration file.
			cfg := regexp.MustCompile(`(?m)^(  alertmanager:\n    url: .*\n)`).ReplaceAllString(string(orig), "${1}    receivers: "+tc.mode+"\n")
			amWriteFile(t, cfgFile, cfg)
			amEventually(t, 15*time.Second, "receivers: "+tc.mode, func() error {
				code, body := s.call(t, "alice", "GET", "/api/v2/receivers", nil)
				var names []string
				for _, r := range amDecode[[]struct{ Name string }](t, "receivers", body) {
					names = append(names, r.Name)
				}
				if code != 200 || !slices.Equal(names, tc.want) {
					return fmt.Errorf("%d %v", code, names)
				}
				return nil
			})
			got := receivers(t)
			alice.screenshot(t, "receivers-"+tc.mode)
			var shown []string
			for _, r := range got {
				if r != "All" {
					shown = append(shown, r)
				}
			}
			slices.Sort(shown)
			if !slices.Equal(shown, tc.want) {
				t.Errorf("the receiver filter offers %q, want %q", got, tc.want)
			}
			notBroken(t, alice)
		})
	}
}

// amtoolAt runs the amtool at bin as user against promgate; debug sets
// SWAGGER_DEBUG, with which amtool prints the requests and answers.
func (s *amStack) amtoolAt(t *testing.T, bin string, debug bool, user string, args ...string) (string, error) {
	t.Helper()
	full := append([]string{
		"--alertmanager.url=" + s.gate.url + "/alertmanager",
		"--http.config.file=" + filepath.Join(s.dir, "amtool-"+user+".yml"),
		"--timeout=20s",
	}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Env = os.Environ()
	if debug {
		cmd.Env = append(cmd.Env, "SWAGGER_DEBUG=1")
	}
	// stderr only with a failure: amtool warns there when its version and
	// Alertmanager's differ (0.28 against Debian's 0.25), which would spoil
	// the JSON on stdout.
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// TestAmtoolMessages runs the current amtool (0.28) through promgate
// against both Alertmanagers, Debian's 0.25 and 0.28.1: each tenant sees
// and silences their own alerts, and a refusal is an error that says 403.
//
// amtool prints no more of a 403 than "(status 403): {}", whatever the
// body: its generated client reads the body only for the statuses the
// OpenAPI spec declares for the operation (400 and 404 for POST /silences),
// and prints the response object, not its body, for any other. promgate's
// body carries the reason (a JSON string, as Alertmanager words its own
// errors), which amtool shows with SWAGGER_DEBUG=1; the test checks it is
// there.
func TestAmtoolMessages(t *testing.T) {
	skipIfShort(t)
	amtool := requireTool(t, "amtool")
	if v, err := testenv.VersionOf(amtool); err != nil || !v.AtLeast(0, 28) {
		t.Skipf("amtool %v: the current generation's amtool is the one run against both Alertmanagers", v)
	}
	for _, gen := range []struct {
		name   string
		debian bool
	}{{"Debian's Alertmanager", true}, {"current Alertmanager", false}} {
		t.Run(gen.name, func(t *testing.T) {
			if gen.debian {
				// The servers of the oldest generation: Debian's.
				t.Setenv(testenv.UpstreamsDirEnv, "")
			}
			s := startAMStack(t)
			s.postAlerts(t, teamAlerts...)
			t.Logf("Alertmanager %s", alertmanagerVersion(t))
			run := func(debug bool, user string, args ...string) (string, error) {
				t.Helper()
				return s.amtoolAt(t, amtool, debug, user, args...)
			}
			must := func(user string, args ...string) string {
				t.Helper()
				out, err := run(false, user, args...)
				if err != nil {
					t.Fatalf("amtool %s as %s: %v\n%s", strings.Join(args, " "), user, err, out)
				}
				return out
			}

			out := must("alice", "alert", "query", "-o", "json")
			if got := amAlertKeys(amDecode[[]amAlert](t, "amtool alert query", []byte(out))); !slices.Equal(got, []string{"DiskFull/a", "HighLatency/a"}) {
				t.Errorf("alice's alerts: %v", got)
			}
			id := strings.TrimSpace(must("alice", "silence", "add", "alertname=HighLatency", "--comment=alice's", "--duration=1h"))
			if got := s.silences(t)[id].matchers(); got != `alertname="HighLatency",team="a"` {
				t.Errorf("alice's silence on Alertmanager: %q", got)
			}
			if out := must("bob", "silence", "query", "-o", "json"); strings.Contains(out, id) {
				t.Errorf("bob's silences show alice's: %s", out)
			}

			for _, tc := range []struct {
				user   string
				args   []string
				reason string // in promgate's answer
			}{
				{"alice", []string{"silence", "add", "team=b", "alertname=HighLatency", "--comment=x", "--duration=1h"}, "contradict the policy"},
				{"carol", []string{"silence", "add", "alertname=DiskFull", "--comment=x", "--duration=1h"}, "must imply one of the policy's selectors"},
				{"bob", []string{"silence", "expire", id}, ""},
			} {
				out, err := run(false, tc.user, tc.args...)
				if err == nil || !strings.Contains(out, "status 403") {
					t.Errorf("amtool %s as %s: %v %s, want a 403", strings.Join(tc.args, " "), tc.user, err, out)
				}
				if tc.reason == "" {
					continue
				}
				if out, _ := run(true, tc.user, tc.args...); !strings.Contains(out, "403 Forbidden") || !strings.Contains(out, tc.reason) {
					t.Errorf("amtool %s as %s with SWAGGER_DEBUG: the answer lacks %q:\n%s", strings.Join(tc.args, " "), tc.user, tc.reason, out)
				}
			}
			if got := s.silences(t)[id]; got.Status.State != "active" {
				t.Errorf("alice's silence after bob's expire: %+v", got)
			}
		})
	}
}
