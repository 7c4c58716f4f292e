package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// clientFrom is an HTTP client whose connections come from the local
// address ip (127.0.0.2 is loopback too on Linux: all of 127/8 is).
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// TestBruteForce: after max_failures failed logins from one address, the
// next attempt is 429 with Retry-After in Prometheus' error envelope, even
// with the right password; the right password from another address still
// works, and a wrong one from there is refused after its first failure
// (the user has reached the limit).
func TestBruteForce(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	curl := requireTool(t, "curl")
	prom := startSmallPrometheus(t)
	dir := t.TempDir()
	const maxFailures = 3
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  basic_auth_users:
    carol: %s
  brute_force:
    max_failures: %d
    window: 1m
policies:
  - name: carol
    subjects: ["user:carol"]
    selectors: ['{team="b"}']
`, prom.url, authHash(t, "carol-pw", bcrypt.MinCost), maxFailures)
	file := filepath.Join(dir, "promgate.yml")
	authWriteFile(t, file, cfg)
	gate, err := startServer(t, "promgate-bruteforce", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}
	from1, from2 := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	basic := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}

	// A client that presents nothing is challenged, and that is no failed
	// login: browsers ask first without credentials.
	for i := 0; i < maxFailures+2; i++ {
		expectTeams(t, "no credentials", from1, gate.url, nil, 401)
	}
	expectTeams(t, "carol from 127.0.0.2 before the attack", from2, gate.url, basic("carol", "carol-pw"), 200, "b")
	for i := 1; i <= maxFailures; i++ {
		expectTeams(t, fmt.Sprintf("failure %d from 127.0.0.1", i), from1, gate.url, basic("carol", fmt.Sprintf("guess-%d", i)), 401)
	}

	code, _, resp, body, err := teamsVia(from1, gate.url, basic("carol", "guess-next"))
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusTooManyRequests {
		t.Fatalf("failure %d from 127.0.0.1: status %d, want 429: %s", maxFailures+1, code, body)
	}
	if err := errorEnvelope(body, "too_many_requests"); err != nil {
		t.Error(err)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q, want 1..60 seconds", resp.Header.Get("Retry-After"))
	}
	expectTeams(t, "right password from the blocked address", from1, gate.url, basic("carol", "carol-pw"), 429)
	expectTeams(t, "another user from the blocked address", from1, gate.url, basic("dave", "x"), 429)
	// curl sees the same.
	out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.1", "-u", "carol:carol-pw", gate.url+"/api/v1/query?query=up").CombinedOutput()
	if err != nil || string(out) != "429" {
		t.Errorf("curl from the blocked address: %v %s", err, out)
	}

	expectTeams(t, "right password from 127.0.0.2", from2, gate.url, basic("carol", "carol-pw"), 200, "b")
	out, err = exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.2", "-u", "carol:carol-pw", gate.url+"/api/v1/query?query=up").CombinedOutput()
	if err != nil || string(out) != "200" {
		t.Errorf("curl from 127.0.0.2: %v %s", err, out)
	}
	// carol is at the limit: a wrong guess from a new address is checked
	// (401) but that address then gets no second guess.
	from3 := clientFrom("127.0.0.3")
	expectTeams(t, "a first guess from 127.0.0.3", from3, gate.url, basic("carol", "guess-x"), 401)
	expectTeams(t, "a second guess from 127.0.0.3", from3, gate.url, basic("carol", "guess-y"), 429)
	expectTeams(t, "carol still works from 127.0.0.2", from2, gate.url, basic("carol", "carol-pw"), 200, "b")

	if v, err := metricValue(httpClient, gate.url, `promgate_authentication_failures_total{method="basic"}`); err != nil || v == "0" {
		t.Errorf("promgate_authentication_failures_total{method=\"basic\"} = %q, %v", v, err)
	}
	if strings.Contains(gate.log(), "guess-") || strings.Contains(gate.log(), "carol-pw") {
		t.Error("a password was logged")
	}
}
