package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/audit"
	"github.com/promgate/promgate/internal/config"
)

// auditServer is a promgate in front of a recording upstream, auditing
// into buf (nil buf: audit off).
func auditServer(t testing.TB, buf io.Writer) (*Server, func() http.Header) {
	var mu sync.Mutex
	var last http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = r.Header.Clone()
		mu.Unlock()
		io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	t.Cleanup(up.Close)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw-Secret"), bcrypt.MinCost)
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
	if buf != nil {
		st.Audit = audit.NewLoggerTo(buf, false)
	}
	srv := New(Options{Logger: logger, Registry: prometheus.NewRegistry()}, st)
	return srv, func() http.Header { mu.Lock(); defer mu.Unlock(); return last }
}

func TestAuditPipeline(t *testing.T) {
	var buf bytes.Buffer
	srv, upstreamHeader := auditServer(t, &buf)
	for _, tc := range []struct {
		name, user, pass, path string
		status                 int
		upstream               bool
		want                   map[string]string // field: substring of its JSON
	}{
		{"restricted", "alice", "pw-Secret", "/api/v1/query?query=up", 200, true,
			map[string]string{"decision": "allowed", "sent_query": `team=\"a\"`, "query": `["up"]`, "policies": `["a"]`}},
		{"match[]", "alice", "pw-Secret", "/api/v1/series?match[]=up", 200, true,
			map[string]string{"match": `["up"]`, "sent_match": `team=\"a\"`}},
		{"unrestricted", "root", "pw-Secret", "/api/v1/query?query=up", 200, true,
			map[string]string{"allow_all": "true", "query": `["up"]`, "sent_query": `["up"]`, "reason": "unrestricted by policy admins"}},
		{"forbidden path", "alice", "pw-Secret", "/api/v1/admin/tsdb/snapshot", 403, false,
			map[string]string{"decision": "denied", "reason": "not available to restricted users"}},
		{"no policy", "nobody", "pw-Secret", "/api/v1/query?query=up", 403, false,
			map[string]string{"decision": "denied", "reason": `no policy names user \"nobody\", who is in no group`}},
		{"wrong password", "alice", "wrong-Secret", "/api/v1/query?query=up", 401, false,
			map[string]string{"decision": "denied", "reason": "authentication failed"}},
		{"public", "", "", "/-/healthy", 200, false,
			map[string]string{"decision": "allowed", "reason": "public endpoint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf.Reset()
			r := httptest.NewRequest("GET", tc.path, nil)
			if tc.user != "" {
				r.SetBasicAuth(tc.user, tc.pass)
			}
			r.Header.Set("Cookie", "session=cookie-Secret")
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			id := w.Header().Get(audit.RequestIDHeader)
			if len(id) != 32 {
				t.Fatalf("answer's request id %q", id)
			}
			if tc.upstream {
				if got := upstreamHeader().Get(audit.RequestIDHeader); got != id {
					t.Errorf("upstream got request id %q, client %q", got, id)
				}
			}
			var line map[string]json.RawMessage
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%v: %s", err, buf.String())
			}
			if string(line["request_id"]) != `"`+id+`"` || string(line["status"]) != fmt.Sprint(tc.status) {
				t.Errorf("line %s", buf.String())
			}
			for k, v := range tc.want {
				if !strings.Contains(string(line[k]), v) {
					t.Errorf("%s = %s, want it to contain %s", k, line[k], v)
				}
			}
			for _, secret := range []string{"Secret", base64.StdEncoding.EncodeToString([]byte(tc.user + ":" + tc.pass))} {
				if strings.Contains(buf.String(), secret) {
					t.Errorf("the line holds %q: %s", secret, buf.String())
				}
			}
		})
	}
}

func TestAuditOff(t *testing.T) {
	srv, upstreamHeader := auditServer(t, nil)
	r := httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
	r.SetBasicAuth("alice", "pw-Secret")
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	if w.Code != 200 || w.Header().Get(audit.RequestIDHeader) != "" || upstreamHeader().Get(audit.RequestIDHeader) != "" {
		t.Fatalf("audit off: %d, request ids %q %q", w.Code, w.Header().Get(audit.RequestIDHeader), upstreamHeader().Get(audit.RequestIDHeader))
	}
}

// BenchmarkServeAudit is a restricted query through the whole pipeline,
// with the audit off and on (to io.Discard).
func BenchmarkServeAudit(b *testing.B) {
	for _, tc := range []struct {
		name string
		out  io.Writer
	}{{"off", nil}, {"on", io.Discard}} {
		b.Run(tc.name, func(b *testing.B) {
			srv, _ := auditServer(b, tc.out)
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
				r.SetBasicAuth("alice", "pw-Secret")
				srv.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
