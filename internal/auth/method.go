package auth

import "slices"

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
