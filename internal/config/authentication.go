package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/auth/jwt"
)

// Validation of the authentication section.

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
