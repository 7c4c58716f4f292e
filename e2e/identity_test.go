package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// smallData is a few series of three teams, enough to see who sees what.
const smallData = `# TYPE up gauge
up{job="a",team="a",instance="h1"} 1 1700000000
up{job="a",team="a",instance="h2"} 1 1700000000
up{job="b",team="b",instance="h3"} 1 1700000000
up{job="c",team="c",instance="h4"} 1 1700000000
# EOF
`

func startSmallPrometheus(t *testing.T) *server {
	t.Helper()
	promtool := requireTool(t, "promtool")
	prometheus := requireTool(t, "prometheus")
	dir := t.TempDir()
	om := filepath.Join(dir, "data.om")
	if err := os.WriteFile(om, []byte(smallData), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := backfill(promtool, om, data); err != nil {
		t.Fatal(err)
	}
	s, err := startPrometheus(t, prometheus, "prometheus-small", data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// teamsSeen runs count by (team) (up) through promgate with the given
// request decoration and returns the teams in the answer.
func teamsSeen(t *testing.T, gateURL string, decorate func(*http.Request)) (int, []string) {
	t.Helper()
	q := url.Values{"query": {"count by (team) (up)"}, "time": {"1700000000"}}
	req, _ := http.NewRequest("GET", gateURL+"/api/v1/query?"+q.Encode(), nil)
	decorate(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct{ Metric map[string]string }
		}
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var teams []string
	for _, r := range body.Data.Result {
		teams = append(teams, r.Metric["team"])
	}
	slices.Sort(teams)
	return resp.StatusCode, teams
}

// TestZeroConfigHeaderMode runs promgate as PromAuthProxy did: no config
// file, the identity in a header set by a proxy in front, the label given on
// the command line.
func TestZeroConfigHeaderMode(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	prom := startSmallPrometheus(t)
	gate, err := startServer(t, "promgate-zero-config", t.TempDir(), bin, func(addr string) []string {
		return []string{"--upstream.prometheus=" + prom.url, "--inject.label=team",
			"--inject.source=X-Prometheus-Injectable", "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		header     string
		wantStatus int
		wantTeams  []string
	}{
		{"a", 200, []string{"a"}},
		{"b", 200, []string{"b"}},
		{`a"} or up{team="c`, 200, nil}, // the value is a label value, nothing more
		{"", 401, nil},
	} {
		code, teams := teamsSeen(t, gate.url, func(r *http.Request) {
			if tc.header != "" {
				r.Header.Set("X-Prometheus-Injectable", tc.header)
			}
		})
		if code != tc.wantStatus || !slices.Equal(teams, tc.wantTeams) {
			t.Errorf("header %q: status %d teams %v, want %d %v", tc.header, code, teams, tc.wantStatus, tc.wantTeams)
		}
	}
}

// TestTrustedHeaderAndBasicAuth uses a config with both methods: the header
// from a trusted source (127.0.0.1 here) and bcrypt basic auth, with users
// hashed by promgate hash-password and the file checked by promgate check
// config.
func TestTrustedHeaderAndBasicAuth(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	prom := startSmallPrometheus(t)
	dir := t.TempDir()

	hashCmd := exec.Command(bin, "hash-password", "--cost=4")
	hashCmd.Stdin = strings.NewReader("s3cret\n")
	out, err := hashCmd.Output()
	if err != nil {
		t.Fatalf("hash-password: %v", err)
	}
	hash := strings.TrimSpace(string(out))

	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  basic_auth_users:
    carol: %s
  trusted_header:
    name: X-Forwarded-User
    trusted_sources: [127.0.0.1/32]
groups:
  team-b: [bob, carol]
policies:
  - name: team-a
    subjects: ["user:alice"]
    selectors: ['{team="a"}']
  - name: team-b
    subjects: ["group:team-b"]
    selectors: ['{team="b"}']
  - name: c-for-carol
    subjects: ["user:carol"]
    selectors: ['{job="c"}']
`, prom.url, hash)
	file := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "config", file).CombinedOutput(); err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("check config: %v %s", err, out)
	}
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte(strings.Replace(cfg, `'{job="c"}'`, `'{job="c"'`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "check", "config", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "line 21") {
		t.Fatalf("check config of a bad selector: want exit 1 naming line 21, got %v: %s", err, out)
	}

	gate, err := startServer(t, "promgate-header-basic", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		decorate   func(*http.Request)
		wantStatus int
		wantTeams  []string
	}{
		{"header alice", func(r *http.Request) { r.Header.Set("X-Forwarded-User", "alice") }, 200, []string{"a"}},
		{"header bob, by group", func(r *http.Request) { r.Header.Set("X-Forwarded-User", "bob") }, 200, []string{"b"}},
		{"basic carol: group and user policies united", func(r *http.Request) { r.SetBasicAuth("carol", "s3cret") }, 200, []string{"b", "c"}},
		{"basic carol, wrong password", func(r *http.Request) { r.SetBasicAuth("carol", "nope") }, 401, nil},
		{"header user without policy", func(r *http.Request) { r.Header.Set("X-Forwarded-User", "eve") }, 403, nil},
	} {
		code, teams := teamsSeen(t, gate.url, tc.decorate)
		if code != tc.wantStatus || !slices.Equal(teams, tc.wantTeams) {
			t.Errorf("%s: status %d teams %v, want %d %v", tc.name, code, teams, tc.wantStatus, tc.wantTeams)
		}
	}
}
