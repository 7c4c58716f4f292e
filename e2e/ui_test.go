package e2e

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium runs headless Chromium on a page and returns the DOM after its
// scripts ran, saving a screenshot when shot is set.
func chromium(t *testing.T, page, shot string) string {
	t.Helper()
	bin := requireTool(t, "chromium")
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=15000", "--window-size=1280,900"}
	run := func(extra ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(append(args, extra...), page)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", extra, err)
		}
		return string(out)
	}
	dom := run("--dump-dom")
	if shot != "" {
		run("--screenshot=" + shot)
	}
	return dom
}

// TestPrometheusUIInChromium loads the Prometheus expression browser through
// promgate as a tenant, runs a query in its table view, and checks the page
// shows only the tenant's series. The screenshot is kept in
// e2e/artifacts/.
func TestPrometheusUIInChromium(t *testing.T) {
	skipIfShort(t)
	onlyPrometheus2(t, "it loads the classic expression browser, which 3.x has not; TestPrometheus3UIInChromium drives 3.x's UI")
	s := startLiveStack(t)
	artifacts, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ user, own, other string }{
		{"alice", `team="a"`, `team="b"`},
		{"bob", `team="b"`, `team="a"`},
	} {
		t.Run(tc.user, func(t *testing.T) {
			u, _ := url.Parse(s.gateURL + "/classic/graph")
			// Credentials in the URL log the browser in; it reuses them
			// for the page's API calls to the same origin.
			u.User = url.UserPassword(tc.user, "pw")
			u.RawQuery = url.Values{"g0.expr": {"app_requests_total"}, "g0.tab": {"1"}}.Encode()
			dom := chromium(t, u.String(), filepath.Join(artifacts, "prometheus-ui-"+tc.user+".png"))
			if !strings.Contains(dom, "app_requests_total") {
				t.Fatalf("the expression browser did not load: %.500s", dom)
			}
			if !strings.Contains(dom, tc.own) {
				t.Errorf("the table does not show %s's series (%s)", tc.user, tc.own)
			}
			if strings.Contains(dom, tc.other) {
				t.Errorf("the table shows another tenant's series (%s)", tc.other)
			}
		})
	}
}
