package upstream

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/promgate/promgate/internal/identity"
)

// These tests need to see the headers the upstream receives, which no real
// Prometheus shows; the e2e suite covers the real servers.
func TestForwardedHeaders(t *testing.T) {
	var got http.Header
	var gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, gotPath = r.Header.Clone(), r.URL.Path+"?"+r.URL.RawQuery
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/base/")
	u, err := New(Options{
		URL: base,
		Headers: func(user string) (http.Header, error) {
			return http.Header{"X-Scope-Orgid": {user}}, nil
		},
		HeaderNames:  []string{"X-Scope-OrgID"},
		StripHeaders: []string{"Authorization", "X-Prom-User"},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
	req.Header.Set("Authorization", "Basic YWxpY2U6cHc=")
	req.Header.Set("X-Prom-User", "alice")
	req.Header.Set("Cookie", "session=1")
	req.Header.Set("X-Scope-OrgID", "someone-else")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "1")
	req.Header.Set("Accept-Encoding", "identity")
	req = req.WithContext(identity.NewContext(req.Context(), identity.Identity{User: "alice"}))
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, req)

	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if gotPath != "/base/api/v1/query?query=up" {
		t.Errorf("upstream path %q", gotPath)
	}
	for _, h := range []string{"Authorization", "X-Prom-User", "Cookie", "X-Hop"} {
		if v := got.Get(h); v != "" {
			t.Errorf("%s forwarded: %q", h, v)
		}
	}
	if v := got.Get("X-Scope-OrgID"); v != "alice" {
		t.Errorf("tenancy header %q, want alice (the client's value replaced)", v)
	}
	if v := got.Get("Accept-Encoding"); v != "identity" {
		t.Errorf("Accept-Encoding %q: the client's must pass unchanged", v)
	}
}

func TestNoHiddenGzip(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Accept-Encoding")
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	u, _ := New(Options{URL: base}, slog.New(slog.DiscardHandler))
	u.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	if got != "" {
		t.Errorf("transport asked for %q though the client did not", got)
	}
}

func TestUpstreamErrors(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	for _, tc := range []struct {
		name    string
		url     string
		timeout time.Duration
		status  int
		errType string
	}{
		{"down", downURL, time.Second, 502, "upstream"},
		{"timeout", slow.URL, 100 * time.Millisecond, 504, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, _ := url.Parse(tc.url)
			u, _ := New(Options{URL: base, Timeout: tc.timeout}, slog.New(slog.DiscardHandler))
			rec := httptest.NewRecorder()
			u.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/query", nil))
			var env struct{ Status, ErrorType, Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if rec.Code != tc.status || env.ErrorType != tc.errType || env.Error == "" {
				t.Errorf("got %d %+v, want %d %s", rec.Code, env, tc.status, tc.errType)
			}
		})
	}
}

func TestRedirectsUnderPublicPrefix(t *testing.T) {
	for _, tc := range []struct{ base, public, location, want string }{
		{"", "/prometheus", "/classic/graph", "/prometheus/classic/graph"},
		{"", "/prometheus", "/prometheus/classic/graph", "/prometheus/classic/graph"}, // upstream knows its external URL
		{"/am", "/alertmanager", "/am/#/alerts", "/alertmanager/#/alerts"},
		{"", "", "/graph", "/graph"},
		{"", "/p", "http://elsewhere/x", "http://elsewhere/x"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", tc.location)
			w.WriteHeader(http.StatusFound)
		}))
		base, _ := url.Parse(srv.URL + tc.base)
		u, _ := New(Options{URL: base, PublicPrefix: tc.public}, slog.New(slog.DiscardHandler))
		rec := httptest.NewRecorder()
		u.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		srv.Close()
		if got := rec.Header().Get("Location"); got != tc.want {
			t.Errorf("base %q public %q: Location %q -> %q, want %q", tc.base, tc.public, tc.location, got, tc.want)
		}
	}
}

func TestUnrenderableTenancyHeaderFailsClosed(t *testing.T) {
	reached := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	u, _ := New(Options{
		URL:         base,
		Headers:     func(string) (http.Header, error) { return nil, errors.New("control characters") },
		HeaderNames: []string{"X-Scope-OrgID"},
	}, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/query", nil))
	if rec.Code != 500 || reached {
		t.Errorf("status %d, upstream reached %v: want 500 and no upstream request", rec.Code, reached)
	}
}
