package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const httpClientTail = `authentication:
  basic_auth_users:
    alice: $2y$10$EYxs8IOG46m9CtpB/XlPxO1ei7E4BjAen0SUv6di7mD4keR/8JO6m
policies:
  - {name: a, subjects: ["user:alice"], allow_all: true}
`

// The http_client_config keys parse as Prometheus' do, and relative file
// paths are relative to the configuration file.
func TestHTTPClientConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "promgate.yml")
	doc := `upstreams:
  prometheus:
    url: https://prometheus.internal:9090
    tls_config:
      ca_file: certs/ca.pem
      cert_file: /etc/promgate/client.pem
      key_file: client.key
      server_name: prom
      min_version: TLS13
    basic_auth:
      username: promgate
      password_file: secrets/prom-password
    follow_redirects: false
    enable_http2: false
    proxy_url: http://user:pw@proxy.internal:3128
    no_proxy: localhost
  alertmanager:
    url: http://am:9093
    authorization:
      credentials_file: am-token
    headers: {X-Scope-OrgID: "{{ .User }}"}
` + httpClientTail
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Upstreams.Prometheus.HTTPClient
	tc := p.TLSConfig
	if tc.CAFile != filepath.Join(dir, "certs/ca.pem") || tc.CertFile != "/etc/promgate/client.pem" || tc.KeyFile != filepath.Join(dir, "client.key") ||
		tc.ServerName != "prom" || tc.MinVersion.String() != "TLS13" {
		t.Errorf("tls_config = %+v", tc)
	}
	if p.ProxyURL.URL == nil || p.ProxyURL.Host != "proxy.internal:3128" || p.NoProxy != "localhost" {
		t.Errorf("proxy_url = %v, no_proxy %q", p.ProxyURL.URL, p.NoProxy)
	}
	if b := p.BasicAuth; b == nil || b.Username != "promgate" || b.PasswordFile != filepath.Join(dir, "secrets/prom-password") {
		t.Errorf("basic_auth = %+v", b)
	}
	a := c.Upstreams.Alertmanager.HTTPClient.Authorization
	if a == nil || a.Type != "Bearer" || a.CredentialsFile != filepath.Join(dir, "am-token") {
		t.Errorf("authorization = %+v", a)
	}
}

// What promgate's HTTP/1.1 client does not do is refused, with the line.
func TestHTTPClientConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name, upstream string
		want           []string
	}{
		{"http2 and redirects", `
    url: http://p:9090
    enable_http2: true
    follow_redirects: true`, []string{
			"line 4: upstreams.prometheus.enable_http2: promgate speaks HTTP/1.1",
			"line 5: upstreams.prometheus.follow_redirects: promgate passes the upstream's redirects to the client",
		}},
		{"proxy over TLS", `
    url: http://p:9090
    proxy_url: https://proxy:3128`, []string{
			"line 4: upstreams.prometheus.proxy_url: promgate reaches proxies over http:// only (a CONNECT tunnel), not https://",
		}},
		{"proxy settings", `
    url: http://p:9090
    proxy_url: http://proxy:3128
    proxy_from_environment: true`, []string{
			"upstreams.prometheus: if proxy_from_environment is configured, proxy_url must not be configured",
		}},
		{"userinfo and basic_auth", `
    url: http://u:p@p:9090
    basic_auth: {username: x, password: y}`, []string{
			"line 4: upstreams.prometheus: credentials in the URL and basic_auth: give one",
		}},
		{"Authorization header and authorization", `
    url: http://p:9090
    headers: {authorization: "Bearer x"}
    authorization: {credentials: y}`, []string{
			"line 5: upstreams.prometheus: an Authorization header and authorization: give one",
		}},
		{"two credentials", `
    url: http://p:9090
    basic_auth: {username: x, password: y}
    authorization: {credentials: y}`, []string{
			"line 2: upstreams.prometheus: at most one of basic_auth, oauth2 & authorization must be configured",
		}},
		{"password and password_file", `
    url: http://p:9090
    basic_auth: {username: x, password: y, password_file: z}`, []string{
			"upstreams.prometheus: at most one of basic_auth password, password_file & password_ref must be configured",
		}},
		{"secret references", `
    url: https://p:9090
    basic_auth: {username: x, password_ref: vault-pw}
    tls_config: {ca_ref: vault-ca}`, []string{
			"line 4: upstreams.prometheus.basic_auth.password_ref: promgate has no secret manager",
			"line 5: upstreams.prometheus.tls_config.ca_ref: promgate has no secret manager",
		}},
		{"tls_config with an http server in the list", `
    url: [https://p1:9090, http://p2:9090]
    tls_config: {ca_file: ca.pem}`, []string{
			"line 4: upstreams.prometheus.tls_config applies to an https:// URL",
		}},
		{"userinfo on the second server and basic_auth", `
    url: [http://p1:9090, http://u:p@p2:9090]
    basic_auth: {username: x, password: y}`, []string{
			"line 4: upstreams.prometheus: credentials in the URL and basic_auth: give one",
		}},
		{"tls_config on http", `
    url: http://p:9090
    tls_config: {ca_file: ca.pem}`, []string{
			"line 4: upstreams.prometheus.tls_config applies to an https:// URL",
		}},
		{"http_headers", `
    url: http://p:9090
    http_headers: {X-A: {values: [b]}}`, []string{
			"line 4: upstreams.prometheus.http_headers: use upstreams.prometheus.headers",
		}},
		{"oauth2 jwt grant", `
    url: http://p:9090
    oauth2:
      client_id: x
      token_url: http://idp/token
      grant_type: urn:ietf:params:oauth:grant-type:jwt-bearer`, []string{
			"line 7: upstreams.prometheus.oauth2.grant_type: promgate fetches tokens with client_credentials only",
		}},
		{"unknown key", `
    url: http://p:9090
    tls_config: {ca_fiel: x}`, []string{
			`line 4: unknown field "ca_fiel"`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("upstreams:\n  prometheus:" + tc.upstream + "\n" + httpClientTail))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "vault") {
				t.Errorf("error shows a secret reference's value: %v", err)
			}
		})
	}
}
