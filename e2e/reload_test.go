package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// reloadConfig is a promgate.yml with basic users carol and root, plus
// extra lines under basic_auth_users and under policies.
func reloadConfig(promURL, users, policies string) string {
	return fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  basic_auth_users:
%s
groups:
  team-a: [frank]
policies:
  - name: carol
    subjects: ["user:carol"]
    selectors: ['{team="b"}']
  - name: team-a
    subjects: ["group:team-a"]
    selectors: ['{team="a"}']
  - name: admins
    subjects: ["user:root"]
    allow_all: true
%s`, promURL, users, policies)
}

// reloadPost sends POST /-/reload as user.
func reloadPost(t *testing.T, base, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/-/reload", nil)
	req.SetBasicAuth(user, pass)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestReload changes a running promgate's users by editing its files:
// promgate.yml and the web configuration file are watched and reloaded; a
// broken file is refused, the old users keep working and
// promgate_config_last_reload_successful says 0; SIGHUP and POST /-/reload
// reload too, the latter only for those --web.reload allows.
func TestReload(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	prom := startSmallPrometheus(t)
	dir := t.TempDir()
	hash := func(pw string) string { return authHash(t, pw, bcrypt.MinCost) }
	carol := "    carol: " + hash("carol-pw")
	root := "    root: " + hash("root-pw")
	dave := "    dave: " + hash("dave-pw")
	davePolicy := "  - name: dave\n    subjects: [\"user:dave\"]\n    selectors: ['{team=\"c\"}']\n"
	erinB := "  - name: erin\n    subjects: [\"user:erin\"]\n    selectors: ['{team=\"b\"}']\n"
	basic := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	reloadOK := func(base, want string) func() error {
		return func() error {
			v, err := metricValue(httpClient, base, "promgate_config_last_reload_successful")
			if err != nil {
				return err
			}
			if v != want {
				return fmt.Errorf("promgate_config_last_reload_successful %s, want %s", v, want)
			}
			return nil
		}
	}

	gateFile := filepath.Join(dir, "promgate.yml")
	webFile := filepath.Join(dir, "web.yml")
	authWriteFile(t, gateFile, reloadConfig(prom.url, carol+"\n"+root, erinB))
	authWriteFile(t, webFile, "basic_auth_users:\n  erin: "+hash("erin-pw")+"\n")
	gate, err := startServer(t, "promgate-reload", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + gateFile, "--web.config.file=" + webFile,
			"--web.listen-address=" + addr, "--config.auto-reload-interval=200ms"}
	})
	if err != nil {
		t.Fatal(err)
	}
	expectTeams(t, "carol", httpClient, gate.url, basic("carol", "carol-pw"), 200, "b")
	expectTeams(t, "erin of web.yml", httpClient, gate.url, basic("erin", "erin-pw"), 200, "b")
	expectTeams(t, "dave before he exists", httpClient, gate.url, basic("dave", "dave-pw"), 401)

	t.Run("a new user in promgate.yml", func(t *testing.T) {
		authWriteFile(t, gateFile, reloadConfig(prom.url, carol+"\n"+root+"\n"+dave, erinB+davePolicy))
		authEventually(t, 10*time.Second, "dave is accepted", func() error {
			code, _, _, body, err := teamsVia(httpClient, gate.url, basic("dave", "dave-pw"))
			if err != nil || code != 200 {
				return fmt.Errorf("status %d %s %v", code, body, err)
			}
			return nil
		})
		expectTeams(t, "dave", httpClient, gate.url, basic("dave", "dave-pw"), 200, "c")
	})

	t.Run("a new user in web.yml", func(t *testing.T) {
		authWriteFile(t, webFile, "basic_auth_users:\n  erin: "+hash("erin-pw")+"\n  frank: "+hash("frank-pw")+"\n")
		authEventually(t, 10*time.Second, "frank is accepted", func() error {
			code, _, _, body, err := teamsVia(httpClient, gate.url, basic("frank", "frank-pw"))
			if err != nil || code != 200 {
				return fmt.Errorf("status %d %s %v", code, body, err)
			}
			return nil
		})
		expectTeams(t, "frank, by group", httpClient, gate.url, basic("frank", "frank-pw"), 200, "a")
	})

	t.Run("a broken promgate.yml is refused and the old users keep working", func(t *testing.T) {
		good, _ := os.ReadFile(gateFile)
		authWriteFile(t, gateFile, strings.Replace(string(good), `'{team="c"}'`, `'{team="c"'`, 1))
		authEventually(t, 10*time.Second, "the reload fails", reloadOK(gate.url, "0"))
		expectTeams(t, "carol", httpClient, gate.url, basic("carol", "carol-pw"), 200, "b")
		expectTeams(t, "dave", httpClient, gate.url, basic("dave", "dave-pw"), 200, "c")
		if !strings.Contains(gate.log(), "configuration reload failed") || !strings.Contains(gate.log(), `invalid selector`) {
			t.Errorf("the log does not name the error:\n%s", gate.log())
		}
		// POST /-/reload says why, with a body.
		if code, body := reloadPost(t, gate.url, "root", "root-pw"); code != 500 || !strings.Contains(body, "invalid selector") {
			t.Errorf("POST /-/reload of a broken file: %d %s", code, body)
		}
		authWriteFile(t, gateFile, string(good))
		authEventually(t, 10*time.Second, "the fixed file is loaded", reloadOK(gate.url, "1"))
	})

	t.Run("a user in both files is refused", func(t *testing.T) {
		authWriteFile(t, webFile, "basic_auth_users:\n  erin: "+hash("erin-pw")+"\n  carol: "+hash("other-pw")+"\n")
		authEventually(t, 10*time.Second, "the reload fails", reloadOK(gate.url, "0"))
		expectTeams(t, "carol's own password", httpClient, gate.url, basic("carol", "carol-pw"), 200, "b")
		expectTeams(t, "the web.yml password of carol", httpClient, gate.url, basic("carol", "other-pw"), 401)
		if !strings.Contains(gate.log(), `user \"carol\" is also defined in`) && !strings.Contains(gate.log(), `user "carol" is also defined in`) {
			t.Errorf("the log does not name the duplicate:\n%s", gate.log())
		}
		authWriteFile(t, webFile, "basic_auth_users:\n  erin: "+hash("erin-pw")+"\n")
		authEventually(t, 10*time.Second, "the fixed file is loaded", reloadOK(gate.url, "1"))
	})

	t.Run("POST /-/reload from localhost", func(t *testing.T) {
		// Behind a proxy on the same host every tenant comes from
		// localhost: the address proves nothing.
		if code, body := reloadPost(t, gate.url, "carol", "carol-pw"); code != 403 {
			t.Errorf("carol from localhost: %d %s", code, body)
		}
		if code, body := reloadPost(t, gate.url, "root", "root-pw"); code != 200 {
			t.Errorf("root: %d %s", code, body)
		}
	})

	t.Run("SIGHUP and POST /-/reload without watching", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "promgate.yml")
		authWriteFile(t, file, reloadConfig(prom.url, carol+"\n"+root, ""))
		gate, err := startServer(t, "promgate-reload-hup", dir, bin, func(addr string) []string {
			return []string{"--config.file=" + file, "--web.listen-address=" + addr,
				"--config.auto-reload-interval=0", "--web.reload=admin"}
		})
		if err != nil {
			t.Fatal(err)
		}
		authWriteFile(t, file, reloadConfig(prom.url, carol+"\n"+root+"\n"+dave, davePolicy))
		time.Sleep(500 * time.Millisecond)
		expectTeams(t, "dave without a reload", httpClient, gate.url, basic("dave", "dave-pw"), 401)
		if err := gate.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		authEventually(t, 10*time.Second, "dave after SIGHUP", func() error {
			code, _, _, _, err := teamsVia(httpClient, gate.url, basic("dave", "dave-pw"))
			if err != nil || code != 200 {
				return fmt.Errorf("status %d %v", code, err)
			}
			return nil
		})

		erinPolicy := davePolicy + "  - name: erin\n    subjects: [\"user:erin\"]\n    selectors: ['{team=\"a\"}']\n"
		authWriteFile(t, file, reloadConfig(prom.url, carol+"\n"+root+"\n"+dave+"\n    erin: "+hash("erin-pw"), erinPolicy))
		// --web.reload=admin: a restricted user may not reload, even from
		// localhost; an allow_all one may.
		if code, body := reloadPost(t, gate.url, "carol", "carol-pw"); code != 403 {
			t.Errorf("carol, --web.reload=admin: %d %s", code, body)
		}
		expectTeams(t, "erin before the reload", httpClient, gate.url, basic("erin", "erin-pw"), 401)
		if code, body := reloadPost(t, gate.url, "root", "root-pw"); code != 200 {
			t.Errorf("root: %d %s", code, body)
		}
		expectTeams(t, "erin after POST /-/reload", httpClient, gate.url, basic("erin", "erin-pw"), 200, "a")
	})
}
