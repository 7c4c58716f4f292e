package config

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// How promgate connects and authenticates to an upstream: the keys of
// Prometheus' http_client_config (package github.com/prometheus/common/
// config), written directly under the upstream as in a scrape config.
// promgate's one HTTP/1.1 client implements what a gateway needs of them;
// the rest is refused at load rather than ignored.

// grantClientCredentials is the oauth2 grant promgate fetches tokens
// with.
const grantClientCredentials = "client_credentials"

// httpClient validates the http_client_config keys of an upstream.
func (v *validator) httpClient(where string, u *Upstream, key, n *yaml.Node) {
	hc := &u.HTTPClient
	at := func(names ...string) int {
		nodes := []*yaml.Node{}
		parent := n
		for _, name := range names {
			k, val := entry(parent, name)
			if k == nil {
				break
			}
			nodes = append([]*yaml.Node{k}, nodes...)
			parent = val
		}
		return lineOf(nil, append(nodes, key, n)...)
	}
	// Validate also turns the deprecated bearer_token keys into
	// authorization, as Prometheus does.
	if err := hc.Validate(); err != nil {
		v.errorf(at(), "%s: %v", where, err)
	}
	if hc.EnableHTTP2 {
		v.errorf(at("enable_http2"), "%s.enable_http2: promgate speaks HTTP/1.1 to its upstreams (keep-alive connections); remove enable_http2 or set it to false", where)
	}
	if hc.FollowRedirects {
		v.errorf(at("follow_redirects"), "%s.follow_redirects: promgate passes the upstream's redirects to the client, under its own path; remove follow_redirects or set it to false", where)
	}
	if p := hc.ProxyURL.URL; p != nil && p.Scheme != "http" {
		v.errorf(at("proxy_url"), "%s.proxy_url: promgate reaches proxies over http:// only (a CONNECT tunnel), not %s://", where, p.Scheme)
	}
	if hc.HTTPHeaders != nil {
		v.errorf(at("http_headers"), "%s.http_headers: use %s.headers", where, where)
	}

	refs := map[string]string{}
	if b := hc.BasicAuth; b != nil {
		refs["basic_auth.username_ref"] = b.UsernameRef
		refs["basic_auth.password_ref"] = b.PasswordRef
	}
	if a := hc.Authorization; a != nil {
		refs["authorization.credentials_ref"] = a.CredentialsRef
	}
	t := &hc.TLSConfig
	refs["tls_config.ca_ref"], refs["tls_config.cert_ref"], refs["tls_config.key_ref"] = t.CARef, t.CertRef, t.KeyRef
	if o := hc.OAuth2; o != nil {
		refs["oauth2.client_secret_ref"] = o.ClientSecretRef
		refs["oauth2.client_certificate_key_ref"] = o.ClientCertificateKeyRef
		refs["oauth2.tls_config.ca_ref"] = o.TLSConfig.CARef
		refs["oauth2.tls_config.cert_ref"] = o.TLSConfig.CertRef
		refs["oauth2.tls_config.key_ref"] = o.TLSConfig.KeyRef
		switch o.GrantType {
		case "", grantClientCredentials:
		default:
			v.errorf(at("oauth2", "grant_type"), "%s.oauth2.grant_type: promgate fetches tokens with %s only, not %q", where, grantClientCredentials, o.GrantType)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		if refs[name] != "" {
			path := strings.Split(name, ".")
			v.errorf(at(path...), "%s.%s: promgate has no secret manager; give the secret inline or in a file", where, name)
		}
	}

	// Every server of the upstream is reached with the same client
	// settings, so each URL is checked against them.
	urls := u.URLs
	if len(urls) == 0 {
		urls = []string{u.URL}
	}
	var withUser bool
	for _, raw := range urls {
		parsed, err := url.Parse(raw)
		if err != nil {
			continue // reported with the URL
		}
		if parsed.Scheme == "http" && t.CA+t.CAFile+t.Cert+t.CertFile+string(t.Key)+t.KeyFile+t.ServerName != "" {
			v.errorf(at("tls_config"), "%s.tls_config applies to an https:// URL", where)
			break
		}
		withUser = withUser || parsed.User != nil
	}
	auth := ""
	switch {
	case hc.BasicAuth != nil:
		auth = "basic_auth"
	case hc.Authorization != nil && field(n, "authorization") != nil:
		auth = "authorization"
	case hc.Authorization != nil:
		auth = "bearer_token"
	case hc.OAuth2 != nil:
		auth = "oauth2"
	}
	if auth == "" {
		return
	}
	if withUser {
		v.errorf(at(auth), "%s: credentials in the URL and %s: give one", where, auth)
	}
	for name := range u.Headers {
		if http.CanonicalHeaderKey(name) == "Authorization" {
			v.errorf(at(auth), "%s: an Authorization header and %s: give one", where, auth)
		}
	}
}

// httpClientDirectory makes the upstreams' relative file paths (CA,
// certificates, secrets) relative to dir.
func (c *Config) httpClientDirectory(dir string) {
	for _, u := range []*Upstream{c.Upstreams.Prometheus, c.Upstreams.Alertmanager} {
		if u != nil {
			u.HTTPClient.SetDirectory(dir)
		}
	}
}
