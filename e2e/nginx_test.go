package e2e

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// TestNginxInFront runs the nginx of the Prometheus guide in front of
// promgate, with the configuration shipped in examples/nginx: nginx checks
// passwords and passes the user in the trusted header; promgate serves under
// /prometheus without a route prefix of its own.
func TestNginxInFront(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	nginx := findNginx(t)
	prom := startSmallPrometheus(t)
	dir := t.TempDir()

	nginxPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	external := fmt.Sprintf("http://127.0.0.1:%d/prometheus", nginxPort)
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  trusted_header:
    name: X-Prometheus-Injectable
    trusted_sources: [127.0.0.1/32]
policies:
  - {name: a, subjects: ["user:alice"], selectors: ['{team="a"}']}
  - {name: b, subjects: ["user:bob"], selectors: ['{team="b"}']}
`, prom.url)
	cfgFile := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gate, err := startServer(t, "promgate-behind-nginx", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + cfgFile, "--web.listen-address=" + addr,
			"--web.external-url=" + external, "--web.route-prefix=/"}
	})
	if err != nil {
		t.Fatal(err)
	}

	// Salted SHA-1 ({SSHA}, RFC 2307) is a scheme nginx checks itself;
	// Debian's crypt() does not take bcrypt.
	var htpasswd strings.Builder
	for _, u := range []string{"alice", "bob"} {
		salt := []byte("salt-" + u)
		sum := sha1.Sum(append([]byte(u+"-pw"), salt...))
		fmt.Fprintf(&htpasswd, "%s:{SSHA}%s\n", u, base64.StdEncoding.EncodeToString(append(sum[:], salt...)))
	}
	htFile := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htFile, []byte(htpasswd.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.ParseFiles(filepath.Join("..", "examples", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	nginxConf := filepath.Join(dir, "nginx.conf")
	f, err := os.Create(nginxConf)
	if err != nil {
		t.Fatal(err)
	}
	err = tmpl.Execute(f, map[string]string{
		"Dir": dir, "Htpasswd": htFile,
		"Promgate": strings.TrimPrefix(gate.url, "http://"),
		"Listen":   fmt.Sprintf("127.0.0.1:%d", nginxPort),
	})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	global := "daemon off;"
	if os.Geteuid() == 0 {
		// Workers would drop to nobody, who cannot read the test's
		// private temporary directory.
		global += " user root;"
	}
	cmd := exec.Command(nginx, "-c", nginxConf, "-p", dir, "-g", global)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// SIGTERM: the master stops its workers too (SIGKILL would orphan them).
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	waitStatus(t, external+"/-/ready", 401)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})

	for _, tc := range []struct {
		name       string
		user, pass string
		header     string
		wantStatus int
		wantTeams  []string
	}{
		{name: "no credentials: nginx asks", wantStatus: 401},
		{name: "wrong password", user: "alice", pass: "nope", wantStatus: 401},
		{name: "alice", user: "alice", pass: "alice-pw", wantStatus: 200, wantTeams: []string{"a"}},
		{name: "bob", user: "bob", pass: "bob-pw", wantStatus: 200, wantTeams: []string{"b"}},
		{name: "alice claiming to be bob in the header", user: "alice", pass: "alice-pw", header: "bob", wantStatus: 200, wantTeams: []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, teams := teamsSeen(t, external, func(r *http.Request) {
				if tc.user != "" {
					r.SetBasicAuth(tc.user, tc.pass)
				}
				if tc.header != "" {
					r.Header.Set("X-Prometheus-Injectable", tc.header)
				}
			})
			if code != tc.wantStatus || !slices.Equal(teams, tc.wantTeams) {
				t.Errorf("status %d teams %v, want %d %v", code, teams, tc.wantStatus, tc.wantTeams)
			}
		})
	}
}

func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Fatal("e2e: nginx not found (install the Debian package nginx-light)")
	return ""
}

// waitStatus polls url until it answers status.
func waitStatus(t *testing.T, url string, status int) {
	t.Helper()
	for range 100 {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
		}
		sleep()
	}
	t.Fatalf("%s never answered %d", url, status)
}

func sleep() { time.Sleep(100 * time.Millisecond) }
