package upstream

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	commoncfg "github.com/prometheus/common/config"
)

// authRecorder is an upstream that records the Authorization of every
// request; it answers 401 to those in deny.
func authRecorder(t *testing.T, deny ...string) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
		for _, d := range deny {
			if a == d {
				w.Header().Set("WWW-Authenticate", `Basic realm="prometheus"`)
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Every kind of credentials reaches the upstream as promgate's
// Authorization; the client's never does.
func TestCredentialsSent(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "password"), "s3cret\n")
	writeFile(t, filepath.Join(dir, "token"), "tok-from-file")
	for _, tc := range []struct {
		name   string
		url    string
		client *commoncfg.HTTPClientConfig
		want   string
	}{
		{"none", "", nil, ""},
		{"url userinfo", "prom:pw@", nil, "Basic cHJvbTpwdw=="},
		{"basic_auth password", "", &commoncfg.HTTPClientConfig{BasicAuth: &commoncfg.BasicAuth{Username: "prom", Password: "pw"}}, "Basic cHJvbTpwdw=="},
		{"basic_auth password_file", "", &commoncfg.HTTPClientConfig{BasicAuth: &commoncfg.BasicAuth{Username: "prom", PasswordFile: filepath.Join(dir, "password")}}, "Basic cHJvbTpzM2NyZXQ="},
		{"authorization credentials", "", &commoncfg.HTTPClientConfig{Authorization: &commoncfg.Authorization{Credentials: "abc"}}, "Bearer abc"},
		{"authorization credentials_file", "", &commoncfg.HTTPClientConfig{Authorization: &commoncfg.Authorization{Type: "Token", CredentialsFile: filepath.Join(dir, "token")}}, "Token tok-from-file"},
		{"bearer_token_file", "", &commoncfg.HTTPClientConfig{BearerTokenFile: filepath.Join(dir, "token")}, "Bearer tok-from-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := authRecorder(t)
			// promgate strips the client's Authorization (its identity)
			// whether or not it has credentials of its own.
			u := newUpstream(t, strings.Replace(srv.URL, "//", "//"+tc.url, 1), Options{Client: tc.client, StripHeaders: []string{"Authorization"}})
			w := serve(u, "/api/v1/query", map[string]string{"Authorization": "Bearer the-clients-own"})
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			if g := got(); len(g) != 1 || g[0] != tc.want {
				t.Errorf("upstream got Authorization %q, want [%q]", g, tc.want)
			}
		})
	}
}

// A secret file rewritten is read again: the next requests carry the new
// secret.
func TestCredentialsFileRotated(t *testing.T) {
	old := secretRefresh
	secretRefresh = 0
	t.Cleanup(func() { secretRefresh = old })
	file := filepath.Join(t.TempDir(), "password")
	writeFile(t, file, "one")
	srv, got := authRecorder(t)
	u := newUpstream(t, srv.URL, Options{Client: &commoncfg.HTTPClientConfig{BasicAuth: &commoncfg.BasicAuth{Username: "u", PasswordFile: file}}})
	serve(u, "/", nil)
	writeFile(t, file, "two")
	serve(u, "/", nil)
	os.Remove(file)
	w := serve(u, "/", nil)
	g := got()
	if len(g) != 2 || g[0] != basicAuth("u", "one") || g[1] != basicAuth("u", "two") {
		t.Errorf("upstream got %q, want the password one then two", g)
	}
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "credentials for the upstream (basic_auth) could not be read") {
		t.Errorf("with the file gone: status %d, body %s; want 502 naming the credentials", w.Code, w.Body)
	}
}

// Credentials given twice, or a file that cannot be read, fail New.
func TestCredentialsRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		url     string
		client  *commoncfg.HTTPClientConfig
		headers []string
		want    string
	}{
		{"userinfo and basic_auth", "http://u:p@localhost", &commoncfg.HTTPClientConfig{BasicAuth: &commoncfg.BasicAuth{Username: "x"}}, nil, "credentials in the URL and basic_auth"},
		{"userinfo and authorization", "http://u:p@localhost", &commoncfg.HTTPClientConfig{Authorization: &commoncfg.Authorization{Credentials: "x"}}, nil, "credentials in the URL and authorization"},
		{"basic_auth and an Authorization header", "http://localhost", &commoncfg.HTTPClientConfig{BasicAuth: &commoncfg.BasicAuth{Username: "x"}}, []string{"authorization"}, "an Authorization header"},
		{"missing password_file", "http://localhost", &commoncfg.HTTPClientConfig{BasicAuth: &commoncfg.BasicAuth{Username: "x", PasswordFile: "/nonexistent/pw"}}, nil, "unable to read file /nonexistent/pw"},
		{"missing ca_file", "https://localhost", &commoncfg.HTTPClientConfig{TLSConfig: commoncfg.TLSConfig{CAFile: "/nonexistent/ca.pem"}}, nil, "tls_config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, _ := url.Parse(tc.url)
			_, err := New(Options{URL: base, Client: tc.client, HeaderNames: tc.headers}, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// The upstream's 401 is about promgate's credentials: a 502 that says so,
// without the upstream's WWW-Authenticate, which would make a browser ask
// its user for them.
func TestUpstreamUnauthorized(t *testing.T) {
	srv, got := authRecorder(t, basicAuth("prom", "wrong"))
	u := newUpstream(t, srv.URL, Options{Client: &commoncfg.HTTPClientConfig{BasicAuth: &commoncfg.BasicAuth{Username: "prom", Password: "wrong"}}})
	for range 3 {
		w := serve(u, "/api/v1/query", nil)
		var env struct{ Status, ErrorType, Error string }
		json.Unmarshal(w.Body.Bytes(), &env)
		if w.Code != http.StatusBadGateway || !strings.Contains(env.Error, "refused promgate's credentials (401 Unauthorized; check basic_auth)") || w.Header().Get("WWW-Authenticate") != "" {
			t.Fatalf("status %d, error %q, WWW-Authenticate %q", w.Code, env.Error, w.Header().Get("WWW-Authenticate"))
		}
	}
	if len(got()) != 3 || u.IdleConns() != 1 {
		t.Errorf("%d requests upstream, %d idle connections; want 3 on one connection", len(got()), u.IdleConns())
	}
	// Do's callers get the same error.
	_, err := u.Do(httptest.NewRequest("GET", "/api/v1/rules", nil))
	if err == nil || !strings.Contains(err.Error(), "refused promgate's credentials") {
		t.Errorf("Do: %v", err)
	}
}

// oauth2 client credentials: a token fetched once and sent on every
// request while it is valid.
func TestOAuth2ClientCredentials(t *testing.T) {
	var fetched atomic.Int64
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		id, secret, _ := r.BasicAuth()
		if r.Form.Get("grant_type") != "client_credentials" || id != "promgate" || secret != "cs" || r.Form.Get("scope") != "read" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		fetched.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"tok1","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokens.Close)
	srv, got := authRecorder(t)
	for _, tc := range []struct {
		name   string
		secret string
		code   int
	}{{"right secret", "cs", 200}, {"wrong secret", "nope", 502}} {
		t.Run(tc.name, func(t *testing.T) {
			fetched.Store(0)
			u := newUpstream(t, srv.URL, Options{Client: &commoncfg.HTTPClientConfig{OAuth2: &commoncfg.OAuth2{
				ClientID: "promgate", ClientSecret: commoncfg.Secret(tc.secret), TokenURL: tokens.URL, Scopes: []string{"read"},
			}}})
			before := len(got())
			for range 5 {
				if w := serve(u, "/", map[string]string{"Authorization": "Bearer the-clients-own"}); w.Code != tc.code {
					t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
				}
			}
			g := got()[before:]
			if tc.code == 200 && (fetched.Load() != 1 || len(g) != 5 || g[0] != "Bearer tok1" || g[4] != "Bearer tok1") {
				t.Errorf("%d tokens fetched, upstream got %q; want 1 token on 5 requests", fetched.Load(), g)
			}
			if tc.code != 200 && len(g) != 0 {
				t.Errorf("requests reached the upstream without a token: %q", g)
			}
		})
	}
}
