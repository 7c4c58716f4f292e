package auth

import (
	"net/http"
	"slices"
	"strings"
)

// Method describes one configured authentication method by what it can
// assert, so that the configuration's checks ask the methods rather than
// knowing them: a policy naming a user no method can name is dead, a
// group neither defined nor assertable is an error.
type Method struct {
	// Name is one of the Method* constants.
	Name    string
	anyUser bool
	groups  bool
	users   []string
}

// AssertsAnyUser reports whether the method can name users that are not
// configured in promgate (a proxy's header, a certificate authority, an
// identity provider).
func (m Method) AssertsAnyUser() bool { return m.anyUser }

// AssertsGroups reports whether the method can assert groups of its own.
func (m Method) AssertsGroups() bool { return m.groups }

// Users lists the users the method can name when it cannot name any user:
// the configured basic auth users or the users of the API tokens.
func (m Method) Users() []string { return m.users }

// Methods describes the configured methods, in the order they are tried.
func (a *Authenticator) Methods() []Method {
	var ms []Method
	if a.cert != nil {
		ms = append(ms, Method{Name: MethodCertificate, anyUser: true, groups: a.cert.GroupsFrom != ""})
	}
	if a.header != "" {
		ms = append(ms, Method{Name: MethodHeader, anyUser: true})
	}
	if len(a.tokens) > 0 {
		m := Method{Name: MethodToken}
		for _, u := range a.tokens {
			if !slices.Contains(m.users, u) {
				m.users = append(m.users, u)
			}
		}
		slices.Sort(m.users)
		ms = append(ms, m)
	}
	if a.jwt != nil {
		ms = append(ms, Method{Name: MethodJWT, anyUser: true, groups: a.jwt.o.GroupsClaim != ""})
	}
	if len(a.users) > 0 {
		m := Method{Name: MethodBasic}
		for u := range a.users {
			m.users = append(m.users, u)
		}
		slices.Sort(m.users)
		ms = append(ms, m)
	}
	return ms
}

// Attempted names the method r's credentials are checked by, for counting
// refusals by method: one of the Method* constants, "bearer" for a bearer
// token (an API token or a JWT, told apart only by checking it),
// "malformed" for an Authorization header no method reads, or "none" when
// r presents no credentials. It follows the order of Authenticate without
// checking anything.
func (a *Authenticator) Attempted(r *http.Request) string {
	switch {
	case a.cert != nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0:
		return MethodCertificate
	case a.header != "" && r.Header[a.header] != nil:
		return MethodHeader
	}
	values, present := r.Header["Authorization"]
	if !present || !a.usesAuthorization() || len(values) != 1 {
		if present && a.usesAuthorization() {
			return "malformed"
		}
		return "none"
	}
	scheme, _, _ := strings.Cut(values[0], " ")
	switch {
	case strings.EqualFold(scheme, "Basic") && len(a.users) > 0:
		return MethodBasic
	case strings.EqualFold(scheme, "Bearer") && a.bearer():
		return "bearer"
	}
	return "malformed"
}
