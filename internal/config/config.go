// Package config loads and validates promgate.yml.
package config

import (
	"net/netip"
	"text/template"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/promgate/promgate/internal/policy"
)

// Config is the whole of promgate.yml.
type Config struct {
	Upstreams      Upstreams           `yaml:"upstreams"`
	Authentication Authentication      `yaml:"authentication"`
	Groups         map[string][]string `yaml:"groups"`
	Policies       []Policy            `yaml:"policies"`
	Metrics        Metrics             `yaml:"metrics"`
	// Limits are the default limits of every identity; see limits.go.
	Limits *Limits `yaml:"limits"`
	Audit  *Audit  `yaml:"audit"`
	// WriteLimits bound write requests; see write.go.
	WriteLimits *WriteLimits `yaml:"write_limits"`

	// Rules are the policies compiled by Load (selectors parsed, subjects
	// checked), ready for policy.NewSet.
	Rules []policy.Rule `yaml:"-"`

	// WebUsers are the basic_auth_users of the web configuration file
	// (--web.config.file), given to ParseWeb. With BasicAuthUsers they form
	// one set of users: no name is in both.
	WebUsers map[string]string `yaml:"-"`

	// subjects are the policies' user and group subjects, for
	// CheckSubjects.
	subjects []subjectRef
	// path is the file the configuration was loaded from, for messages.
	path string
}

// Users returns every basic auth user: those of promgate.yml and those of
// the web configuration file. The map is fresh.
func (c *Config) Users() map[string]string {
	out := make(map[string]string, len(c.Authentication.BasicAuthUsers)+len(c.WebUsers))
	for u, h := range c.Authentication.BasicAuthUsers {
		out[u] = h
	}
	for u, h := range c.WebUsers {
		out[u] = h
	}
	return out
}

// Upstreams are the servers promgate fronts.
type Upstreams struct {
	Prometheus   *Upstream `yaml:"prometheus"`
	Alertmanager *Upstream `yaml:"alertmanager"`
}

// Upstream is one server behind promgate.
type Upstream struct {
	// URL is the first of URLs: the server, when there is one.
	URL string `yaml:"-"`
	// URLs are the servers of the role, written as one URL or a list of
	// equivalent servers holding the same data (an HA pair, several
	// Thanos queriers); see package upstream for how they share the work.
	URLs URLList `yaml:"url"`
	// LoadBalancing chooses among several URLs: "least_loaded" (the
	// default: the server with the fewest requests in flight) or
	// "first_available" (in the order written; the next ones stand by).
	LoadBalancing string `yaml:"load_balancing"`
	// FailTimeout is how long a server that failed is left aside
	// (default 10s).
	FailTimeout time.Duration `yaml:"fail_timeout"`
	// Headers are added to every upstream request; values may use
	// {{ .User }} (for example X-Scope-OrgID for Mimir).
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds a whole upstream call (default 2m).
	Timeout time.Duration `yaml:"timeout"`
	// Receivers (Alertmanager only) decides what /api/v2/receivers shows a
	// restricted user: "routed" (default: receivers the routing tree can
	// send the user's alerts to), "all" or "none".
	Receivers string `yaml:"receivers"`
	// AlertsByNamePrefix (Prometheus only) also gives a user the alerts
	// whose name starts with "<user>: ", as the PromAuthProxy did.
	AlertsByNamePrefix bool `yaml:"alerts_by_name_prefix"`
	// Features (Prometheus only) are the upstream's --enable-feature
	// values; they decide the PromQL promgate parses (see package promql).
	// None: what Prometheus accepts by default.
	Features []string `yaml:"features"`
	// Tenancy names the tenant of each request to Mimir, Cortex, GEM,
	// Loki or Thanos; see tenancy.go.
	Tenancy *Tenancy `yaml:"tenancy"`
	// HTTPClient is how promgate connects and authenticates to the
	// upstream: the keys of Prometheus' http_client_config (tls_config,
	// basic_auth, authorization, oauth2, ...), written directly under the
	// upstream as in a scrape config. See httpclient.go.
	HTTPClient commoncfg.HTTPClientConfig `yaml:",inline"`
	// Enforcement (Prometheus only) is how a restricted identity's
	// queries are enforced: "rewrite" (default) or "victoriametrics"
	// (the policy handed down as extra_filters[]; see enforcement.go).
	Enforcement string `yaml:"enforcement"`

	// headerTemplates are the templated Headers, parsed by Parse so that
	// RenderHeaders does not parse them on every request.
	headerTemplates map[string]*template.Template `yaml:"-"`
}

// Authentication lists how callers prove who they are. The authenticators
// are tried in a fixed order; see package auth.
type Authentication struct {
	// BasicAuthUsers maps user names to bcrypt hashes, as in web.yml.
	BasicAuthUsers map[string]string `yaml:"basic_auth_users"`
	// TrustedHeader takes the user from a header set by a proxy in front.
	TrustedHeader *TrustedHeader `yaml:"trusted_header"`
	// ClientCertificate names the user after a verified TLS client
	// certificate. The web configuration must verify client certificates.
	ClientCertificate *ClientCertificate `yaml:"client_certificate"`
	// APITokens are static bearer tokens, stored as hashes.
	APITokens []APIToken `yaml:"api_tokens"`
	// JWT accepts bearer tokens signed by an OpenID Connect provider.
	JWT *JWT `yaml:"jwt"`
	// BruteForce limits failed logins.
	BruteForce BruteForce `yaml:"brute_force"`
}

// Sources of a client certificate's user name and groups.
const (
	CertCN    = "cn"    // the subject's common name
	CertDNS   = "dns"   // the first DNS subject alternative name
	CertEmail = "email" // the first email subject alternative name
	CertURI   = "uri"   // the first URI subject alternative name
	CertOU    = "ou"    // groups: the subject's organizational units
	CertO     = "o"     // groups: the subject's organizations
)

// ClientCertificate says how a verified client certificate names a caller.
type ClientCertificate struct {
	// UserFrom is one of cn (the default), dns, email, uri.
	UserFrom string `yaml:"user_from"`
	// GroupsFrom is "" (no groups, the default), ou or o.
	GroupsFrom string `yaml:"groups_from"`
}

// APIToken is one static bearer token. Only its SHA-256 is stored: tokens
// are long random strings, so a fast hash is safe where a password would
// need bcrypt, and it lets a token be found in one map lookup.
type APIToken struct {
	User string `yaml:"user"`
	// SHA256 is the hex SHA-256 of the token (promgate hash-token).
	SHA256 string `yaml:"sha256"`
	// Hash is SHA256 decoded by Load.
	Hash [32]byte `yaml:"-"`
}

// JWT configures the verification of JSON Web Tokens.
type JWT struct {
	// Issuer must equal the token's iss claim.
	Issuer string `yaml:"issuer"`
	// Audiences: the token's aud must contain at least one of them.
	Audiences []string `yaml:"audiences"`
	// JWKSFile or JWKSURL (exactly one) holds the provider's keys. The
	// file is re-read on reload, the URL fetched again every
	// JWKSRefreshInterval and when a token names an unknown key.
	JWKSFile            string        `yaml:"jwks_file"`
	JWKSURL             string        `yaml:"jwks_url"`
	JWKSRefreshInterval time.Duration `yaml:"jwks_refresh_interval"`
	// UserClaim names the user (default sub); GroupsClaim, if set, lists
	// groups (a string or an array of strings).
	UserClaim   string `yaml:"user_claim"`
	GroupsClaim string `yaml:"groups_claim"`
	// Algorithms allowed (default: every supported asymmetric algorithm).
	Algorithms []string `yaml:"algorithms"`
	// Leeway tolerates clock skew on exp, nbf and iat (default 30s).
	Leeway time.Duration `yaml:"leeway"`
}

// BruteForce limits failed logins: after MaxFailures failures from one
// source address, or for one user, within Window, further attempts are
// answered 429 until the oldest failure leaves the window.
type BruteForce struct {
	// MaxFailures defaults to 10; 0 disables the limit.
	MaxFailures int `yaml:"max_failures"`
	// Window defaults to 5m.
	Window time.Duration `yaml:"window"`
}

// Defaults of the authentication section.
const (
	DefaultJWKSRefreshInterval = 10 * time.Minute
	DefaultJWTLeeway           = 30 * time.Second
	MaxJWTLeeway               = 5 * time.Minute
	DefaultMaxFailures         = 10
	DefaultFailureWindow       = 5 * time.Minute
)

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
	// Limits override the top-level limits for this policy's identities.
	Limits *Limits `yaml:"limits"`
}
