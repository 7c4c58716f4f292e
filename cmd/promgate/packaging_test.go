package main

import (
	"os"
	"os/exec"
	"path/filepath"
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
