package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// shapeOf describes an error answer: "envelope" (Prometheus' JSON error
// envelope), "am-string" (Alertmanager's handler error, a JSON string),
// "am-code" (Alertmanager's {"code":..,"message":..}), or "other".
func shapeOf(contentType string, body []byte) string {
	if contentType != "application/json" {
		return "other"
	}
	var s string
	if json.Unmarshal(body, &s) == nil && s != "" {
		return "am-string"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return "other"
	}
	if len(m) == 3 && m["status"] != nil && m["errorType"] != nil && m["error"] != nil {
		return "envelope"
	}
	if len(m) == 2 && m["code"] != nil && m["message"] != nil {
		return "am-code"
	}
	return "other"
}

func doRaw(t *testing.T, method, url, user, pass string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// TestErrorShapes checks the shape of errors where Prometheus' and
// Alertmanager's clients read them, against what the real servers answer:
// a wrong method on a Prometheus path is Prometheus' envelope with Allow,
// for tenants and unrestricted users alike; an Alertmanager that does not
// answer is a 502 in the shape Alertmanager answers its errors in.
func TestErrorShapes(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	amBin := requireTool(t, "prometheus-alertmanager")
	prom := startSmallPrometheus(t)
	dir := t.TempDir()
	amCfg := filepath.Join(dir, "alertmanager.yml")
	authWriteFile(t, amCfg, amConfigYAML)
	am, err := startServer(t, "alertmanager-shapes", dir, amBin, func(addr string) []string {
		return []string{"--config.file=" + amCfg, "--storage.path=" + filepath.Join(dir, "am-data"),
			"--web.listen-address=" + addr, "--cluster.listen-address=", "--log.level=warn"}
	})
	if err != nil {
		t.Fatal(err)
	}
	hash := authHash(t, "pw", bcrypt.MinCost)
	file := filepath.Join(dir, "promgate.yml")
	authWriteFile(t, file, fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
  alertmanager:
    url: %s
authentication:
  basic_auth_users: {carol: %s, root: %s}
policies:
  - {name: carol, subjects: ["user:carol"], selectors: ['{team="b"}']}
  - {name: admins, subjects: ["user:root"], allow_all: true}
`, prom.url, am.url, hash, hash))
	gate, err := startServer(t, "promgate-shapes", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("405 on a Prometheus path", func(t *testing.T) {
		// Prometheus' own error shape, from the real server.
		resp, body := doRaw(t, http.MethodGet, prom.url+"/api/v1/query", "", "")
		if got := shapeOf(resp.Header.Get("Content-Type"), body); got != "envelope" {
			t.Fatalf("Prometheus' error is %s: %s", got, body)
		}
		for _, user := range []string{"carol", "root"} {
			for _, method := range []string{http.MethodDelete, http.MethodPut} {
				resp, body := doRaw(t, method, gate.url+"/api/v1/query", user, "pw")
				if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
					t.Errorf("%s %s: %d Allow %q %s", user, method, resp.StatusCode, resp.Header.Get("Allow"), body)
				}
				if err := errorEnvelope(body, "method_not_allowed"); err != nil {
					t.Errorf("%s %s: %v", user, method, err)
				}
			}
		}
	})

	t.Run("502 under /alertmanager", func(t *testing.T) {
		// Alertmanager's shape for a handler's error, from the real server.
		resp, body := doRaw(t, http.MethodGet, am.url+"/api/v2/alerts?filter=foo", "", "")
		want := shapeOf(resp.Header.Get("Content-Type"), body)
		if resp.StatusCode != 400 || want != "am-string" {
			t.Fatalf("Alertmanager's error: %d %s %s", resp.StatusCode, want, body)
		}
		am.stop()
		for _, user := range []string{"carol", "root"} {
			for _, path := range []string{"/api/v2/alerts", "/api/v2/silences"} {
				resp, body := doRaw(t, http.MethodGet, gate.url+"/alertmanager"+path, user, "pw")
				if got := shapeOf(resp.Header.Get("Content-Type"), body); resp.StatusCode != 502 || got != want {
					t.Errorf("%s %s with Alertmanager stopped: %d, %s %s; want 502 in Alertmanager's shape (%s)",
						user, path, resp.StatusCode, got, body, want)
				}
			}
		}
	})
}
