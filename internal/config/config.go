// Package config loads and validates promgate.yml.
package config

import (
	"net/netip"
	"text/template"
	"time"

	"github.com/promgate/promgate/internal/policy"
)

// Config is the whole of promgate.yml.
type Config struct {
	Upstreams      Upstreams           `yaml:"upstreams"`
	Authentication Authentication      `yaml:"authentication"`
	Groups         map[string][]string `yaml:"groups"`
	Policies       []Policy            `yaml:"policies"`

	// Rules are the policies compiled by Load (selectors parsed, subjects
	// checked), ready for policy.NewSet.
	Rules []policy.Rule `yaml:"-"`
}

// Upstreams are the servers promgate fronts.
type Upstreams struct {
	Prometheus   *Upstream `yaml:"prometheus"`
	Alertmanager *Upstream `yaml:"alertmanager"`
}

// Upstream is one server behind promgate.
type Upstream struct {
	URL string `yaml:"url"`
	// Headers are added to every upstream request; values may use
	// {{ .User }} (for example X-Scope-OrgID for Mimir).
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds a whole upstream call (default 2m).
	Timeout time.Duration `yaml:"timeout"`

	// headerTemplates are the templated Headers, parsed by Parse so that
	// RenderHeaders does not parse them on every request.
	headerTemplates map[string]*template.Template `yaml:"-"`
}

// Authentication lists how callers prove who they are.
type Authentication struct {
	// BasicAuthUsers maps user names to bcrypt hashes, as in web.yml.
	BasicAuthUsers map[string]string `yaml:"basic_auth_users"`
	// TrustedHeader takes the user from a header set by a proxy in front.
	TrustedHeader *TrustedHeader `yaml:"trusted_header"`
}

// TrustedHeader is honoured only from TrustedSources.
type TrustedHeader struct {
	Name           string   `yaml:"name"`
	TrustedSources []string `yaml:"trusted_sources"`
	// Prefixes are TrustedSources parsed by Load.
	Prefixes []netip.Prefix `yaml:"-"`
}

// Policy is one entry of policies: as written in the file.
type Policy struct {
	Name      string   `yaml:"name"`
	Subjects  []string `yaml:"subjects"`
	Selectors []string `yaml:"selectors"`
	AllowAll  bool     `yaml:"allow_all"`
}
