package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promgate/promgate/internal/auth/jwt"
	"github.com/promgate/promgate/internal/identity"
	"github.com/promgate/promgate/internal/policy"
)

func identityOf(user string) identity.Identity { return identity.Identity{User: user} }

// badFixtures maps each testdata/*.bad.yml to the substrings its error must
// contain (want) and must not contain (notWant: secrets).
var badFixtures = map[string]struct {
	want    []string
	notWant []string
}{
	"upstream-options.bad.yml": {want: []string{
		`line 4: upstreams.prometheus.receivers applies to the alertmanager upstream only`,
		`line 7: upstreams.alertmanager.receivers: "some" is not one of routed, all, none`,
		`line 8: upstreams.alertmanager.alerts_by_name_prefix applies to the prometheus upstream only`,
	}},
	"upstream-features.bad.yml": {want: []string{
		`line 6: upstreams.prometheus.features: "promql-experimental-funtions" is not a feature of Prometheus (--enable-feature)`,
		`line 7: upstreams.prometheus.features: "promql-experimental-functions" listed twice`,
		`line 10: upstreams.alertmanager.features applies to the prometheus upstream only`,
	}, notWant: []string{`line 5:`}},
	"unknown-key.bad.yml": {want: []string{
		`line 4: unknown field "ur1" in Upstream`,
		`line 8: unknown field "polices" in Config`,
	}},
	"duplicate-user.bad.yml": {want: []string{
		`line 8: duplicate key "alice" (already defined at line 6)`,
	}},
	"bad-selector.bad.yml": {want: []string{
		`line 12: policy "team-a": invalid selector "{team=a}"`,
		`line 13: policy "team-a": invalid selector "up{job=\"x\""`,
	}, notWant: []string{`line 11:`}},
	"utf8-selector-names.bad.yml": {want: []string{
		`line 13: policy "names": invalid selector "{\"\"=\"x\"}": "" is not a label name`,
		`line 14: policy "names": invalid selector "{\"\\xff\"=\"x\"}": "\xff" is not a label name`,
		`line 15: policy "names": invalid selector "{service.name=\"x\"}"`,
	}, notWant: []string{`line 12:`}},
	"bad-template.bad.yml": {want: []string{
		`line 11: policy "ns": invalid template in selector "{namespace=\"{{ .Nope }}\"}"`,
		`Nope`,
		`line 12: policy "ns": invalid template in selector`,
	}},
	"unknown-subject.bad.yml": {want: []string{
		`line 12: policy "p": invalid subject "team:a"`,
		`line 13: policy "p": invalid subject "user:"`,
	}, notWant: []string{`line 10:`}},
	"undefined-group.bad.yml": {want: []string{
		`line 10: group "team-b": member name must not be empty`,
	}, notWant: []string{`anyone`, `"group:team-a"`}},
	"duplicate-policy.bad.yml": {want: []string{
		`line 14: policy "p": duplicate policy name (first defined at line 8)`,
		`line 17: policy #4: name is required`,
		`line 19: policy "r": subjects is required`,
	}},
	"bad-cidr.bad.yml": {want: []string{
		`line 9: trusted_header.trusted_sources: invalid CIDR "10.0.0.0/33"`,
		`line 10: trusted_header.trusted_sources: invalid IP address or CIDR "not-an-ip"`,
		`line 11: trusted_header.trusted_sources: invalid IP address or CIDR "fe80::1%eth0"`,
	}, notWant: []string{`line 8:`}},
	"bad-trusted-header.bad.yml": {want: []string{
		`line 5: trusted_header.name is required`,
		`line 6: trusted_header.trusted_sources is required`,
	}},
	"bad-header-name.bad.yml": {want: []string{
		`line 6: trusted_header.name: invalid header name "X User"`,
	}},
	"bad-hash.bad.yml": {want: []string{
		`line 7: basic_auth_users: user "bob": password is not a valid bcrypt hash`,
		`line 8: basic_auth_users: user "carol": password is not a valid bcrypt hash`,
		`line 9: basic_auth_users: user name must not be empty`,
		`line 10: basic_auth_users: user name "d:e" must not contain ':'`,
	}, notWant: []string{"SECRET", "$2", `"alice"`}},
	"missing-upstream.bad.yml": {want: []string{
		`line 1: upstreams.prometheus is required`,
	}},
	"missing-url.bad.yml": {want: []string{
		`line 2: upstreams.prometheus.url is required`,
		`line 3: upstreams.prometheus.timeout must be positive, got -5s`,
		`line 5: upstreams.alertmanager.url: must be an absolute http:// or https:// URL`,
	}},
	"bad-url.bad.yml": {want: []string{
		`line 3: upstreams.prometheus.url: invalid URL`,
		`line 5: upstreams.alertmanager.url: invalid URL`,
	}, notWant: []string{"hunter2"}},
	"bad-upstream-headers.bad.yml": {want: []string{
		`line 5: upstreams.prometheus.headers: header "X-Scope-OrgID": invalid template`,
		`Tenant`,
		`line 6: upstreams.prometheus.headers: header "THANOS-TENANT": invalid template`,
		`line 7: upstreams.prometheus.headers: invalid header name "Bad Header"`,
		`line 9: upstreams.prometheus.headers: header "x-ok" is the same header as "X-Ok"`,
	}, notWant: []string{"line 8:"}},
	"allow-all-with-selectors.bad.yml": {want: []string{
		`line 11: policy "both": allow_all: true and selectors are mutually exclusive`,
		`line 12: policy "neither": one of allow_all: true or a non-empty selectors list is required`,
		`line 14: policy "empty": one of allow_all: true or a non-empty selectors list is required`,
	}},
	"no-authentication.bad.yml": {want: []string{
		`line 1: authentication: at least one of basic_auth_users (here or in the web configuration file), trusted_header, client_certificate, api_tokens or jwt is required`,
	}},
	"wrong-type.bad.yml": {want: []string{
		`line 4: cannot unmarshal !!int`,
		`into time.Duration`,
		`line 10: cannot unmarshal !!str`,
		`line 11: cannot unmarshal !!str`,
	}},
	"syntax.bad.yml": {want: []string{
		`yaml: line 3: mapping values are not allowed in this context`,
	}},
	"two-documents.bad.yml": {want: []string{
		`line 4: the file must hold a single YAML document`,
	}},
	"anchors.bad.yml": {want: []string{
		`line 6: upstreams.alertmanager.timeout must be positive, got -1s`,
		`line 14: policy "team-a": invalid selector "{team=a}"`,
		`line 15: policy "team-a": duplicate policy name (first defined at line 11)`,
	}},
	"bad-auth-methods.bad.yml": {want: []string{
		`line 6: client_certificate.user_from: "serial" is not one of cn, dns, email, uri`,
		`line 7: client_certificate.groups_from: "team" is not one of ou, o`,
		`line 9: api_tokens #1: user is required`,
		`line 11: api_tokens #2: sha256 must be 64 hexadecimal digits`,
		`line 12: api_tokens #3: the same token as at line 9`,
		`line 14: api_tokens #4: user " robot" has surrounding spaces`,
		`line 17: brute_force.max_failures must not be negative`,
		`line 18: brute_force.window must be positive, got 0s`,
	}, notWant: []string{"SECRET", "5e8848"}},
	"bad-jwt.bad.yml": {want: []string{
		`line 8: jwt.issuer is required`,
		`line 9: jwt.audiences: an audience must not be empty`,
		`line 8: jwt: exactly one of jwks_file and jwks_url is required`,
		`line 12: jwt.jwks_refresh_interval must be at least 1s, got 100ms`,
		`line 13: jwt.algorithms: "HS256" is not one of RS256`,
		`line 13: jwt.algorithms: "none" is not one of`,
		`line 14: jwt.leeway must be between 0s and 5m0s, got 10m0s`,
		`line 16: brute_force.max_failures must be at most 1000`,
	}},
	"bad-jwks-url.bad.yml": {want: []string{
		`line 5: jwt.audiences is required`,
		`line 7: jwt.jwks_url: must be an absolute http:// or https:// URL`,
	}, notWant: []string{"hunter2"}},
	"empty.bad.yml": {want: []string{
		`line 1: upstreams.prometheus is required`,
		`line 1: authentication: at least one of basic_auth_users (here or in the web configuration file), trusted_header, client_certificate, api_tokens or jwt is required`,
	}},
}

func TestBadFixtures(t *testing.T) {
	for name, tc := range badFixtures {
		t.Run(name, func(t *testing.T) {
			cfg, err := LoadFile(filepath.Join("testdata", name))
			if err == nil {
				t.Fatalf("loaded without error: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("got a config along with the error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, filepath.Join("testdata", name)+": ") {
				t.Errorf("error does not start with the file name:\n%s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(msg, nw) {
					t.Errorf("error must not contain %q:\n%s", nw, msg)
				}
			}
			// Every reported problem names its line.
			for _, line := range strings.Split(msg, "\n") {
				if !strings.Contains(line, "line ") {
					t.Errorf("error line without a line number: %q", line)
				}
			}
		})
	}
}

// TestFixturesCovered makes sure no fixture is left out of the tables.
func TestFixturesCovered(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		switch {
		case strings.HasSuffix(base, ".bad.yml"):
			if _, ok := badFixtures[base]; !ok {
				t.Errorf("%s is not in badFixtures", base)
			}
		case strings.HasSuffix(base, ".good.yml"):
			if _, ok := goodFixtures[base]; !ok {
				t.Errorf("%s is not in goodFixtures", base)
			}
		default:
			t.Errorf("%s is neither *.good.yml nor *.bad.yml", base)
		}
	}
	for name := range badFixtures {
		if _, err := os.Stat(filepath.Join("testdata", name)); err != nil {
			t.Errorf("fixture %s: %v", name, err)
		}
	}
}

// ruleView is a policy.Rule with its templates as text, for comparison.
type ruleView struct {
	Name      string
	Subjects  []policy.Subject
	AllowAll  bool
	Selectors []string
}

func viewRules(rules []policy.Rule) []ruleView {
	out := make([]ruleView, 0, len(rules))
	for _, r := range rules {
		v := ruleView{Name: r.Name, Subjects: r.Subjects, AllowAll: r.AllowAll}
		for _, s := range r.Selectors {
			v.Selectors = append(v.Selectors, s.String())
		}
		out = append(out, v)
	}
	return out
}

func user(name string) policy.Subject  { return policy.Subject{Kind: policy.SubjectUser, Name: name} }
func group(name string) policy.Subject { return policy.Subject{Kind: policy.SubjectGroup, Name: name} }

var everyone = policy.Subject{Kind: policy.SubjectEveryone}

var goodFixtures = map[string]func(t *testing.T, c *Config){
	"utf8-selectors.good.yml": func(t *testing.T, c *Config) {
		want := []string{
			`{"service.name"="checkout"}`,
			`{__name__=~"http\\.server\\..*", "k8s.namespace.name"="carol"}`,
			`{__name__="http.server.duration", "service.name"="cart"}`,
		}
		if len(c.Rules) != 1 || len(c.Rules[0].Selectors) != len(want) {
			t.Fatalf("rules = %+v", viewRules(c.Rules))
		}
		for i, tm := range c.Rules[0].Selectors {
			sel, err := tm.Execute("carol")
			if err != nil || sel.String() != want[i] {
				t.Errorf("selector %d = %v, %v; want %s", i, sel, err, want[i])
			}
		}
	},
	"tokens-only.good.yml": func(t *testing.T, c *Config) {
		// A policy naming a user without credentials loads; the warning
		// is TestCheckSubjects' business.
		if len(c.Rules) != 1 || len(c.Rules[0].Subjects) != 2 {
			t.Errorf("rules = %+v", viewRules(c.Rules))
		}
	},
	"spec.good.yml": func(t *testing.T, c *Config) {
		p := c.Upstreams.Prometheus
		if p.URL != "http://127.0.0.1:9090" || p.Timeout != DefaultUpstreamTimeout {
			t.Errorf("prometheus upstream = %+v", p)
		}
		if p.headerTemplates["X-Scope-OrgID"] == nil {
			t.Error("header template not compiled by Parse")
		}
		h, err := p.RenderHeaders("alice")
		if err != nil || h.Get("X-Scope-OrgID") != "alice" {
			t.Errorf("RenderHeaders(alice) = %v, %v", h, err)
		}
		am := c.Upstreams.Alertmanager
		if am == nil || am.URL != "http://127.0.0.1:9093" || am.Timeout != DefaultUpstreamTimeout {
			t.Errorf("alertmanager upstream = %+v", am)
		}
		if n := len(c.Authentication.BasicAuthUsers); n != 2 {
			t.Errorf("%d basic auth users, want 2", n)
		}
		th := c.Authentication.TrustedHeader
		if th == nil || th.Name != "X-Prometheus-Injectable" ||
			!reflect.DeepEqual(th.Prefixes, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}) {
			t.Errorf("trusted header = %+v", th)
		}
		if !reflect.DeepEqual(c.Groups, map[string][]string{"team-a": {"alice", "carol"}}) {
			t.Errorf("groups = %v", c.Groups)
		}
		want := []ruleView{
			{
				Name:      "team-a",
				Subjects:  []policy.Subject{group("team-a"), user("dave")},
				Selectors: []string{`{team="a"}`, `{__name__=~"node_.*", shared="true"}`},
			},
			{Name: "admins", Subjects: []policy.Subject{user("root")}, AllowAll: true},
		}
		if got := viewRules(c.Rules); !reflect.DeepEqual(got, want) {
			t.Errorf("rules:\n got %+v\nwant %+v", got, want)
		}

		// The rules resolve as the spec describes.
		set := policy.NewSet(c.Rules, c.Groups)
		pol, err := set.For(identityOf("carol"))
		if err != nil || pol.AllowAll || len(pol.Selectors) != 2 {
			t.Errorf("carol: %+v, %v", pol, err)
		}
		pol, err = set.For(identityOf("root"))
		if err != nil || !pol.AllowAll {
			t.Errorf("root: %+v, %v", pol, err)
		}
		if _, err := set.For(identityOf("bob")); err != policy.ErrNoPolicy {
			t.Errorf("bob: %v, want ErrNoPolicy", err)
		}
	},
	"basic-only.good.yml": func(t *testing.T, c *Config) {
		if got := c.Upstreams.Prometheus.Timeout; got != 30*time.Second {
			t.Errorf("timeout = %v", got)
		}
		if c.Upstreams.Alertmanager != nil {
			t.Errorf("alertmanager = %+v, want nil", c.Upstreams.Alertmanager)
		}
		if c.Authentication.TrustedHeader != nil {
			t.Errorf("trusted header = %+v, want nil", c.Authentication.TrustedHeader)
		}
		if c.Authentication.BruteForce != (BruteForce{MaxFailures: DefaultMaxFailures, Window: DefaultFailureWindow}) {
			t.Errorf("brute_force defaults = %+v", c.Authentication.BruteForce)
		}
		want := []ruleView{
			{Name: "own-namespace", Subjects: []policy.Subject{everyone}, Selectors: []string{`{namespace="{{ .User }}"}`}},
			{Name: "bob-admin", Subjects: []policy.Subject{user("bob")}, AllowAll: true},
		}
		if got := viewRules(c.Rules); !reflect.DeepEqual(got, want) {
			t.Errorf("rules:\n got %+v\nwant %+v", got, want)
		}
		if !c.Rules[0].Selectors[0].Templated() {
			t.Errorf("own-namespace selector not templated")
		}
	},
	"anchors.good.yml": func(t *testing.T, c *Config) {
		am := c.Upstreams.Alertmanager
		if am.URL != "http://127.0.0.1:9093" || am.Timeout != time.Minute {
			t.Errorf("alertmanager = %+v, want merged timeout and own URL", am)
		}
		if !reflect.DeepEqual(c.Groups, map[string][]string{"team-a": {"alice"}, "team-b": {"alice"}}) {
			t.Errorf("groups = %v", c.Groups)
		}
		want := []ruleView{
			{Name: "team-a", Subjects: []policy.Subject{group("team-a")}, Selectors: []string{`{team="a"}`}},
			{Name: "team-b", Subjects: []policy.Subject{group("team-b")}, Selectors: []string{`{team="a"}`}},
		}
		if got := viewRules(c.Rules); !reflect.DeepEqual(got, want) {
			t.Errorf("rules:\n got %+v\nwant %+v", got, want)
		}
	},
	"auth-methods.good.yml": func(t *testing.T, c *Config) {
		a := c.Authentication
		if a.ClientCertificate == nil || *a.ClientCertificate != (ClientCertificate{UserFrom: CertEmail, GroupsFrom: CertO}) {
			t.Errorf("client_certificate = %+v", a.ClientCertificate)
		}
		if len(a.APITokens) != 2 || a.APITokens[0].User != "ci-robot" ||
			fmt.Sprintf("%x", a.APITokens[0].Hash) != "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" {
			t.Errorf("api_tokens = %+v", a.APITokens)
		}
		j := a.JWT
		want := &JWT{
			Issuer: "https://idp.example/realms/monitoring", Audiences: []string{"promgate", "grafana"},
			JWKSFile:            filepath.Join("testdata", "keys", "jwks.json"),
			JWKSRefreshInterval: DefaultJWKSRefreshInterval,
			UserClaim:           "sub", GroupsClaim: "groups",
			Algorithms: jwt.Algorithms, Leeway: DefaultJWTLeeway,
		}
		if !reflect.DeepEqual(j, want) {
			t.Errorf("jwt =\n%+v, want\n%+v", j, want)
		}
		if a.BruteForce != (BruteForce{MaxFailures: 0, Window: DefaultFailureWindow}) {
			t.Errorf("brute_force = %+v: an explicit 0 disables", a.BruteForce)
		}
		if !reflect.DeepEqual(c.Files(), []string{want.JWKSFile}) {
			t.Errorf("files = %v", c.Files())
		}
	},
	"jwt-url.good.yml": func(t *testing.T, c *Config) {
		j := c.Authentication.JWT
		if j.JWKSURL != "https://idp.example/protocol/openid-connect/certs?realm=x" || j.JWKSRefreshInterval != time.Minute ||
			j.UserClaim != "preferred_username" || !reflect.DeepEqual(j.Algorithms, []string{"RS256"}) || j.Leeway != 0 {
			t.Errorf("jwt = %+v (an explicit leeway of 0s stays 0)", j)
		}
		if c.Authentication.BruteForce != (BruteForce{MaxFailures: DefaultMaxFailures, Window: 10 * time.Minute}) {
			t.Errorf("brute_force = %+v", c.Authentication.BruteForce)
		}
		if c.Files() != nil {
			t.Errorf("files = %v", c.Files())
		}
	},
	"header-only.good.yml": func(t *testing.T, c *Config) {
		th := c.Authentication.TrustedHeader
		want := []netip.Prefix{
			netip.MustParsePrefix("127.0.0.1/32"),
			netip.MustParsePrefix("::1/128"),
			netip.MustParsePrefix("10.0.0.0/8"),
		}
		if !reflect.DeepEqual(th.Prefixes, want) {
			t.Errorf("prefixes = %v, want %v", th.Prefixes, want)
		}
		if len(c.Rules) != 1 || c.Rules[0].Subjects[0] != user("dave") {
			t.Errorf("rules = %+v", viewRules(c.Rules))
		}
	},
}

func TestGoodFixtures(t *testing.T) {
	for name, check := range goodFixtures {
		t.Run(name, func(t *testing.T) {
			cfg, err := LoadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			check(t, cfg)
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	if _, err := LoadFile(filepath.Join("testdata", "does-not-exist.yml")); !os.IsNotExist(err) {
		t.Errorf("err = %v, want not exist", err)
	}
}

func TestRenderHeadersRefusesControlCharacters(t *testing.T) {
	u := &Upstream{Headers: map[string]string{"X-Scope-OrgID": "{{ .User }}"}}
	if _, err := u.RenderHeaders("evil\r\nX-Injected: 1"); err == nil {
		t.Error("a user name with CR LF was rendered into a header")
	}
	h, err := u.RenderHeaders("ok")
	if err != nil || h.Get("X-Scope-OrgID") != "ok" {
		t.Errorf("RenderHeaders(ok) = %v, %v", h, err)
	}
}

func TestParseSource(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":     "127.0.0.1/32",
		"::1":           "::1/128",
		"10.1.2.3/8":    "10.0.0.0/8",
		" 192.0.2.0/24": "192.0.2.0/24",
		"2001:db8::/32": "2001:db8::/32",
	} {
		p, err := parseSource(in)
		if err != nil || p.String() != want {
			t.Errorf("parseSource(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "10.0.0.0/33", "host.example", "fe80::1%eth0", "1.2.3.4/"} {
		if p, err := parseSource(in); err == nil {
			t.Errorf("parseSource(%q) = %v, want error", in, p)
		}
	}
}

// TestWebUsers: the users of the web configuration file join those of
// promgate.yml; a name in both is an error at the promgate.yml line; policy
// subjects may name web users.
func TestWebUsers(t *testing.T) {
	const hash = "$2y$10$CLeidEsEtvvnEm4b3lmxoOVi2QlArzONjPlxQr1HYrXBOGCON0CF2"
	doc := func(users string) []byte {
		return []byte(`upstreams:
  prometheus:
    url: http://127.0.0.1:9090
authentication:
  basic_auth_users:
` + users + `
policies:
  - name: p
    subjects: ["user:alice", "user:erin"]
    selectors: ['{team="a"}']
`)
	}
	web := WebUsers{File: "web.yml", Users: map[string]string{"erin": hash}}

	cfg, err := ParseWeb(doc("    alice: "+hash), web)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Users(); len(got) != 2 || got["alice"] != hash || got["erin"] != hash {
		t.Errorf("Users() = %v", got)
	}
	// Without the web users, erin has no credentials: a warning.
	cfg, err = Parse(doc("    alice: " + hash))
	if err != nil {
		t.Fatal(err)
	}
	if warns, err := cfg.CheckSubjects(testMethods(cfg)); err != nil || len(warns) != 1 || !strings.Contains(warns[0], `user "erin" has no credentials`) {
		t.Errorf("without the web users: %q, %v", warns, err)
	}
	_, err = ParseWeb(doc("    alice: "+hash+"\n    erin: "+hash), web)
	if err == nil || !strings.Contains(err.Error(), `line 7: basic_auth_users: user "erin" is also defined in web.yml; define each user once`) {
		t.Errorf("duplicate: %v", err)
	}
	// Web users alone are enough authentication.
	if _, err := ParseWeb([]byte("upstreams: {prometheus: {url: http://p:9090}}\npolicies: [{name: p, subjects: ['user:erin'], allow_all: true}]\n"), web); err != nil {
		t.Errorf("web users only: %v", err)
	}
}

func TestUpstreamFeatures(t *testing.T) {
	c, err := Parse([]byte(`upstreams:
  prometheus:
    url: http://127.0.0.1:9090
    features: [promql-experimental-functions, promql-delayed-name-removal, exemplar-storage]
authentication:
  basic_auth_users:
    alice: $2y$10$EYxs8IOG46m9CtpB/XlPxO1ei7E4BjAen0SUv6di7mD4keR/8JO6m
policies:
  - name: a
    subjects: ["user:alice"]
    selectors: ['{team="a"}']
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"promql-experimental-functions", "promql-delayed-name-removal", "exemplar-storage"}
	if got := c.Upstreams.Prometheus.Features; !slices.Equal(got, want) {
		t.Errorf("features = %q, want %q", got, want)
	}
}
