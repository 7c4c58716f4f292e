package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestUIRedirects follows, as a tenant, the redirects of Prometheus' UI
// routes through promgate to the page they lead to: /graph (Prometheus'
// canonical URL since 2.0; 2.42 sends it to /graph/, then to
// /classic/graph), /, /classic/. Pages rendered with data on the server
// stay refused.
func TestUIRedirects(t *testing.T) {
	skipIfShort(t)
	onlyPrometheus2(t, "the classic UI these redirects lead to is gone; TestPrometheus3UIRedirects covers 3.x's")
	s := startLiveStack(t)
	for _, tc := range []struct {
		name, path string
		status     int
		final      string // path and query of the last URL
		hops       int    // redirects followed
	}{
		{"/graph with an expression", "/graph?g0.expr=up&g0.tab=1", 200, "/prometheus/classic/graph?g0.expr=up&g0.tab=1", 2},
		{"/graph", "/graph", 200, "/prometheus/classic/graph", 2},
		{"/", "/", 200, "/prometheus/classic/graph", 1},
		{"/classic/", "/classic/", 200, "/prometheus/classic/graph", 1},
		{"a server-rendered page", "/classic/alerts", 403, "/prometheus/classic/alerts", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hops []string
			client := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
				hops = append(hops, req.URL.RequestURI())
				if len(via) > 5 {
					return http.ErrUseLastResponse
				}
				return nil
			}}
			req, _ := http.NewRequest(http.MethodGet, s.gateURL+tc.path, nil)
			req.SetBasicAuth("alice", "pw")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			// 2.42 sends /graph/ to /classic/graph? with an empty query.
			final := strings.TrimSuffix(resp.Request.URL.RequestURI(), "?")
			if resp.StatusCode != tc.status || final != tc.final || len(hops) != tc.hops {
				t.Fatalf("%d at %s after %v; want %d at %s after %d redirects; body %s",
					resp.StatusCode, final, hops, tc.status, tc.final, tc.hops, truncate(string(body), 300))
			}
			if tc.status == 200 && !strings.Contains(string(body), "<title>Prometheus Time Series Collection") {
				t.Errorf("not the expression browser: %s", truncate(string(body), 300))
			}
		})
	}
}
