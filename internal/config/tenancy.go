package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// Tenancy is an upstream's tenancy: the header that names the tenant a
// request is sent as, rendered per user, and validated at request time by
// the rules of the upstream's kind.
//
//	tenancy:
//	  kind: mimir                 # mimir (Mimir, Cortex, GEM, Loki) or thanos
//	  header: X-Scope-OrgID       # default: X-Scope-OrgID (mimir), THANOS-TENANT (thanos)
//	  tenant: "team-{{ .User }}"  # the tenant ID; a template like headers'
//	  label_policy_header: true   # mimir only: the policy as X-Prom-Label-Policy
type Tenancy struct {
	Kind   string `yaml:"kind"`
	Header string `yaml:"header"`
	Tenant string `yaml:"tenant"`
	// LabelPolicyHeader sends the caller's policy as X-Prom-Label-Policy,
	// one value per selector, for GEM's and Loki's label-based access
	// control.
	LabelPolicyHeader bool `yaml:"label_policy_header"`

	tmpl *template.Template `yaml:"-"`
}

// Tenancy kinds.
const (
	TenancyMimir  = "mimir"
	TenancyThanos = "thanos"
)

// Default tenant headers of each kind.
const (
	MimirTenantHeader  = "X-Scope-OrgID"
	ThanosTenantHeader = "THANOS-TENANT"
	// LabelPolicyHeader is GEM's and Loki's label policy header.
	LabelPolicyHeader = "X-Prom-Label-Policy"
)

// TenancyHeaders are the headers that name a tenant or its label policy
// to Mimir, Cortex, GEM, Loki or Thanos. A client's copies are always
// removed: only promgate says who the tenant is.
var TenancyHeaders = []string{MimirTenantHeader, ThanosTenantHeader, LabelPolicyHeader}

// MaxMimirTenantIDLength is Mimir's limit on a tenant ID, in bytes.
const MaxMimirTenantIDLength = 150

func (v *validator) tenancy(where string, u *Upstream, key, n *yaml.Node) {
	tn := field(n, "tenancy")
	if tn == nil || u.Tenancy == nil {
		return
	}
	t := u.Tenancy
	where += ".tenancy"
	line := func(name string) int { return lineOf(field(tn, name), tn, key, n) }
	switch t.Kind {
	case TenancyMimir:
		if t.Header == "" {
			t.Header = MimirTenantHeader
		}
	case TenancyThanos:
		if t.Header == "" {
			t.Header = ThanosTenantHeader
		}
		if t.LabelPolicyHeader {
			v.errorf(line("label_policy_header"), "%s.label_policy_header applies to kind mimir only (Thanos reads no label policy)", where)
		}
	case "":
		v.errorf(line("kind"), "%s.kind is required: mimir or thanos", where)
	default:
		v.errorf(line("kind"), "%s.kind: %q is not one of mimir, thanos", where, t.Kind)
	}
	if t.LabelPolicyHeader && strings.HasSuffix(where, "alertmanager.tenancy") {
		v.errorf(line("label_policy_header"), "%s.label_policy_header applies to the prometheus upstream only", where)
	}
	if !validHeaderName(t.Header) {
		v.errorf(line("header"), "%s.header: invalid header name %q", where, t.Header)
	} else if http.CanonicalHeaderKey(t.Header) == LabelPolicyHeader || http.CanonicalHeaderKey(t.Header) == "Authorization" {
		v.errorf(line("header"), "%s.header: %q cannot carry the tenant", where, t.Header)
	}
	for name := range u.Headers {
		if http.CanonicalHeaderKey(name) == http.CanonicalHeaderKey(t.Header) {
			v.errorf(line("header"), "%s.header: %q is also set under headers: give it once", where, t.Header)
		}
	}
	if t.Tenant == "" {
		v.errorf(line("tenant"), "%s.tenant is required (for example \"{{ .User }}\")", where)
		return
	}
	tmpl, err := parseHeaderTemplate(t.Tenant)
	if err != nil {
		v.errorf(line("tenant"), "%s.tenant: invalid template: %v", where, err)
		return
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, headerData{User: sampleUser}); err != nil {
		v.errorf(line("tenant"), "%s.tenant: invalid template: %v", where, err)
		return
	}
	t.tmpl = tmpl
	// A template whose fixed part already breaks the rules fails for
	// every user: say so now rather than on every request.
	if err := t.ValidateTenant(buf.String()); err != nil && t.Kind != "" {
		v.errorf(line("tenant"), "%s.tenant: for a user named %q: %v", where, sampleUser, err)
	}
}

// RenderTenant returns the tenant ID of user, validated by the rules of
// the tenancy's kind. An invalid one is an error naming it: the request
// must not go upstream under another tenant, nor under none.
func (t *Tenancy) RenderTenant(user string) (string, error) {
	tmpl := t.tmpl
	if tmpl == nil {
		// A Tenancy built in code rather than by Parse.
		var err error
		if tmpl, err = parseHeaderTemplate(t.Tenant); err != nil {
			return "", err
		}
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, headerData{User: user}); err != nil {
		return "", err
	}
	id := buf.String()
	if err := t.ValidateTenant(id); err != nil {
		return "", err
	}
	return id, nil
}

// ValidateTenant applies the kind's rules to a tenant ID.
func (t *Tenancy) ValidateTenant(id string) error {
	var err error
	switch t.Kind {
	case TenancyThanos:
		err = ValidThanosTenant(id)
	default:
		err = ValidMimirTenantID(id)
	}
	if err != nil {
		return fmt.Errorf("tenant ID %q: %w", id, err)
	}
	return nil
}

// ValidMimirTenantID applies the rules of Mimir's tenant IDs (also
// Cortex's, GEM's and Loki's): at most 150 bytes of letters, digits and
// ! - _ . * ' ( ); not "." or ".." (a path segment); not __mimir_cluster
// (Mimir's own). A | would name several tenants (query federation), so it
// is refused by name.
func ValidMimirTenantID(id string) error {
	switch {
	case id == "":
		return errors.New("empty: the request would have no tenant")
	case len(id) > MaxMimirTenantIDLength:
		return fmt.Errorf("longer than %d bytes", MaxMimirTenantIDLength)
	case id == "." || id == "..":
		return errors.New(`"." and ".." are not tenant IDs`)
	case id == "__mimir_cluster":
		return errors.New("__mimir_cluster is Mimir's own")
	case strings.Contains(id, "|"):
		return errors.New(`"|" would name several tenants`)
	}
	for _, r := range id {
		if !mimirTenantRune(r) {
			return fmt.Errorf("character %q is not allowed (letters, digits and ! - _ . * ' ( ) are)", r)
		}
	}
	return nil
}

func mimirTenantRune(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("!-_.*'()", r)
}

// ValidThanosTenant applies Thanos' rule (the tenant is one path segment,
// pkg/tenancy IsTenantValid) and refuses what would make Thanos use
// another tenant: an empty value makes it read THANOS-TENANT or its
// default tenant instead.
func ValidThanosTenant(id string) error {
	switch {
	case id == "":
		return errors.New("empty: Thanos would use its default tenant")
	case id == "." || id == "..":
		return errors.New(`"." and ".." are not tenants`)
	case id != path.Base(id):
		return errors.New(`"/" is not allowed`)
	case !validHeaderValue(id) || strings.TrimSpace(id) != id:
		return errors.New("control characters or surrounding spaces are not allowed")
	}
	return nil
}
