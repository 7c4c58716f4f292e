package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// auditLines reads the audit file's JSON lines.
func auditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// auditLineOf waits for the line of request id in the audit file (it is
// written once the answer is sent).
func auditLineOf(t *testing.T, path, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, m := range auditLines(t, path) {
			if m["request_id"] == id {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit line for request %s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkFields compares the line's fields with want, by their JSON.
func checkFields(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		got, _ := json.Marshal(line[k])
		w, _ := json.Marshal(v)
		if !bytes.Equal(got, w) {
			t.Errorf("%s = %s, want %s", k, got, w)
		}
	}
}

// TestAuditLog runs promgate with an audit file in front of the real
// Prometheus: an allowed query and match[], a forbidden path, a user
// without a policy, a wrong password, a bearer token with a cookie. Each
// line is checked field by field; no credential the test used appears in
// the audit log or in promgate's own log; SIGUSR1 reopens the file after
// it was moved.
func TestAuditLog(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	prom := startSmallPrometheus(t)
	dir := t.TempDir()
	amCfg := filepath.Join(dir, "alertmanager.yml")
	authWriteFile(t, amCfg, amConfigYAML)
	am, err := startServer(t, "alertmanager-audit", dir, requireTool(t, "prometheus-alertmanager"), func(addr string) []string {
		return []string{"--config.file=" + amCfg, "--storage.path=" + filepath.Join(dir, "am-data"),
			"--web.listen-address=" + addr, "--cluster.listen-address=", "--log.level=warn"}
	})
	if err != nil {
		t.Fatal(err)
	}
	hash := func(pw string) string { return authHash(t, pw, bcrypt.MinCost) }

	const (
		carolPW     = "carol-Secret-pw-41"
		evePW       = "eve-Secret-pw-42"
		wrongPW     = "wrong-Secret-pw-43"
		cookieValue = "session-cookie-Secret-44"
	)
	token := "pgt_" + hex.EncodeToString([]byte("audit-test-token-Secret-45"))
	sum := sha256.Sum256([]byte(token))
	auditFile := filepath.Join(dir, "audit.log")
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
  alertmanager:
    url: %s
authentication:
  basic_auth_users:
    carol: %s
    eve: %s
  api_tokens:
    - user: ci-robot
      sha256: %s
policies:
  - name: carol
    subjects: ["user:carol"]
    selectors: ['{team="b"}']
  - name: robot
    subjects: ["user:ci-robot"]
    selectors: ['{team="c"}']
audit:
  destination: audit.log
  requests: all
`, prom.url, am.url, hash(carolPW), hash(evePW), hex.EncodeToString(sum[:]))
	file := filepath.Join(dir, "promgate.yml")
	authWriteFile(t, file, cfg)
	gate, err := startServer(t, "promgate-audit", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr, "--config.auto-reload-interval=0"}
	})
	if err != nil {
		t.Fatal(err)
	}

	// do sends one request and returns its status and the request id
	// promgate answered.
	do := func(method, path string, params url.Values, decorate func(*http.Request)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, gate.url+path+"?"+params.Encode(), nil)
		decorate(req)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		id := resp.Header.Get("X-Request-Id")
		if id == "" {
			t.Fatalf("%s %s: no X-Request-Id in the answer", method, path)
		}
		return resp.StatusCode, id
	}
	basic := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	query := url.Values{"query": {"count by (team) (up)"}, "time": {"1700000000"}}
	carolIdentity := map[string]any{"user": "carol", "groups": []string{}, "method": "basic"}
	var allowedLine, deniedLine map[string]any

	t.Run("allowed query", func(t *testing.T) {
		code, id := do("GET", "/api/v1/query", query, func(r *http.Request) {
			r.SetBasicAuth("carol", carolPW)
			r.Header.Set("X-Request-Id", "grafana-trace-0af7651916cd43dd")
		})
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		if id != "grafana-trace-0af7651916cd43dd" {
			t.Fatalf("a safe client request id was replaced by %q", id)
		}
		line := auditLineOf(t, auditFile, id)
		allowedLine = line
		checkFields(t, line, map[string]any{
			"msg": "request", "method": "GET", "path": "/api/v1/query", "request_id_from_client": true,
			"identity": carolIdentity, "policies": []string{"carol"}, "allow_all": false,
			"query": []string{"count by (team) (up)"}, "decision": "allowed", "status": 200, "upstream_status": 200,
		})
		sent, _ := line["sent_query"].([]any)
		if len(sent) != 1 || !strings.Contains(sent[0].(string), `team="b"`) {
			t.Errorf("sent_query %v does not carry the policy's selector", line["sent_query"])
		}
		if r, _ := line["reason"].(string); !strings.Contains(r, "policy carol") {
			t.Errorf("reason %q does not name the policy", r)
		}
		if n, _ := line["bytes_out"].(float64); n <= 0 {
			t.Errorf("bytes_out %v", line["bytes_out"])
		}
		if d, _ := line["duration_seconds"].(float64); d <= 0 || d > 10 {
			t.Errorf("duration_seconds %v", line["duration_seconds"])
		}
		if r, _ := line["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("remote %q", r)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(line["time"])); err != nil {
			t.Errorf("time: %v", err)
		}
	})

	t.Run("match[] rewritten, unsafe request id replaced", func(t *testing.T) {
		code, id := do("GET", "/api/v1/series", url.Values{"match[]": {"up"}}, func(r *http.Request) {
			r.SetBasicAuth("carol", carolPW)
			r.Header.Set("X-Request-Id", `evil" id with spaces`)
		})
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		if len(id) != 32 {
			t.Fatalf("request id %q: the unsafe client id was not replaced by a generated one", id)
		}
		line := auditLineOf(t, auditFile, id)
		checkFields(t, line, map[string]any{"match": []string{"up"}, "decision": "allowed", "upstream_status": 200})
		if _, ok := line["request_id_from_client"]; ok {
			t.Error("a generated id is marked as the client's")
		}
		sent, _ := json.Marshal(line["sent_match"])
		if !strings.Contains(string(sent), `team=\"b\"`) {
			t.Errorf("sent_match %s does not carry the policy's selector", sent)
		}
	})

	t.Run("Alertmanager filters", func(t *testing.T) {
		code, id := do("GET", "/alertmanager/api/v2/alerts", url.Values{"filter": {`alertname="Down"`}}, basic("carol", carolPW))
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		line := auditLineOf(t, auditFile, id)
		checkFields(t, line, map[string]any{"path": "/alertmanager/api/v2/alerts", "filter": []string{`alertname="Down"`},
			"decision": "allowed", "upstream_status": 200})
		sent, _ := json.Marshal(line["sent_filter"])
		if !strings.Contains(string(sent), `alertname=\"Down\"`) || !strings.Contains(string(sent), `team=\"b\"`) {
			t.Errorf("sent_filter %s lacks the client's filter or the policy's", sent)
		}

		code, id = do("GET", "/alertmanager/api/v2/alerts", url.Values{"filter": {`=oops`}}, basic("carol", carolPW))
		if code != 400 {
			t.Fatalf("bad filter: status %d", code)
		}
		line = auditLineOf(t, auditFile, id)
		checkFields(t, line, map[string]any{"decision": "denied", "status": 400})
		if r, _ := line["reason"].(string); r == "" || strings.HasPrefix(r, "{") || strings.HasPrefix(r, `"`) {
			t.Errorf("reason %q is not the message of Alertmanager's error", r)
		}
	})

	t.Run("forbidden path", func(t *testing.T) {
		code, id := do("POST", "/api/v1/admin/tsdb/snapshot", nil, basic("carol", carolPW))
		if code != 403 {
			t.Fatalf("status %d", code)
		}
		line := auditLineOf(t, auditFile, id)
		deniedLine = line
		checkFields(t, line, map[string]any{"identity": carolIdentity, "decision": "denied", "status": 403})
		if _, ok := line["upstream_status"]; ok {
			t.Error("a refused request has an upstream status")
		}
		if r, _ := line["reason"].(string); !strings.Contains(r, "/api/v1/admin/tsdb/snapshot is not available to restricted users") {
			t.Errorf("reason %q", r)
		}
	})

	t.Run("no policy", func(t *testing.T) {
		code, id := do("GET", "/api/v1/query", query, basic("eve", evePW))
		if code != 403 {
			t.Fatalf("status %d", code)
		}
		line := auditLineOf(t, auditFile, id)
		checkFields(t, line, map[string]any{"identity": map[string]any{"user": "eve", "groups": []string{}, "method": "basic"},
			"decision": "denied", "status": 403})
		if _, ok := line["policies"]; ok {
			t.Errorf("policies %v for a user without one", line["policies"])
		}
		if r, _ := line["reason"].(string); !strings.Contains(r, `no policy names user "eve"`) {
			t.Errorf("reason %q", r)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		code, id := do("GET", "/api/v1/query", query, basic("carol", wrongPW))
		if code != 401 {
			t.Fatalf("status %d", code)
		}
		line := auditLineOf(t, auditFile, id)
		checkFields(t, line, map[string]any{"decision": "denied", "status": 401, "path": "/api/v1/query"})
		if _, ok := line["identity"]; ok {
			t.Errorf("identity %v for a failed login", line["identity"])
		}
		if r, _ := line["reason"].(string); !strings.HasPrefix(r, "authentication failed: ") {
			t.Errorf("reason %q", r)
		}
	})

	t.Run("bearer token and cookie", func(t *testing.T) {
		code, id := do("GET", "/api/v1/query", query, func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+token)
			r.AddCookie(&http.Cookie{Name: "grafana_session", Value: cookieValue})
		})
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		line := auditLineOf(t, auditFile, id)
		checkFields(t, line, map[string]any{"identity": map[string]any{"user": "ci-robot", "groups": []string{}, "method": "token"},
			"policies": []string{"robot"}, "decision": "allowed", "status": 200})
	})

	t.Run("no credential in any log", func(t *testing.T) {
		audit, err := os.ReadFile(auditFile)
		if err != nil {
			t.Fatal(err)
		}
		logs := string(audit) + gate.log()
		secrets := []string{carolPW, evePW, wrongPW, cookieValue, token,
			base64.StdEncoding.EncodeToString([]byte("carol:" + carolPW)),
			base64.StdEncoding.EncodeToString([]byte("eve:" + evePW)),
			base64.StdEncoding.EncodeToString([]byte("carol:" + wrongPW)),
			"Bearer " + token, "grafana_session", "Secret"}
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Errorf("the logs hold the credential %q", s)
			}
		}
		if n := len(auditLines(t, auditFile)); n < 8 {
			t.Errorf("%d audit lines, want at least 8", n)
		}
	})

	t.Run("SIGUSR1 reopens the file", func(t *testing.T) {
		rotated := auditFile + ".1"
		if err := os.Rename(auditFile, rotated); err != nil {
			t.Fatal(err)
		}
		before := len(auditLines(t, rotated))
		if err := gate.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(gate.log(), "audit log reopened") {
			if time.Now().After(deadline) {
				t.Fatalf("no reopen logged:\n%s", gate.log())
			}
			time.Sleep(20 * time.Millisecond)
		}
		_, id := do("GET", "/api/v1/query", query, basic("carol", carolPW))
		checkFields(t, auditLineOf(t, auditFile, id), map[string]any{"decision": "allowed"})
		if after := len(auditLines(t, rotated)); after != before {
			t.Errorf("the moved file got %d more lines after the reopen", after-before)
		}
		if err := gate.Alive(); err != nil {
			t.Fatal(err)
		}
	})

	for name, line := range map[string]map[string]any{"allowed": allowedLine, "denied": deniedLine} {
		b, _ := json.Marshal(line)
		t.Logf("%s: %s", name, b)
	}
}
