package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// internalGet sends method path to promgate's internal listener, without
// credentials.
func internalGet(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestInternalListener runs promgate with --web.internal-listen-address
// and the default --web.reload: a tenant may not reload from 127.0.0.1 (as
// every request comes when a proxy on the same host is in front); the
// internal listener reloads without credentials, serves metrics, health and
// pprof, and /metrics on the tenants' port is for allow_all identities.
func TestInternalListener(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	prom := startSmallPrometheus(t)
	dir := t.TempDir()
	hash := func(pw string) string { return authHash(t, pw, bcrypt.MinCost) }
	carol := "    carol: " + hash("carol-pw")
	root := "    root: " + hash("root-pw")
	dave := "    dave: " + hash("dave-pw")
	davePolicy := "  - name: dave\n    subjects: [\"user:dave\"]\n    selectors: ['{team=\"c\"}']\n"
	basic := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}

	file := filepath.Join(dir, "promgate.yml")
	authWriteFile(t, file, reloadConfig(prom.url, carol+"\n"+root, ""))
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	internal := fmt.Sprintf("http://127.0.0.1:%d", port)
	gate, err := startServer(t, "promgate-internal", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr,
			fmt.Sprintf("--web.internal-listen-address=127.0.0.1:%d", port),
			"--config.auto-reload-interval=0"}
	})
	if err != nil {
		t.Fatal(err)
	}
	authWriteFile(t, file, reloadConfig(prom.url, carol+"\n"+root+"\n"+dave, davePolicy))

	t.Run("a tenant may not reload from localhost", func(t *testing.T) {
		code, body := reloadPost(t, gate.url, "carol", "carol-pw")
		if code != 403 {
			t.Fatalf("carol: %d %s", code, body)
		}
		if err := errorEnvelope([]byte(body), "forbidden"); err != nil {
			t.Error(err)
		}
		expectTeams(t, "dave, not reloaded", httpClient, gate.url, basic("dave", "dave-pw"), 401)
	})

	t.Run("the internal listener reloads without credentials", func(t *testing.T) {
		if code, body := internalGet(t, http.MethodGet, internal+"/-/reload"); code != 405 || errorEnvelope([]byte(body), "method_not_allowed") != nil {
			t.Errorf("GET /-/reload: %d %s", code, body)
		}
		if code, body := internalGet(t, http.MethodPost, internal+"/-/reload"); code != 200 {
			t.Fatalf("POST /-/reload: %d %s", code, body)
		}
		expectTeams(t, "dave after the reload", httpClient, gate.url, basic("dave", "dave-pw"), 200, "c")
	})

	t.Run("an admin may reload on the tenants' port", func(t *testing.T) {
		if code, body := reloadPost(t, gate.url, "root", "root-pw"); code != 200 {
			t.Errorf("root: %d %s", code, body)
		}
	})

	t.Run("metrics, health and pprof on the internal listener", func(t *testing.T) {
		for _, tc := range []struct{ path, want string }{
			{"/metrics", "promgate_config_last_reload_successful 1"},
			{"/metrics", `promgate_http_requests_total{code="403",handler="reload"} 1`},
			{"/-/healthy", "Healthy"},
			{"/-/ready", "Ready"},
			{"/debug/pprof/", "goroutine"},
			{"/debug/pprof/heap?debug=1", "heap profile:"},
			{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
		} {
			code, body := internalGet(t, http.MethodGet, internal+tc.path)
			if code != 200 || !strings.Contains(body, tc.want) {
				t.Errorf("%s: %d, want 200 with %q: %s", tc.path, code, tc.want, truncate(body, 300))
			}
		}
		// Nothing of the upstream is reachable there.
		if code, body := internalGet(t, http.MethodGet, internal+"/api/v1/query?query=up"); code != 404 {
			t.Errorf("/api/v1/query on the internal listener: %d %s", code, truncate(body, 300))
		}
	})

	t.Run("metrics on the tenants' port are for admins", func(t *testing.T) {
		for _, tc := range []struct {
			user, pass string
			code       int
		}{{"", "", 401}, {"carol", "carol-pw", 403}, {"root", "root-pw", 200}} {
			req, _ := http.NewRequest(http.MethodGet, gate.url+"/metrics", nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("/metrics as %q: %d %s", tc.user, resp.StatusCode, truncate(string(body), 300))
			}
		}
		// Health stays on the tenants' port, for load balancers.
		for _, p := range []string{"/-/healthy", "/-/ready"} {
			if code, _ := internalGet(t, http.MethodGet, gate.url+p); code != 200 {
				t.Errorf("%s on the tenants' port: %d", p, code)
			}
		}
	})
}
