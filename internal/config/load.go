package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/auth/jwt"
	"github.com/promgate/promgate/internal/policy"
)

// DefaultUpstreamTimeout bounds an upstream call when the file sets no timeout.
const DefaultUpstreamTimeout = 2 * time.Minute

// LoadFile reads and validates the configuration file at path. See Parse.
func LoadFile(path string) (*Config, error) { return LoadFileWeb(path, WebUsers{}) }

// WebUsers are the basic_auth_users of the web configuration file, which
// join those of promgate.yml.
type WebUsers struct {
	// File names the web configuration file in errors.
	File  string
	Users map[string]string
}

// LoadFileWeb is LoadFile with the users of the web configuration file.
// Relative paths in the file are resolved against its directory.
func LoadFileWeb(path string, web WebUsers) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseWeb(data, web)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.setDirectory(filepath.Dir(path))
	return cfg, nil
}

// setDirectory makes relative file paths relative to dir, as Prometheus
// does for the files its configuration names.
func (c *Config) setDirectory(dir string) {
	if j := c.Authentication.JWT; j != nil && j.JWKSFile != "" && !filepath.IsAbs(j.JWKSFile) {
		j.JWKSFile = filepath.Join(dir, j.JWKSFile)
	}
}

// Files lists the files the configuration refers to, whose changes a
// reload must pick up.
func (c *Config) Files() []string {
	if j := c.Authentication.JWT; j != nil && j.JWKSFile != "" {
		return []string{j.JWKSFile}
	}
	return nil
}

// Parse decodes and validates a configuration. See ParseWeb.
func Parse(data []byte) (*Config, error) { return ParseWeb(data, WebUsers{}) }

// ParseWeb decodes and validates a configuration whose users are joined by
// those of the web configuration file; a user in both is an error.
//
// It works in two passes, like Prometheus' loader. The first decodes the
// YAML strictly: syntax errors, unknown fields, duplicate keys and values of
// the wrong type are all reported together, and nothing else is checked,
// since a document that did not decode cleanly would only produce confusing
// follow-up errors. The second checks what the values mean (URLs, hashes,
// sources, subjects, selectors) and reports every problem at once, each
// prefixed with the line of the offending YAML node.
//
// On success the defaults are filled in, TrustedHeader.Prefixes is set and
// Rules holds the compiled policies in file order.
func ParseWeb(data []byte, web WebUsers) (*Config, error) {
	// The node tree gives the line numbers of the semantic pass.
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, fmt.Errorf("line %d: the file must hold a single YAML document", extra.Line)
	case !errors.Is(err, io.EOF):
		return nil, yamlError(err)
	}

	cfg := &Config{}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}

	if web.File == "" {
		web.File = "the web configuration file"
	}
	v := &validator{web: web}
	v.config(cfg, documentRoot(&root))
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	if len(web.Users) > 0 {
		cfg.WebUsers = web.Users
	}
	return cfg, nil
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type \S+\.(\S+)$`)
	duplicateKeyRE = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
)

// yamlError rewrites the decoder's messages into the loader's style: one
// error per problem, each starting with its line.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// Syntax errors already read "yaml: line N: ...".
		return err
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("line %s: unknown field %q in %s", m[1], m[2], m[3])
		} else if m := duplicateKeyRE.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("line %s: duplicate key %s (already defined at line %s)", m[1], m[2], m[3])
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// validator collects every semantic error of a configuration.
type validator struct {
	web  WebUsers
	errs []error
}

func (v *validator) errorf(line int, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	v.errs = append(v.errs, fmt.Errorf("line %d: "+format, append([]any{line}, args...)...))
}

func (v *validator) config(cfg *Config, root *yaml.Node) {
	upsKey, ups := entry(root, "upstreams")
	promKey, prom := entry(ups, "prometheus")
	if cfg.Upstreams.Prometheus == nil {
		v.errorf(lineOf(promKey, upsKey, root), "upstreams.prometheus is required")
	} else {
		v.upstream("upstreams.prometheus", cfg.Upstreams.Prometheus, promKey, prom)
	}
	if cfg.Upstreams.Alertmanager != nil {
		amKey, am := entry(ups, "alertmanager")
		v.upstream("upstreams.alertmanager", cfg.Upstreams.Alertmanager, amKey, am)
	}

	authKey, auth := entry(root, "authentication")
	v.authentication(&cfg.Authentication, authKey, auth, root)
	v.groups(cfg.Groups, field(root, "groups"))
	v.policies(cfg, field(root, "policies"))
}

func (v *validator) upstream(where string, u *Upstream, key, n *yaml.Node) {
	urlNode := field(n, "url")
	switch {
	case u.URL == "":
		v.errorf(lineOf(urlNode, key, n), "%s.url is required", where)
	default:
		if err := checkURL(u.URL); err != nil {
			v.errorf(lineOf(urlNode, key, n), "%s.url: %v", where, err)
		}
	}

	isAM := strings.HasSuffix(where, "alertmanager")
	switch r := field(n, "receivers"); {
	case r == nil:
		if isAM {
			u.Receivers = "routed"
		}
	case !isAM:
		v.errorf(lineOf(r, key, n), "%s.receivers applies to the alertmanager upstream only", where)
	case u.Receivers != "routed" && u.Receivers != "all" && u.Receivers != "none":
		v.errorf(lineOf(r, key, n), "%s.receivers: %q is not one of routed, all, none", where, u.Receivers)
	}
	if p := field(n, "alerts_by_name_prefix"); p != nil && isAM {
		v.errorf(lineOf(p, key, n), "%s.alerts_by_name_prefix applies to the prometheus upstream only", where)
	}

	timeoutNode := field(n, "timeout")
	switch {
	case u.Timeout == 0:
		u.Timeout = DefaultUpstreamTimeout
	case u.Timeout < 0:
		v.errorf(lineOf(timeoutNode, key, n), "%s.timeout must be positive, got %s", where, u.Timeout)
	}

	headers := field(n, "headers")
	seen := map[string]string{} // canonical name -> name as written
	for _, p := range pairs(headers) {
		name := p.key.Value
		line := lineOf(p.key, headers)
		if !validHeaderName(name) {
			v.errorf(line, "%s.headers: invalid header name %q", where, name)
			continue
		}
		canonical := http.CanonicalHeaderKey(name)
		if first, dup := seen[canonical]; dup {
			v.errorf(line, "%s.headers: header %q is the same header as %q", where, name, first)
			continue
		}
		seen[canonical] = name
		t, err := checkHeaderValue(u.Headers[name])
		if err != nil {
			v.errorf(line, "%s.headers: header %q: %v", where, name, err)
			continue
		}
		if t != nil {
			if u.headerTemplates == nil {
				u.headerTemplates = map[string]*template.Template{}
			}
			u.headerTemplates[name] = t
		}
	}
}

// checkURL accepts an absolute http or https URL. The URL itself is not
// repeated in the message because it may hold a password.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an absolute http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("must have a host")
	}
	if u.Fragment != "" || u.RawQuery != "" {
		return errors.New("must not have a query or fragment")
	}
	return nil
}

// headerData is what an upstream header template can refer to; it matches
// what selector templates see.
type headerData struct {
	User string
}

// sampleUser is the identity templates are executed with at load time, so
// that references to unknown fields fail here rather than on a request.
const sampleUser = "sample-user"

// checkHeaderValue validates an upstream header value and returns its
// template, or nil for a literal value.
func checkHeaderValue(value string) (*template.Template, error) {
	if !strings.Contains(value, "{{") {
		if !validHeaderValue(value) {
			return nil, errors.New("value contains control characters")
		}
		return nil, nil
	}
	t, err := parseHeaderTemplate(value)
	if err != nil {
		return nil, fmt.Errorf("invalid template: %v", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, headerData{User: sampleUser}); err != nil {
		return nil, fmt.Errorf("invalid template: %v", err)
	}
	if !validHeaderValue(buf.String()) {
		return nil, errors.New("template produces control characters")
	}
	return t, nil
}

func parseHeaderTemplate(value string) (*template.Template, error) {
	return template.New("header").Option("missingkey=error").Parse(value)
}

// RenderHeaders returns the upstream's headers for user, with templates
// such as {{ .User }} executed. The result is fresh on every call. It is
// safe for concurrent use.
func (u *Upstream) RenderHeaders(user string) (http.Header, error) {
	h := make(http.Header, len(u.Headers))
	var buf bytes.Buffer
	for name, value := range u.Headers {
		if strings.Contains(value, "{{") {
			t := u.headerTemplates[name]
			if t == nil {
				// An Upstream built in code rather than by Parse.
				var err error
				if t, err = parseHeaderTemplate(value); err != nil {
					return nil, fmt.Errorf("header %q: %w", name, err)
				}
			}
			buf.Reset()
			if err := t.Execute(&buf, headerData{User: user}); err != nil {
				return nil, fmt.Errorf("header %q: %w", name, err)
			}
			value = buf.String()
		}
		// A user name is not trusted to be a valid header value: refuse
		// rather than let it split or corrupt the upstream request.
		if !validHeaderValue(value) {
			return nil, fmt.Errorf("header %q: value for user contains control characters", name)
		}
		h.Set(name, value)
	}
	return h, nil
}

func (v *validator) authentication(a *Authentication, key, n, root *yaml.Node) {
	if len(a.BasicAuthUsers) == 0 && len(v.web.Users) == 0 && a.TrustedHeader == nil &&
		a.ClientCertificate == nil && len(a.APITokens) == 0 && a.JWT == nil {
		v.errorf(lineOf(key, root), "authentication: at least one of basic_auth_users (here or in the web configuration file), trusted_header, client_certificate, api_tokens or jwt is required")
	}

	users := field(n, "basic_auth_users")
	for _, p := range pairs(users) {
		name := p.key.Value
		line := lineOf(p.key, users)
		switch {
		case name == "":
			v.errorf(line, "basic_auth_users: user name must not be empty")
			continue
		case strings.ContainsRune(name, ':'):
			// Basic auth splits user and password at the first colon.
			v.errorf(line, "basic_auth_users: user name %q must not contain ':'", name)
			continue
		case !plainName(name):
			// The authenticator refuses such names from every method.
			v.errorf(line, "basic_auth_users: user name %q holds control characters or invalid UTF-8", name)
			continue
		}
		if _, dup := v.web.Users[name]; dup {
			// One set of users: two hashes for one name would make the
			// password that works depend on which file wins.
			v.errorf(line, "basic_auth_users: user %q is also defined in %s; define each user once", name, v.web.File)
		}
		// The hash is never printed: it is a secret of its own (offline
		// guessing), and the error may end up in logs.
		hash := a.BasicAuthUsers[name]
		if _, err := bcrypt.Cost([]byte(hash)); err != nil || len(hash) != bcryptHashLen {
			v.errorf(line, "basic_auth_users: user %q: password is not a valid bcrypt hash", name)
		}
	}

	v.trustedHeader(a, n)
	v.clientCertificate(a, n)
	v.apiTokens(a, n)
	v.jwt(a, n)
	v.bruteForce(a, n)
}

func (v *validator) trustedHeader(a *Authentication, n *yaml.Node) {
	th := a.TrustedHeader
	if th == nil {
		return
	}
	tk, tn := entry(n, "trusted_header")
	nameNode := field(tn, "name")
	switch {
	case th.Name == "":
		v.errorf(lineOf(nameNode, tk), "trusted_header.name is required")
	case !validHeaderName(th.Name):
		v.errorf(lineOf(nameNode, tk), "trusted_header.name: invalid header name %q", th.Name)
	case strings.EqualFold(th.Name, "Authorization"):
		v.errorf(lineOf(nameNode, tk), "trusted_header.name must not be Authorization")
	}

	srcNode := field(tn, "trusted_sources")
	if len(th.TrustedSources) == 0 {
		v.errorf(lineOf(srcNode, tk), "trusted_header.trusted_sources is required: the identity header must only be accepted from the proxy that sets it")
		return
	}
	items := sequence(srcNode, len(th.TrustedSources))
	th.Prefixes = make([]netip.Prefix, 0, len(th.TrustedSources))
	for i, s := range th.TrustedSources {
		p, err := parseSource(s)
		if err != nil {
			v.errorf(lineOf(items[i], srcNode), "trusted_header.trusted_sources: %v", err)
			continue
		}
		th.Prefixes = append(th.Prefixes, p)
	}
}

func (v *validator) clientCertificate(a *Authentication, n *yaml.Node) {
	cc := a.ClientCertificate
	if cc == nil {
		return
	}
	ck, cn := entry(n, "client_certificate")
	switch cc.UserFrom {
	case "":
		cc.UserFrom = CertCN
	case CertCN, CertDNS, CertEmail, CertURI:
	default:
		v.errorf(lineOf(field(cn, "user_from"), ck), "client_certificate.user_from: %q is not one of cn, dns, email, uri", cc.UserFrom)
	}
	switch cc.GroupsFrom {
	case "", CertOU, CertO:
	default:
		v.errorf(lineOf(field(cn, "groups_from"), ck), "client_certificate.groups_from: %q is not one of ou, o", cc.GroupsFrom)
	}
}

func (v *validator) apiTokens(a *Authentication, n *yaml.Node) {
	list := field(n, "api_tokens")
	items := sequence(list, len(a.APITokens))
	seen := map[[32]byte]int{} // hash -> line
	for i := range a.APITokens {
		t := &a.APITokens[i]
		line := lineOf(items[i], list)
		switch {
		case t.User == "":
			v.errorf(lineOf(field(items[i], "user"), items[i], list), "api_tokens #%d: user is required", i+1)
		case strings.TrimSpace(t.User) != t.User || !validHeaderValue(t.User):
			v.errorf(lineOf(field(items[i], "user"), items[i], list), "api_tokens #%d: user %q has surrounding spaces or control characters", i+1, t.User)
		}
		// Neither the hash nor the token is printed.
		raw, err := hex.DecodeString(t.SHA256)
		if err != nil || len(raw) != sha256.Size {
			v.errorf(lineOf(field(items[i], "sha256"), items[i], list), "api_tokens #%d: sha256 must be 64 hexadecimal digits (promgate hash-token)", i+1)
			continue
		}
		copy(t.Hash[:], raw)
		if first, dup := seen[t.Hash]; dup {
			v.errorf(line, "api_tokens #%d: the same token as at line %d", i+1, first)
			continue
		}
		seen[t.Hash] = line
	}
}

func (v *validator) jwt(a *Authentication, n *yaml.Node) {
	j := a.JWT
	if j == nil {
		return
	}
	jk, jn := entry(n, "jwt")
	at := func(name string) int { return lineOf(field(jn, name), jk) }
	if j.Issuer == "" {
		v.errorf(at("issuer"), "jwt.issuer is required")
	}
	if len(j.Audiences) == 0 {
		// Without an audience, a token the provider issued to any other
		// application would be accepted.
		v.errorf(at("audiences"), "jwt.audiences is required: the tokens' aud must name promgate (or the client that forwards them)")
	}
	for _, aud := range j.Audiences {
		if aud == "" {
			v.errorf(at("audiences"), "jwt.audiences: an audience must not be empty")
		}
	}
	switch {
	case (j.JWKSFile == "") == (j.JWKSURL == ""):
		v.errorf(lineOf(jk), "jwt: exactly one of jwks_file and jwks_url is required")
	case j.JWKSURL != "":
		if err := checkJWKSURL(j.JWKSURL); err != nil {
			v.errorf(at("jwks_url"), "jwt.jwks_url: %v", err)
		}
	}
	switch {
	case field(jn, "jwks_refresh_interval") == nil:
		j.JWKSRefreshInterval = DefaultJWKSRefreshInterval
	case j.JWKSRefreshInterval < time.Second:
		v.errorf(at("jwks_refresh_interval"), "jwt.jwks_refresh_interval must be at least 1s, got %s", j.JWKSRefreshInterval)
	}
	if j.UserClaim == "" {
		j.UserClaim = "sub"
	}
	for _, alg := range j.Algorithms {
		if !jwt.Supported(alg) {
			v.errorf(at("algorithms"), "jwt.algorithms: %q is not one of %s", alg, strings.Join(jwt.Algorithms, ", "))
		}
	}
	if len(j.Algorithms) == 0 {
		j.Algorithms = append([]string(nil), jwt.Algorithms...)
	}
	switch {
	case field(jn, "leeway") == nil:
		j.Leeway = DefaultJWTLeeway
	case j.Leeway < 0 || j.Leeway > MaxJWTLeeway:
		v.errorf(at("leeway"), "jwt.leeway must be between 0s and %s, got %s", MaxJWTLeeway, j.Leeway)
	}
}

// checkJWKSURL is checkURL, but a query is allowed.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("invalid URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http:// or https:// URL")
	}
	if u.User != nil || u.Fragment != "" {
		return errors.New("must have neither credentials nor a fragment")
	}
	return nil
}

func (v *validator) bruteForce(a *Authentication, n *yaml.Node) {
	bk, bn := entry(n, "brute_force")
	bf := &a.BruteForce
	switch {
	case field(bn, "max_failures") == nil:
		bf.MaxFailures = DefaultMaxFailures
	case bf.MaxFailures < 0:
		v.errorf(lineOf(field(bn, "max_failures"), bk), "brute_force.max_failures must not be negative (0 disables the limit)")
	case bf.MaxFailures > maxFailuresLimit:
		v.errorf(lineOf(field(bn, "max_failures"), bk), "brute_force.max_failures must be at most %d", maxFailuresLimit)
	}
	switch {
	case field(bn, "window") == nil:
		bf.Window = DefaultFailureWindow
	case bf.Window <= 0:
		v.errorf(lineOf(field(bn, "window"), bk), "brute_force.window must be positive, got %s", bf.Window)
	}
}

// maxFailuresLimit bounds the failures remembered per address or user.
const maxFailuresLimit = 1000

// bcryptHashLen is the length of every bcrypt hash ("$2y$10$" + 53 chars).
const bcryptHashLen = 60

// parseSource parses an IP address or a CIDR prefix. A bare address is a
// prefix of one address; host bits of a prefix are masked off.
func parseSource(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		return p.Masked(), nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil || addr.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid IP address or CIDR %q", s)
	}
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

func (v *validator) groups(groups map[string][]string, n *yaml.Node) {
	for _, p := range pairs(n) {
		name := p.key.Value
		line := lineOf(p.key, n)
		if name == "" {
			v.errorf(line, "groups: group name must not be empty")
		}
		members := groups[name]
		items := sequence(p.value, len(members))
		for i, m := range members {
			if strings.TrimSpace(m) == "" {
				v.errorf(lineOf(items[i], p.value), "group %q: member name must not be empty", name)
			}
		}
	}
}

func (v *validator) policies(cfg *Config, n *yaml.Node) {
	auth := cfg.Authentication
	openUsers := auth.TrustedHeader != nil || auth.ClientCertificate != nil || auth.JWT != nil
	openGroups := (auth.ClientCertificate != nil && auth.ClientCertificate.GroupsFrom != "") ||
		(auth.JWT != nil && auth.JWT.GroupsClaim != "")
	knownUsers := map[string]bool{}
	for u := range auth.BasicAuthUsers {
		knownUsers[u] = true
	}
	for u := range v.web.Users {
		knownUsers[u] = true
	}
	for _, t := range auth.APITokens {
		knownUsers[t.User] = true
	}
	items := sequence(n, len(cfg.Policies))
	seen := map[string]int{} // name -> line of first definition
	for i, p := range cfg.Policies {
		pn := items[i]
		line := lineOf(pn, n)
		name := p.Name
		ok := true
		switch {
		case name == "":
			v.errorf(line, "policy #%d: name is required", i+1)
			name = fmt.Sprintf("#%d", i+1)
			ok = false
		default:
			// The policy's own line, not the name's: with a merge key
			// (<<: *other) the name node belongs to another policy.
			if first, dup := seen[name]; dup {
				v.errorf(line, "policy %q: duplicate policy name (first defined at line %d)", name, first)
				ok = false
			} else {
				seen[name] = line
			}
		}

		rule := policy.Rule{Name: p.Name, AllowAll: p.AllowAll}

		subjKey, subjNode := entry(pn, "subjects")
		if len(p.Subjects) == 0 {
			v.errorf(lineOf(subjKey, pn, n), "policy %q: subjects is required", name)
			ok = false
		}
		subjItems := sequence(subjNode, len(p.Subjects))
		for j, s := range p.Subjects {
			sl := lineOf(subjItems[j], subjNode)
			sub, err := policy.ParseSubject(s)
			if err != nil {
				v.errorf(sl, "policy %q: %v", name, err)
				ok = false
				continue
			}
			switch sub.Kind {
			case policy.SubjectGroup:
				// Certificates and JWTs may assert groups of their own;
				// otherwise a group must be defined here.
				if _, defined := cfg.Groups[sub.Name]; !defined && !openGroups {
					v.errorf(sl, "policy %q: subject %q: group %q is not defined under groups", name, s, sub.Name)
					ok = false
				}
			case policy.SubjectUser:
				// With a trusted header, certificates or JWTs any name can
				// arrive, so only basic users and API tokens are a closed
				// set of users.
				if !openUsers && !knownUsers[sub.Name] {
					v.errorf(sl, "policy %q: subject %q: user %q is not in basic_auth_users or api_tokens", name, s, sub.Name)
					ok = false
				}
			}
			rule.Subjects = append(rule.Subjects, sub)
		}

		selKey, selNode := entry(pn, "selectors")
		switch {
		case p.AllowAll && len(p.Selectors) > 0:
			v.errorf(lineOf(selKey, pn, n), "policy %q: allow_all: true and selectors are mutually exclusive", name)
			ok = false
		case !p.AllowAll && len(p.Selectors) == 0:
			v.errorf(line, "policy %q: one of allow_all: true or a non-empty selectors list is required", name)
			ok = false
		}
		selItems := sequence(selNode, len(p.Selectors))
		for j, s := range p.Selectors {
			t, err := policy.ParseTemplate(s)
			if err != nil {
				v.errorf(lineOf(selItems[j], selNode), "policy %q: %v", name, err)
				ok = false
				continue
			}
			rule.Selectors = append(rule.Selectors, t)
		}
		if ok {
			cfg.Rules = append(cfg.Rules, rule)
		}
	}
}

// Header syntax, as in RFC 9110 and golang.org/x/net/http/httpguts.

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// plainName reports whether s is valid UTF-8 without control characters,
// as the authenticator requires of every user and group name.
func plainName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// YAML node helpers. They tolerate absent nodes (nil) so that a missing
// field is reported at the line of its parent.

// documentRoot returns the top mapping of a parsed document, or nil.
func documentRoot(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return resolve(n.Content[0])
	}
	return nil
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

type pair struct{ key, value *yaml.Node }

// pairs lists the entries of a mapping in file order, expanding merge keys
// (<<) the way the decoder does: explicit keys win over merged ones.
func pairs(n *yaml.Node) []pair {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var merged, own []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], resolve(n.Content[i+1])
		if k.Tag == "!!merge" {
			if val != nil && val.Kind == yaml.SequenceNode {
				for _, m := range val.Content {
					merged = append(merged, pairs(m)...)
				}
			} else {
				merged = append(merged, pairs(val)...)
			}
			continue
		}
		own = append(own, pair{k, val})
	}
	if len(merged) == 0 {
		return own
	}
	out := own
	for _, m := range merged {
		shadowed := false
		for _, o := range own {
			if o.key.Value == m.key.Value {
				shadowed = true
				break
			}
		}
		if !shadowed {
			out = append(out, m)
		}
	}
	return out
}

// field returns the value node of key in mapping n, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	_, v := entry(n, key)
	return v
}

// entry returns the key and value nodes of key in mapping n, or nils.
func entry(n *yaml.Node, key string) (k, v *yaml.Node) {
	for _, p := range pairs(n) {
		if p.key.Value == key {
			return p.key, p.value
		}
	}
	return nil, nil
}

// sequence returns the items of sequence n, always with length want so that
// they can be indexed alongside the decoded slice; items it cannot match
// are nil and fall back to the sequence's line.
func sequence(n *yaml.Node, want int) []*yaml.Node {
	out := make([]*yaml.Node, want)
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) != want {
		return out
	}
	for i, c := range n.Content {
		out[i] = resolve(c)
	}
	return out
}

// lineOf returns the line of n, or of the first non-nil fallback.
func lineOf(n *yaml.Node, fallback ...*yaml.Node) int {
	if n != nil {
		return n.Line
	}
	for _, f := range fallback {
		if f != nil {
			return f.Line
		}
	}
	return 1
}
