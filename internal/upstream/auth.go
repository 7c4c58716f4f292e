package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/promgate/promgate/internal/apierror"
)

// credentials give the Authorization header promgate sends upstream, from
// the URL's user information, basic_auth, authorization or oauth2. The
// client's own Authorization never passes (New strips it).
//
// Secrets in files are read with common/config's FileSecret, as
// Prometheus reads them, but not on every request: the header is rendered
// again at most once per secretRefresh, by one request while the others
// use the last one, so that a rotated secret is used within that time.
type credentials struct {
	static string                 // a fixed header; "" when render is set
	render func() (string, error) // called under mu
	kind   string                 // basic_auth, authorization, oauth2, for errors

	mu  sync.Mutex
	cur atomic.Pointer[renderedCredentials]
}

type renderedCredentials struct {
	value string
	err   error
	at    time.Time
}

// secretRefresh is how long a rendered header is used before its secrets
// are read again.
var secretRefresh = time.Second

// newCredentials returns the upstream's credentials, nil for none.
func newCredentials(hc *commoncfg.HTTPClientConfig, user *url.Userinfo) (*credentials, error) {
	kind := ""
	if hc != nil {
		switch {
		case hc.BasicAuth != nil:
			kind = "basic_auth"
		case hc.Authorization != nil || hc.BearerToken != "" || hc.BearerTokenFile != "":
			kind = "authorization"
		case hc.OAuth2 != nil:
			kind = "oauth2"
		}
	}
	if user != nil {
		if kind != "" {
			return nil, fmt.Errorf("credentials in the URL and %s: give one", kind)
		}
		password, _ := user.Password()
		return &credentials{static: basicAuth(user.Username(), password), kind: "the URL's user information"}, nil
	}
	c := &credentials{kind: kind}
	mutable := false // a secret is read from a file
	readers := func(rs ...commoncfg.SecretReader) {
		for _, r := range rs {
			mutable = mutable || r != nil && !r.Immutable()
		}
	}
	switch kind {
	case "":
		return nil, nil
	case "basic_auth":
		b := hc.BasicAuth
		username, err := secret(commoncfg.Secret(b.Username), b.UsernameFile, b.UsernameRef)
		if err != nil {
			return nil, fmt.Errorf("basic_auth username: %w", err)
		}
		password, err := secret(b.Password, b.PasswordFile, b.PasswordRef)
		if err != nil {
			return nil, fmt.Errorf("basic_auth password: %w", err)
		}
		readers(username, password)
		c.render = func() (string, error) {
			u, err := fetch(username)
			if err != nil {
				return "", err
			}
			p, err := fetch(password)
			if err != nil {
				return "", err
			}
			return basicAuth(u, p), nil
		}
	case "authorization":
		a := hc.Authorization
		if a == nil {
			a = &commoncfg.Authorization{Credentials: hc.BearerToken, CredentialsFile: hc.BearerTokenFile}
		}
		typ := a.Type
		if typ == "" {
			typ = "Bearer"
		}
		cred, err := secret(a.Credentials, a.CredentialsFile, a.CredentialsRef)
		if err != nil {
			return nil, fmt.Errorf("authorization credentials: %w", err)
		}
		readers(cred)
		c.render = func() (string, error) {
			v, err := fetch(cred)
			if err != nil {
				return "", err
			}
			return typ + " " + v, nil
		}
	case "oauth2":
		render, err := oauth2Token(hc.OAuth2)
		if err != nil {
			return nil, fmt.Errorf("oauth2: %w", err)
		}
		c.render = render
		return c, nil // the token is fetched on the first request
	}
	// A secret file that cannot be read fails the configuration.
	v, err := c.value()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if !mutable {
		c.static, c.render = v, nil // given inline: rendered once
	}
	return c, nil
}

// value returns the Authorization header.
func (c *credentials) value() (string, error) {
	if c.render == nil {
		return c.static, nil
	}
	r := c.cur.Load()
	if r != nil && time.Since(r.at) < secretRefresh {
		return r.value, r.err
	}
	if r != nil {
		if !c.mu.TryLock() {
			return r.value, r.err // another request renders it
		}
	} else {
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if now := c.cur.Load(); now != r {
		return now.value, now.err
	}
	v, err := c.render()
	c.cur.Store(&renderedCredentials{value: v, err: err, at: time.Now()})
	return v, err
}

// secret is common/config's reader for a secret given inline or in a file.
func secret(inline commoncfg.Secret, file, ref string) (commoncfg.SecretReader, error) {
	switch {
	case ref != "":
		return nil, errors.New("promgate has no secret manager for a *_ref")
	case inline != "":
		return commoncfg.NewInlineSecret(string(inline)), nil
	case file != "":
		return commoncfg.NewFileSecret(file), nil
	}
	return nil, nil
}

// fetch reads a secret; none is the empty string.
func fetch(s commoncfg.SecretReader) (string, error) {
	if s == nil {
		return "", nil
	}
	return s.Fetch(context.Background())
}

// oauth2TokenTimeout bounds a request for a token.
const oauth2TokenTimeout = 30 * time.Second

// oauth2Token renders "Bearer <token>" from the client credentials grant
// (golang.org/x/oauth2/clientcredentials, as common/config uses it). The
// token is kept until shortly before it expires; a changed client secret
// gets a new token source. The token endpoint is reached with a client of
// its own, built by common/config from oauth2's tls_config and proxy
// settings; the upstream's requests still go through promgate's pool.
func oauth2Token(o *commoncfg.OAuth2) (func() (string, error), error) {
	if o.GrantType != "" && o.GrantType != "client_credentials" {
		return nil, fmt.Errorf("grant_type %q is not supported", o.GrantType)
	}
	clientSecret, err := secret(o.ClientSecret, o.ClientSecretFile, o.ClientSecretRef)
	if err != nil {
		return nil, err
	}
	client, err := commoncfg.NewClientFromConfig(commoncfg.HTTPClientConfig{
		TLSConfig:       o.TLSConfig,
		ProxyConfig:     o.ProxyConfig,
		FollowRedirects: true,
	}, "promgate_oauth2")
	if err != nil {
		return nil, err
	}
	client.Timeout = oauth2TokenTimeout
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	params := url.Values{}
	for k, v := range o.EndpointParams {
		params.Set(k, v)
	}
	var (
		source oauth2.TokenSource
		last   string
	)
	return func() (string, error) {
		s, err := fetch(clientSecret)
		if err != nil {
			return "", err
		}
		if source == nil || s != last {
			cc := &clientcredentials.Config{
				ClientID:       o.ClientID,
				ClientSecret:   s,
				TokenURL:       o.TokenURL,
				Scopes:         o.Scopes,
				EndpointParams: params,
			}
			source, last = cc.TokenSource(ctx), s
		}
		tok, err := source.Token()
		if err != nil {
			return "", fmt.Errorf("token: %w", err)
		}
		return tok.Type() + " " + tok.AccessToken, nil
	}, nil
}

// refused ends an exchange the upstream answered 401. The client's
// credentials never reach the upstream, so the 401 is about promgate's
// (missing or wrong): passed on, it would ask the client for credentials
// it has no way to give (WWW-Authenticate). It becomes a 502 that says so.
func (u *Upstream) refused(x *exchange) error {
	const limit = 64 << 10
	if n, err := io.Copy(io.Discard, io.LimitReader(x.resp.Body, limit)); err != nil || n == limit {
		x.broken = true
	}
	x.finish()
	which := "none are configured"
	if u.authorization != nil {
		which = "check " + u.authorization.kind
	}
	u.logger.Warn("the upstream refused promgate's credentials (401)", "credentials", which)
	return apierror.New(apierror.Upstream, "upstream unavailable: the upstream refused promgate's credentials (401 Unauthorized; %s)", which)
}
