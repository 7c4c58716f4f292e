package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"
)

const unitFile = "../../examples/systemd/promgate.service"

// The hardening the systemd unit must keep; systemd-analyze checks the
// syntax, this the intent.
func TestSystemdUnitHardening(t *testing.T) {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{
		"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
		"AmbientCapabilities=", "LimitNOFILE=65536", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
	} {
		if !lines[want] {
			t.Errorf("the unit has no line %q", want)
		}
	}
}

func TestSystemdUnitVerifies(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit's syntax is not verified")
	}
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	// verify wants ExecStart's binary to exist: point it at this test's
	// executable, which stands for promgate.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(b), "/usr/local/bin/promgate", self)
	if unit == string(b) {
		t.Fatal("the unit's ExecStart no longer runs /usr/local/bin/promgate")
	}
	p := filepath.Join(t.TempDir(), "promgate.service")
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", p).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestGrafanaDatasources(t *testing.T) {
	b, err := os.ReadFile("../../examples/grafana/datasource.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string         `yaml:"name"`
			UID       string         `yaml:"uid"`
			Access    string         `yaml:"access"`
			Type      string         `yaml:"type"`
			URL       string         `yaml:"url"`
			BasicAuth bool           `yaml:"basicAuth"`
			User      string         `yaml:"basicAuthUser"`
			Secure    map[string]any `yaml:"secureJsonData"`
			JSONData  map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatal(err)
	}
	var basic, oauth bool
	for _, d := range f.Datasources {
		if d.Type != "prometheus" && d.Type != "alertmanager" {
			t.Errorf("%s: type %q", d.Name, d.Type)
		}
		if d.BasicAuth && d.User != "" && d.Secure["basicAuthPassword"] != nil {
			basic = true
		}
		if d.JSONData["oauthPassThru"] == true && !d.BasicAuth {
			oauth = true
		}
	}
	if f.APIVersion != 1 || !basic || !oauth {
		t.Errorf("want apiVersion 1 with a basic auth and an OAuth pass-through data source: %+v", f)
	}
}

// make dist for one architecture: a tarball holding a static promgate
// that tells its version, and a sums file that checks.
func TestMakeDist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release tarball")
	}
	for _, tool := range []string{"make", "tar", "sha256sum", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	dist := t.TempDir()
	cmd := exec.Command("make", "-C", "../..", "dist", "DIST="+dist, "DIST_ARCHS=amd64", "VERSION=0.0.0-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	tarball := "promgate-0.0.0-test.linux-amd64.tar.gz"
	sums, err := os.ReadFile(filepath.Join(dist, "sha256sums.txt"))
	if err != nil || !strings.Contains(string(sums), "  "+tarball+"\n") {
		t.Fatalf("sha256sums.txt: %v %q", err, sums)
	}
	check := exec.Command("sha256sum", "-c", "sha256sums.txt")
	check.Dir = dist
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	x := t.TempDir()
	if out, err := exec.Command("tar", "-C", x, "-xzf", filepath.Join(dist, tarball)).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	dir := filepath.Join(x, "promgate-0.0.0-test.linux-amd64")
	for _, f := range []string{"README.md", "examples/systemd/promgate.service", "examples/grafana/datasource.yml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		out, err := exec.Command(filepath.Join(dir, "promgate"), "--version").Output()
		if err != nil || !strings.HasPrefix(string(out), "promgate, version 0.0.0-test ") || strings.Contains(string(out), "revision: unknown") {
			t.Errorf("--version: %v %q", err, out)
		}
	}
}
