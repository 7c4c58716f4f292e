package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// Redirect-only UI routes pass to restricted users with their query
// string, and only as redirects: an answer that is not a redirect gets the
// ordinary UI decision.
func TestUIRedirects(t *testing.T) {
	// Answers as Prometheus 2.42 built by Debian does, except "/classic",
	// which here serves a page (a route that is a redirect in one version
	// and a page in another must not pass as a redirect).
	up := newTestUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		q := ""
		if r.URL.RawQuery != "" {
			q = "?" + r.URL.RawQuery
		}
		switch r.URL.Path {
		case "/graph":
			http.Redirect(w, r, "/graph/"+q, http.StatusMovedPermanently)
		case "/graph/":
			http.Redirect(w, r, "/classic/graph"+q, http.StatusFound)
		case "/classic/", "/":
			http.Redirect(w, r, "/classic/graph", http.StatusFound)
		case "/new/graph":
			http.Redirect(w, r, "/graph"+q, http.StatusFound)
		case "/classic":
			io.WriteString(w, "server-rendered secret")
		case "/classic/graph":
			io.WriteString(w, "expression browser")
		default:
			http.NotFound(w, r)
		}
	})
	srv := newTestServer(t, up.URL, Options{})
	for _, tc := range []struct {
		name, method, path string
		status             int
		location           string
		upstream           []string
	}{
		{"/graph keeps its query", "GET", "/graph?g0.expr=up", 301, "/prometheus/graph/?g0.expr=up", []string{"GET /graph?g0.expr=up"}},
		{"/graph/", "GET", "/graph/?g0.expr=up", 302, "/prometheus/classic/graph?g0.expr=up", []string{"GET /graph/?g0.expr=up"}},
		{"HEAD /graph/", "HEAD", "/graph/", 302, "/prometheus/classic/graph", []string{"HEAD /graph/"}},
		{"/classic/", "GET", "/classic/", 302, "/prometheus/classic/graph", []string{"GET /classic/"}},
		{"/", "GET", "/", 302, "/prometheus/classic/graph", []string{"GET /"}},
		{"/new/ of the 2.x React UI", "GET", "/new/graph?x=1", 302, "/prometheus/graph?x=1", []string{"GET /new/graph?x=1"}},
		{"the target page, without its query", "GET", "/classic/graph?g0.expr=up", 200, "", []string{"GET /classic/graph"}},
		{"a page where a redirect was expected", "GET", "/classic", 403, "", []string{"GET /classic"}},
		{"POST is not sent", "POST", "/graph/", 405, "", nil},
		{"dot segments under /new/", "GET", "/new/../api/v1/status/config", 403, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up.mu.Lock()
			up.seen = nil
			up.mu.Unlock()
			req := httptest.NewRequest(tc.method, "/prometheus"+tc.path, nil)
			req.SetBasicAuth("alice", "pw")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != tc.status || rec.Header().Get("Location") != tc.location {
				t.Fatalf("status %d Location %q body %.200s; want %d %q", rec.Code, rec.Header().Get("Location"), rec.Body, tc.status, tc.location)
			}
			if strings.Contains(rec.Body.String(), "secret") {
				t.Errorf("a page passed as a redirect: %s", rec.Body)
			}
			if rec.Code >= 400 {
				envelopeOf(t, rec.Body.Bytes())
			}
			if got := up.requests(); !slices.Equal(got, tc.upstream) {
				t.Errorf("upstream saw %v, want %v", got, tc.upstream)
			}
		})
	}
}
