package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/auth"
	"github.com/promgate/promgate/internal/server"
	"github.com/promgate/promgate/internal/webconfig"
)

func hashOf(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func gateConfig(users string) string {
	return `upstreams:
  prometheus:
    url: http://127.0.0.1:9090
authentication:
  basic_auth_users:
` + users + `
policies:
  - name: p
    subjects: ["*"]
    selectors: ['{team="{{ .User }}"}']
`
}

func TestCheckCommands(t *testing.T) {
	dir := t.TempDir()
	h := hashOf(t, "pw")
	gate := write(t, dir, "promgate.yml", gateConfig("    alice: "+h))
	dup := write(t, dir, "dup.yml", gateConfig("    erin: "+h))
	web := write(t, dir, "web.yml", "basic_auth_users:\n  erin: "+h+"\n")
	badWeb := write(t, dir, "bad-web.yml", "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n")
	certs := write(t, dir, "certs.yml", strings.Replace(gateConfig("    alice: "+h), "authentication:\n", "authentication:\n  client_certificate: {}\n", 1))
	jwks := write(t, dir, "jwks.yml", strings.Replace(gateConfig("    alice: "+h), "authentication:\n",
		"authentication:\n  jwt:\n    issuer: https://idp\n    audiences: [promgate]\n    jwks_file: missing-jwks.json\n", 1))

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"config alone", []string{"check", "config", gate}, 0, []string{gate + " SUCCESS"}, nil},
		{"config with the web file as argument", []string{"check", "config", gate, web}, 0, []string{gate + " SUCCESS", web + " SUCCESS"}, nil},
		{"config with the web file as flag", []string{"check", "config", "--web.config.file=" + web, gate}, 0, []string{web + " SUCCESS"}, nil},
		{"a user in both files", []string{"check", "config", dup, web}, 1, nil,
			[]string{dup + " FAILED", `line 6: basic_auth_users: user "erin" is also defined in ` + web}},
		{"a broken web file", []string{"check", "config", gate, badWeb}, 1, nil, []string{"missing.crt"}},
		{"client certificates without a web file", []string{"check", "config", certs}, 1, nil, []string{"client_certificate needs a web configuration file"}},
		{"a missing jwks_file", []string{"check", "config", jwks}, 1, nil, []string{"jwt.jwks_file", "missing-jwks.json"}},
		{"web-config", []string{"check", "web-config", web}, 0, []string{web + " SUCCESS"}, nil},
		{"web-config, one bad", []string{"check", "web-config", web, badWeb}, 1, []string{web + " SUCCESS"}, []string{badWeb + " FAILED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, &stdout, &stderr)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &stdout)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &stderr)
				}
			}
			if strings.Contains(stdout.String()+stderr.String(), h) {
				t.Error("a hash was printed")
			}
		})
	}
}

func TestHashToken(t *testing.T) {
	token := "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		in   string
		code int
		out  string
	}{
		{token + "\n", 0, func() string { s := sha256.Sum256([]byte(token)); return hex.EncodeToString(s[:]) + "\n" }()},
		{token, 0, ""},
		{"short\n", 1, ""},
		{"with a space in it, long enough\n", 1, ""},
		{"", 1, ""},
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"hash-token"}, strings.NewReader(tc.in), &stdout, &stderr)
		if code != tc.code || (tc.out != "" && stdout.String() != tc.out) {
			t.Errorf("hash-token %q: exit %d, %q %q", tc.in, code, &stdout, &stderr)
		}
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestReloader: a changed file is noticed, a valid change swapped in, an
// invalid one refused with the metric at 0 and not retried until the file
// changes again, and a change of TLS refused.
func TestReloader(t *testing.T) {
	dir := t.TempDir()
	h := hashOf(t, "pw")
	gate := write(t, dir, "promgate.yml", gateConfig("    alice: "+h))
	web := write(t, dir, "web.yml", "basic_auth_users:\n  erin: "+h+"\n")
	f := flags{configFile: gate, webConfig: web}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	bo := server.BuildOptions{Auth: auth.Runtime{Guard: auth.NewGuard(), Logger: logger}}
	first, err := load(f, bo, logger)
	if err != nil {
		t.Fatal(err)
	}
	webSrv := webconfig.NewServer(first.web, logger)
	rl := newReloader(f, bo, logger, prometheus.NewRegistry(), webSrv)
	srv := server.New(server.Options{Logger: logger, Registry: prometheus.NewRegistry()}, first.st)
	rl.start(srv, first)

	if rl.changed() {
		t.Fatal("changed before any change")
	}
	write(t, dir, "web.yml", "basic_auth_users:\n  erin: "+h+"\n  frank: "+h+"\n")
	if !rl.changed() {
		t.Fatal("a change of web.yml not seen")
	}
	if err := rl.reload("test"); err != nil || gaugeValue(t, rl.ok) != 1 {
		t.Fatalf("reload: %v", err)
	}
	if rl.changed() {
		t.Fatal("changed right after the reload")
	}

	write(t, dir, "promgate.yml", "upstreams: [\n")
	if !rl.changed() {
		t.Fatal("a change of promgate.yml not seen")
	}
	if err := rl.reload("test"); err == nil || gaugeValue(t, rl.ok) != 0 {
		t.Fatalf("broken file: %v", err)
	}
	if rl.changed() {
		t.Error("a refused file would be retried on every poll")
	}
	write(t, dir, "promgate.yml", gateConfig("    alice: "+h))
	if !rl.changed() || rl.reload("test") != nil || gaugeValue(t, rl.ok) != 1 {
		t.Fatal("the fixed file was not loaded")
	}

	// The file disappearing is a change, and a failed reload.
	os.Remove(web)
	if !rl.changed() || rl.reload("test") == nil {
		t.Error("a deleted web.yml was accepted")
	}
}
