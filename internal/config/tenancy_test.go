package config

import (
	"strings"
	"testing"
)

// Mimir's tenant ID rules (grafana.com/docs/mimir, "About Grafana Mimir
// tenant IDs"), which Cortex, GEM and Loki share.
func TestValidMimirTenantID(t *testing.T) {
	for _, tc := range []struct {
		id      string
		wantErr string // "" for valid
	}{
		{"alice", ""},
		{"team-a_1", ""},
		{"A.b", ""},
		{"!-_.*'()", ""},
		{"...", ""},
		{strings.Repeat("a", 150), ""},
		{strings.Repeat("a", 151), "longer than 150 bytes"},
		{"", "empty"},
		{".", `"." and ".."`},
		{"..", `"." and ".."`},
		{"a|b", `"|" would name several tenants`},
		{"__mimir_cluster", "Mimir's own"},
		{"a/b", `character '/'`},
		{"a b", `character ' '`},
		{"a:b", `character ':'`},
		{"a,b", `character ','`},
		{"é", `character 'é'`},
		{"a\nb", `character '\n'`},
	} {
		err := ValidMimirTenantID(tc.id)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v, want valid", tc.id, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: error %v, want one containing %q", tc.id, err, tc.wantErr)
		}
	}
}

func TestValidThanosTenant(t *testing.T) {
	for _, tc := range []struct {
		id      string
		wantErr string
	}{
		{"alice", ""},
		{"team a", ""},
		{"a|b", ""},
		{"", "empty"},
		{".", `"." and ".."`},
		{"..", `"." and ".."`},
		{"a/b", `"/"`},
		{"a/", `"/"`},
		{" a", "surrounding spaces"},
		{"a\x00", "control characters"},
	} {
		err := ValidThanosTenant(tc.id)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v, want valid", tc.id, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: error %v, want one containing %q", tc.id, err, tc.wantErr)
		}
	}
}

const tenancyPolicies = `authentication:
  basic_auth_users:
    alice: $2y$10$EYxs8IOG46m9CtpB/XlPxO1ei7E4BjAen0SUv6di7mD4keR/8JO6m
policies:
  - name: a
    subjects: ["user:alice"]
    selectors: ['{team="a"}']
`

func TestTenancyConfig(t *testing.T) {
	for _, tc := range []struct {
		name       string
		upstreams  string
		wantErr    string
		wantHeader string
	}{
		{name: "mimir defaults to X-Scope-OrgID", upstreams: `    tenancy: {kind: mimir, tenant: "{{ .User }}", label_policy_header: true}`, wantHeader: "X-Scope-OrgID"},
		{name: "thanos defaults to THANOS-TENANT", upstreams: `    tenancy: {kind: thanos, tenant: "t-{{ .User }}"}`, wantHeader: "THANOS-TENANT"},
		{name: "header given", upstreams: `    tenancy: {kind: thanos, header: X-Tenant, tenant: "{{ .User }}"}`, wantHeader: "X-Tenant"},
		{name: "kind required", upstreams: `    tenancy: {tenant: "{{ .User }}"}`, wantErr: "line 4: upstreams.prometheus.tenancy.kind is required"},
		{name: "kind unknown", upstreams: `    tenancy: {kind: cortex, tenant: "{{ .User }}"}`, wantErr: `kind: "cortex" is not one of mimir, thanos`},
		{name: "tenant required", upstreams: `    tenancy: {kind: mimir}`, wantErr: "tenancy.tenant is required"},
		{name: "bad template", upstreams: `    tenancy: {kind: mimir, tenant: "{{ .Nope }}"}`, wantErr: "tenancy.tenant: invalid template"},
		{name: "fixed part invalid for everyone", upstreams: `    tenancy: {kind: mimir, tenant: "a|{{ .User }}"}`, wantErr: `"|" would name several tenants`},
		{name: "label policy for thanos", upstreams: `    tenancy: {kind: thanos, tenant: "{{ .User }}", label_policy_header: true}`, wantErr: "label_policy_header applies to kind mimir only"},
		{name: "header also under headers", upstreams: "    headers: {x-scope-orgid: fixed}\n    tenancy: {kind: mimir, tenant: \"{{ .User }}\"}", wantErr: "also set under headers"},
		{name: "policy header cannot carry the tenant", upstreams: `    tenancy: {kind: mimir, header: X-Prom-Label-Policy, tenant: "{{ .User }}"}`, wantErr: "cannot carry the tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "upstreams:\n  prometheus:\n    url: http://127.0.0.1:9090\n" + tc.upstreams + "\n" + tenancyPolicies
			c, err := Parse([]byte(doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Upstreams.Prometheus.Tenancy.Header; got != tc.wantHeader {
				t.Errorf("header %q, want %q", got, tc.wantHeader)
			}
		})
	}
}

// The tenant is rendered and validated per request: a user name that
// makes it invalid is an error naming the tenant ID.
func TestRenderTenant(t *testing.T) {
	c, err := Parse([]byte("upstreams:\n  prometheus:\n    url: http://127.0.0.1:9090\n    tenancy: {kind: mimir, tenant: \"org-{{ .User }}\"}\n" + tenancyPolicies))
	if err != nil {
		t.Fatal(err)
	}
	tn := c.Upstreams.Prometheus.Tenancy
	if id, err := tn.RenderTenant("alice"); err != nil || id != "org-alice" {
		t.Errorf("alice: %q, %v; want org-alice", id, err)
	}
	for user, want := range map[string]string{
		"a|b":                    `tenant ID "org-a|b": "|" would name several tenants`,
		"x/y":                    `tenant ID "org-x/y": character '/'`,
		strings.Repeat("u", 147): "longer than 150 bytes",
	} {
		if _, err := tn.RenderTenant(user); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("user %q: error %v, want one containing %q", user, err, want)
		}
	}
	// 146 + "org-" = 150 bytes: the limit itself is valid.
	if _, err := tn.RenderTenant(strings.Repeat("u", 146)); err != nil {
		t.Errorf("150 bytes: %v", err)
	}
}
