package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuditSection(t *testing.T) {
	const base = "upstreams:\n  prometheus:\n    url: http://localhost:9090\nauthentication:\n  trusted_header:\n    name: X-User\n    trusted_sources: [127.0.0.1/32]\n"
	for _, tc := range []struct {
		name    string
		yaml    string
		want    *Audit
		wantErr string
	}{
		{name: "absent", yaml: ""},
		{name: "defaults", yaml: "audit: {}\n", want: &Audit{Destination: "stderr", Requests: "all"}},
		{name: "denied to stderr", yaml: "audit:\n  requests: denied\n", want: &Audit{Destination: "stderr", Requests: "denied"}},
		{name: "absolute file", yaml: "audit:\n  destination: /var/log/promgate/audit.log\n", want: &Audit{Destination: "/var/log/promgate/audit.log", Requests: "all"}},
		{name: "bad requests", yaml: "audit:\n  destination: stderr\n  requests: some\n", wantErr: `line 10: audit.requests: "some" is not one of all, denied`},
		{name: "unknown key", yaml: "audit:\n  destnation: stderr\n", wantErr: `unknown field "destnation" in Audit`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(base + tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (cfg.Audit == nil) != (tc.want == nil) || cfg.Audit != nil && *cfg.Audit != *tc.want {
				t.Fatalf("audit %+v, want %+v", cfg.Audit, tc.want)
			}
		})
	}
}

func TestAuditFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "promgate.yml")
	yml := "upstreams:\n  prometheus:\n    url: http://localhost:9090\nauthentication:\n  trusted_header:\n    name: X-User\n    trusted_sources: [127.0.0.1/32]\naudit:\n  destination: logs/audit.log\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "logs", "audit.log"); cfg.Audit.Destination != want {
		t.Fatalf("destination %q, want %q", cfg.Audit.Destination, want)
	}
}
