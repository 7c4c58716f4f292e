package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestRevocation removes users from a running promgate that has only basic
// auth while policies still name them: the reload succeeds (the policy's
// subject is a warning, in the log and in promgate check config) and the
// removed users are refused with 401 from then on, whichever file held
// them.
func TestRevocation(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	prom := startSmallPrometheus(t)
	dir := t.TempDir()
	hash := func(pw string) string { return authHash(t, pw, bcrypt.MinCost) }
	carol := "    carol: " + hash("carol-pw")
	root := "    root: " + hash("root-pw")
	dave := "    dave: " + hash("dave-pw")
	policies := "  - name: dave\n    subjects: [\"user:dave\"]\n    selectors: ['{team=\"c\"}']\n" +
		"  - name: erin\n    subjects: [\"user:erin\"]\n    selectors: ['{team=\"b\"}']\n"
	basic := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	reloaded := func(base string) error {
		v, err := metricValue(httpClient, base, "promgate_config_last_reload_successful")
		if err == nil && v != "1" {
			err = fmt.Errorf("promgate_config_last_reload_successful %s", v)
		}
		return err
	}

	gateFile := filepath.Join(dir, "promgate.yml")
	webFile := filepath.Join(dir, "web.yml")
	authWriteFile(t, gateFile, reloadConfig(prom.url, carol+"\n"+root+"\n"+dave, policies))
	authWriteFile(t, webFile, "basic_auth_users:\n  erin: "+hash("erin-pw")+"\n")
	gate, err := startServer(t, "promgate-revocation", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + gateFile, "--web.config.file=" + webFile,
			"--web.listen-address=" + addr, "--config.auto-reload-interval=200ms"}
	})
	if err != nil {
		t.Fatal(err)
	}
	expectTeams(t, "dave before", httpClient, gate.url, basic("dave", "dave-pw"), 200, "c")
	expectTeams(t, "erin before", httpClient, gate.url, basic("erin", "erin-pw"), 200, "b")

	refused := func(user, pass string) func() error {
		return func() error {
			code, _, _, body, err := teamsVia(httpClient, gate.url, basic(user, pass))
			if err == nil && code != http.StatusUnauthorized {
				err = fmt.Errorf("status %d %s", code, body)
			}
			return err
		}
	}

	t.Run("a user removed from promgate.yml, reloaded by POST /-/reload", func(t *testing.T) {
		authWriteFile(t, gateFile, reloadConfig(prom.url, carol+"\n"+root, policies))
		if code, body := reloadPost(t, gate.url, "root", "root-pw"); code != 200 {
			t.Fatalf("POST /-/reload: %d %s", code, body)
		}
		if err := reloaded(gate.url); err != nil {
			t.Fatal(err)
		}
		authEventually(t, 10*time.Second, "dave is refused", refused("dave", "dave-pw"))
		expectTeams(t, "carol still", httpClient, gate.url, basic("carol", "carol-pw"), 200, "b")
		if !strings.Contains(gate.log(), `user \"dave\" has no credentials`) {
			t.Errorf("the log has no warning for dave's policy:\n%s", gate.log())
		}
	})

	t.Run("a user removed from web.yml, reloaded by the file watch", func(t *testing.T) {
		authWriteFile(t, webFile, "basic_auth_users: {}\n")
		authEventually(t, 10*time.Second, "erin is refused", refused("erin", "erin-pw"))
		if err := reloaded(gate.url); err != nil {
			t.Error(err)
		}
	})

	t.Run("promgate check config warns and succeeds", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "check", "config", gateFile, webFile)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil { // warnings must not fail the check
			t.Fatalf("check config: %v\n%s%s", err, stdout.String(), stderr.String())
		}
		for _, user := range []string{"dave", "erin"} {
			if !strings.Contains(stderr.String(), "WARNING: line") || !strings.Contains(stderr.String(), fmt.Sprintf(`user %q has no credentials`, user)) {
				t.Errorf("no warning for %s:\n%s", user, stderr.String())
			}
		}
		if !strings.Contains(stdout.String(), gateFile+" SUCCESS") {
			t.Errorf("stdout: %s", stdout.String())
		}
	})
}
