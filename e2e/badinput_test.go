package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// upstreamRequests is how many API requests a real Prometheus has served,
// read from its own prometheus_http_requests_total (its /metrics scrapes
// excluded). A refused request must leave it unchanged.
func upstreamRequests(t *testing.T, promURL string) float64 {
	t.Helper()
	resp, err := http.Get(promURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "prometheus_http_requests_total{") || strings.Contains(line, `handler="/metrics"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// TestBadInput sends malformed and unauthorised requests through promgate to
// a real Prometheus: each gets its status and Prometheus' JSON error
// envelope, and none reaches the upstream.
func TestBadInput(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	prometheus := requireTool(t, "prometheus")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	prom, err := startPrometheus(t, prometheus, "prometheus-bad-input", data)
	if err != nil {
		t.Fatal(err)
	}

	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(upstream string) string {
		// The trusted header is honoured only from 192.0.2.0/24; the
		// test's requests come from 127.0.0.1.
		return fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
    timeout: 5s
authentication:
  basic_auth_users:
    alice: %s
    nobody: %s
  trusted_header:
    name: X-Prom-User
    trusted_sources: [192.0.2.0/24]
policies:
  - name: team-a
    subjects: ["user:alice"]
    selectors: ['{team="a"}']
`, upstream, hash, hash)
	}
	start := func(name, upstream string) *server {
		file := filepath.Join(dir, name+".yml")
		if err := os.WriteFile(file, []byte(cfg(upstream)), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := startServer(t, name, dir, bin, func(addr string) []string {
			return []string{"--config.file=" + file, "--web.listen-address=" + addr}
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	gate := start("promgate-bad-input", prom.url)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	downGate := start("promgate-upstream-down", fmt.Sprintf("http://127.0.0.1:%d", port))

	form := "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name        string
		gate        *server
		method      string
		path        string
		contentType string
		body        string
		user, pass  string
		header      [2]string
		wantStatus  int
		wantType    string
		wantError   string
	}{
		{name: "unparsable PromQL", method: "GET", path: "/api/v1/query?query=sum(", user: "alice", pass: "pw",
			wantStatus: 400, wantType: "bad_data", wantError: "parse error"},
		{name: "missing credentials", method: "GET", path: "/api/v1/query?query=up",
			wantStatus: 401, wantType: "unauthorized", wantError: "authentication required"},
		{name: "wrong password", method: "GET", path: "/api/v1/query?query=up", user: "alice", pass: "nope",
			wantStatus: 401, wantType: "unauthorized"},
		{name: "unknown user", method: "GET", path: "/api/v1/query?query=up", user: "mallory", pass: "pw",
			wantStatus: 401, wantType: "unauthorized"},
		{name: "identity header from an untrusted source", method: "GET", path: "/api/v1/query?query=up",
			header: [2]string{"X-Prom-User", "alice"}, wantStatus: 403, wantType: "forbidden", wantError: "untrusted"},
		{name: "user without a policy", method: "GET", path: "/api/v1/query?query=up", user: "nobody", pass: "pw",
			wantStatus: 403, wantType: "forbidden", wantError: "no policy"},
		{name: "match[] that is not a selector", method: "GET", path: "/api/v1/series?match[]=sum(up)", user: "alice", pass: "pw",
			wantStatus: 400, wantType: "bad_data", wantError: "match[]"},
		{name: "series without match[]", method: "GET", path: "/api/v1/series", user: "alice", pass: "pw",
			wantStatus: 400, wantType: "bad_data", wantError: "no match[] parameter provided"},
		{name: "oversize body", method: "POST", path: "/api/v1/query", contentType: form, body: "query=" + strings.Repeat("x", 2<<20),
			user: "alice", pass: "pw", wantStatus: 413, wantType: "too_large"},
		{name: "parameter in URL and body", method: "POST", path: "/api/v1/query?query=up", contentType: form, body: "query=other",
			user: "alice", pass: "pw", wantStatus: 400, wantType: "bad_data", wantError: "more than once"},
		{name: "multipart body", method: "POST", path: "/api/v1/query", contentType: "multipart/form-data; boundary=b",
			body: "--b\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nup\r\n--b--\r\n",
			user: "alice", pass: "pw", wantStatus: 415, wantType: "unsupported_media"},
		{name: "unknown path", method: "GET", path: "/api/v1/nonexistent", user: "alice", pass: "pw",
			wantStatus: 403, wantType: "forbidden"},
		{name: "admin API", method: "POST", path: "/api/v1/admin/tsdb/snapshot", user: "alice", pass: "pw",
			wantStatus: 403, wantType: "forbidden"},
		{name: "status config", method: "GET", path: "/api/v1/status/config", user: "alice", pass: "pw",
			wantStatus: 403, wantType: "forbidden"},
		{name: "wrong method", method: "PUT", path: "/api/v1/query?query=up", user: "alice", pass: "pw",
			wantStatus: 405, wantType: "method_not_allowed"},
		{name: "upstream down", gate: downGate, method: "GET", path: "/api/v1/query?query=up", user: "alice", pass: "pw",
			wantStatus: 502, wantType: "upstream", wantError: "upstream unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gate
			if tc.gate != nil {
				g = tc.gate
			}
			before := upstreamRequests(t, prom.url)
			req, err := http.NewRequest(tc.method, g.url+tc.path, bytes.NewBufferString(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			if tc.header[0] != "" {
				req.Header.Set(tc.header[0], tc.header[1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			var env struct{ Status, ErrorType, Error string }
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("body is not a JSON envelope: %q", body)
			}
			if env.Status != "error" || env.ErrorType != tc.wantType || env.Error == "" {
				t.Errorf("envelope %+v, want status error, errorType %s and a message", env, tc.wantType)
			}
			if !strings.Contains(env.Error, tc.wantError) {
				t.Errorf("error %q does not mention %q", env.Error, tc.wantError)
			}
			if tc.wantStatus == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic realm=") {
				t.Errorf("401 without WWW-Authenticate: %v", resp.Header)
			}
			if after := upstreamRequests(t, prom.url); after != before {
				t.Errorf("the refused request reached Prometheus (%v -> %v requests)", before, after)
			}
		})
	}

	// The counter does move for a request promgate forwards; otherwise the
	// assertions above would prove nothing.
	before := upstreamRequests(t, prom.url)
	req, _ := http.NewRequest("GET", gate.url+"/api/v1/query?query=up", nil)
	req.SetBasicAuth("alice", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("good request: status %d", resp.StatusCode)
	}
	if after := upstreamRequests(t, prom.url); after != before+1 {
		t.Errorf("a forwarded request should count once upstream: %v -> %v", before, after)
	}
}
