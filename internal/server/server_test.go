package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/config"
)

// The routing of the pipeline, against a recording upstream; the real
// servers are in e2e/.
func TestServeRouting(t *testing.T) {
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.Path+"?"+r.URL.RawQuery)
		io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	defer up.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg, err := config.Parse(fmt.Appendf(nil, `upstreams:
  prometheus: {url: %s}
authentication:
  basic_auth_users: {alice: %s, root: %s, nobody: %s}
policies:
  - {name: a, subjects: ["user:alice"], selectors: ['{team="a"}']}
  - {name: admins, subjects: ["user:root"], allow_all: true}
`, up.URL, hash, hash, hash))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	st, err := Build(cfg, BuildOptions{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Logger: logger, RoutePrefix: "/prometheus", Registry: prometheus.NewRegistry()}, st)

	for _, tc := range []struct {
		name, user, path string
		status           int
		upstream         string // what the upstream must have received, "" for nothing
		body             string // substring of the answer
	}{
		{"health needs no login", "", "/prometheus/-/healthy", 200, "", "Healthy"},
		{"metrics need no login", "", "/prometheus/metrics", 200, "", "promgate_http_requests_total"},
		{"outside the route prefix", "alice", "/api/v1/query?query=up", 404, "", "outside"},
		{"prefix must end at a segment", "alice", "/prometheusx/api/v1/query", 404, "", "outside"},
		{"login required", "", "/prometheus/api/v1/query?query=up", 401, "", "authentication required"},
		{"no policy", "nobody", "/prometheus/api/v1/query?query=up", 403, "", "no policy"},
		{"restricted query rewritten", "alice", "/prometheus/api/v1/query?query=up", 200,
			`/api/v1/query?query=%7B__name__%3D%22up%22%2Cteam%3D%22a%22%7D`, "success"},
		{"restricted default deny", "alice", "/prometheus/api/v1/status/flags", 403, "", "not available"},
		{"admin passes as asked", "root", "/prometheus/api/v1/status/flags?x=1", 200, "/api/v1/status/flags?x=1", "success"},
		{"whoami", "alice", "/prometheus/-/whoami", 200, "", `"selectors":["{team=\"a\"}"]`},
		{"alertmanager paths answer in Alertmanager's format", "", "/prometheus/alertmanager/api/v2/alerts", 401, "", `"authentication required"`},
		{"no alertmanager configured", "alice", "/prometheus/alertmanager/api/v2/alerts", 404, "", "no Alertmanager"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen = nil
			req := httptest.NewRequest("GET", tc.path, nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, "pw")
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("status %d body %.300s; want %d containing %q", rec.Code, rec.Body, tc.status, tc.body)
			}
			if rec.Code >= 400 && !json.Valid(rec.Body.Bytes()) {
				t.Errorf("error body is not JSON: %s", rec.Body)
			}
			switch {
			case tc.upstream == "" && len(seen) > 0:
				t.Errorf("the upstream was called: %v", seen)
			case tc.upstream != "" && (len(seen) != 1 || seen[0] != tc.upstream):
				t.Errorf("upstream saw %v, want %s", seen, tc.upstream)
			}
		})
	}
}
