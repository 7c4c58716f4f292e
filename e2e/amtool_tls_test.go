package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAmtoolOverTLS runs amtool against promgate serving HTTPS from a
// web.yml, with an --http.config.file holding tls_config and basic_auth:
// each user sees only their alerts, and amtool without the CA is refused.
func TestAmtoolOverTLS(t *testing.T) {
	skipIfShort(t)
	amBin := requireTool(t, "prometheus-alertmanager")
	amtool := requireTool(t, "amtool")
	dir := t.TempDir()

	amCfg := filepath.Join(dir, "alertmanager.yml")
	authWriteFile(t, amCfg, "route: {receiver: none}\nreceivers: [{name: none}]\n")
	am, err := startServer(t, "alertmanager-tls", dir, amBin, func(addr string) []string {
		return []string{"--config.file=" + amCfg, "--storage.path=" + filepath.Join(dir, "am-data"),
			"--web.listen-address=" + addr, "--cluster.listen-address=", "--log.level=warn"}
	})
	if err != nil {
		t.Fatal(err)
	}
	var alerts []map[string]any
	for _, team := range []string{"a", "b"} {
		alerts = append(alerts, map[string]any{
			"labels":   map[string]string{"alertname": "Team" + strings.ToUpper(team) + "Down", "team": team},
			"startsAt": time.Now().Add(-time.Minute).Format(time.RFC3339),
		})
	}
	body, _ := json.Marshal(alerts)
	resp, err := http.Post(am.url+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("posting alerts to Alertmanager: %v %v", err, resp)
	}
	resp.Body.Close()

	ca := newTestCA(t, "promgate test CA")
	certPEM, keyPEM, _ := ca.issue(t, serverCertTemplate())
	authWriteFile(t, filepath.Join(dir, "ca.pem"), ca.certPEM)
	authWriteFile(t, filepath.Join(dir, "server.pem"), certPEM)
	authWriteFile(t, filepath.Join(dir, "server.key"), keyPEM)
	authWriteFile(t, filepath.Join(dir, "web.yml"), "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n")
	cfg := fmt.Sprintf(`upstreams:
  prometheus: {url: "http://127.0.0.1:9"}
  alertmanager: {url: %q}
authentication:
  basic_auth_users: {alice: %s, bob: %s}
policies:
  - {name: a, subjects: ["user:alice"], selectors: ['{team="a"}']}
  - {name: b, subjects: ["user:bob"], selectors: ['{team="b"}']}
`, am.url, authHash(t, "alice-pw", 4), authHash(t, "bob-pw", 4))
	authWriteFile(t, filepath.Join(dir, "promgate.yml"), cfg)
	gate := startGateTLS(t, "promgate-amtool-tls", dir, tlsClient(t, ca.certPEM, nil), func(addr string) []string {
		return []string{"--config.file=" + filepath.Join(dir, "promgate.yml"),
			"--web.config.file=" + filepath.Join(dir, "web.yml"), "--web.listen-address=" + addr}
	})

	run := func(user string, withCA bool) (string, error) {
		httpCfg := fmt.Sprintf("basic_auth: {username: %s, password: %s-pw}\n", user, user)
		if withCA {
			httpCfg += "tls_config: {ca_file: " + filepath.Join(dir, "ca.pem") + "}\n"
		}
		file := filepath.Join(dir, fmt.Sprintf("amtool-%s-%v.yml", user, withCA))
		authWriteFile(t, file, httpCfg)
		out, err := exec.Command(amtool, "--alertmanager.url="+gate.url+"/alertmanager",
			"--http.config.file="+file, "--timeout=20s", "alert", "query").CombinedOutput()
		return string(out), err
	}
	for user, tc := range map[string]struct{ own, other string }{
		"alice": {"TeamADown", "TeamBDown"},
		"bob":   {"TeamBDown", "TeamADown"},
	} {
		out, err := run(user, true)
		if err != nil || !strings.Contains(out, tc.own) || strings.Contains(out, tc.other) {
			t.Errorf("amtool alert query as %s over TLS: %v\n%s", user, err, out)
		}
	}
	if out, err := run("alice", false); err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("amtool without the CA should fail on the certificate: %v\n%s", err, out)
	}
}
