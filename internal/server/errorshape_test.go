package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/promgate/promgate/internal/apierror"
)

// Every 405 on Prometheus paths is Prometheus' envelope with an Allow
// header, for restricted and unrestricted identities alike (Prometheus
// itself answers "Method Not Allowed" in plain text).
func TestMethodNotAllowedEnvelope(t *testing.T) {
	up := newTestUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/json405":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Allow", "GET")
			w.WriteHeader(http.StatusMethodNotAllowed)
			io.WriteString(w, `{"status":"error","errorType":"upstream_own","error":"x"}`)
		case r.Method == http.MethodGet || r.Method == http.MethodPost:
			io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		default:
			// As Prometheus' router answers.
			w.Header().Set("Allow", "GET, OPTIONS, POST")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		}
	})
	srv := newTestServer(t, up.URL, Options{})
	for _, tc := range []struct {
		name, user, method, path string
		status                   int
		allow, errorType         string
	}{
		{"tenant", "alice", "DELETE", "/api/v1/query", 405, "GET, POST", "method_not_allowed"},
		{"admin", "root", "DELETE", "/api/v1/query", 405, "GET, OPTIONS, POST", "method_not_allowed"},
		{"admin, PATCH", "root", "PATCH", "/api/v1/series", 405, "GET, OPTIONS, POST", "method_not_allowed"},
		{"admin, a JSON 405 passes as is", "root", "DELETE", "/api/v1/json405", 405, "GET", "upstream_own"},
		{"admin, other answers untouched", "root", "GET", "/api/v1/query", 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/prometheus"+tc.path, nil)
			req.SetBasicAuth(tc.user, "pw")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow {
				t.Fatalf("status %d Allow %q body %s; want %d %q", rec.Code, rec.Header().Get("Allow"), rec.Body, tc.status, tc.allow)
			}
			if tc.errorType == "" {
				return
			}
			if got := envelopeOf(t, rec.Body.Bytes()); got != tc.errorType {
				t.Errorf("errorType %q, want %q", got, tc.errorType)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

// Upstream failures under /alertmanager are answered as Alertmanager
// answers errors: a JSON string on the API v2, the envelope on the v1.
func TestAlertmanagerErrorWriter(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		err        error
		status     int
		body       string
	}{
		{"v2, unavailable", "/api/v2/alerts", apierror.New(apierror.Upstream, "upstream unavailable"), 502, `"upstream unavailable"`},
		{"v2, timeout", "/api/v2/silences", apierror.New(apierror.Timeout, "upstream timed out"), 504, `"upstream timed out"`},
		{"UI asset", "/lib/app.js", apierror.New(apierror.Upstream, "upstream unavailable"), 502, `"upstream unavailable"`},
		{"untyped", "/api/v2/status", errors.New("boom"), 500, `"boom"`},
		{"v1", "/api/v1/alerts", apierror.New(apierror.Upstream, "upstream unavailable"), 502,
			`{"status":"error","errorType":"upstream","error":"upstream unavailable"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r := httptest.NewRequestWithContext(context.Background(), "GET", tc.path, nil)
			alertmanagerErrorWriter(rec, r, tc.err)
			if rec.Code != tc.status || rec.Body.String() != tc.body || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q %s; want %d %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body, tc.status, tc.body)
			}
		})
	}
}
