package config

import (
	"strings"
	"testing"
)

// fakeMethod stands for an authentication method of package auth.
type fakeMethod struct {
	anyUser, groups bool
	users           []string
}

func (m fakeMethod) AssertsAnyUser() bool { return m.anyUser }
func (m fakeMethod) AssertsGroups() bool  { return m.groups }
func (m fakeMethod) Users() []string      { return m.users }

// testMethods models what package auth builds from a configuration; the
// real methods are checked against configurations in package server.
func testMethods(c *Config) []Method {
	var ms []Method
	a := c.Authentication
	if users := c.Users(); len(users) > 0 {
		m := fakeMethod{}
		for u := range users {
			m.users = append(m.users, u)
		}
		ms = append(ms, m)
	}
	for _, t := range a.APITokens {
		ms = append(ms, fakeMethod{users: []string{t.User}})
	}
	if a.TrustedHeader != nil {
		ms = append(ms, fakeMethod{anyUser: true})
	}
	if cc := a.ClientCertificate; cc != nil {
		ms = append(ms, fakeMethod{anyUser: true, groups: cc.GroupsFrom != ""})
	}
	if j := a.JWT; j != nil {
		ms = append(ms, fakeMethod{anyUser: true, groups: j.GroupsClaim != ""})
	}
	return ms
}

// TestCheckSubjects: a user subject nobody can carry is a warning (so that
// removing credentials always reloads), a group nobody can be in is an
// error; methods that assert arbitrary users or groups silence them.
func TestCheckSubjects(t *testing.T) {
	const hash = "$2y$10$CLeidEsEtvvnEm4b3lmxoOVi2QlArzONjPlxQr1HYrXBOGCON0CF2"
	for _, tc := range []struct {
		name    string
		auth    string
		methods []Method // nil: testMethods
		policy  string
		warn    string // substring of the only warning, "" for none
		err     string // substring of the error, "" for none
	}{
		{"a removed basic auth user is a warning", "basic_auth_users: {alice: " + hash + "}", nil,
			`subjects: ["user:alice", "user:bob"]`, `line 9: policy "p": subject "user:bob": user "bob" has no credentials`, ""},
		{"a user named by an API token is known", "api_tokens: [{user: robot, sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8}]", nil,
			`subjects: ["user:robot"]`, "", ""},
		{"a token's user missing is a warning", "api_tokens: [{user: robot, sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8}]", nil,
			`subjects: ["user:nobody"]`, `user "nobody" has no credentials`, ""},
		{"a method asserting any user names everyone", "basic_auth_users: {alice: " + hash + "}",
			[]Method{fakeMethod{users: []string{"alice"}}, fakeMethod{anyUser: true}},
			`subjects: ["user:bob"]`, "", ""},
		{"an undefined group is an error", "basic_auth_users: {alice: " + hash + "}", nil,
			`subjects: ["group:ops"]`, "", `line 9: policy "p": subject "group:ops": group "ops" is not defined under groups`},
		{"a method asserting groups makes any group possible", "basic_auth_users: {alice: " + hash + "}",
			[]Method{fakeMethod{users: []string{"alice"}}, fakeMethod{anyUser: true, groups: true}},
			`subjects: ["group:ops"]`, "", ""},
		{"a JWT without a groups claim asserts users, not groups", "jwt: {issuer: i, audiences: [a], jwks_url: 'http://idp/k'}", nil,
			`subjects: ["user:anyone", "group:ops"]`, "", `group "ops" is not defined`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte("upstreams: {prometheus: {url: 'http://127.0.0.1:9090'}}\nauthentication:\n  " + tc.auth +
				"\npolicies:\n  - name: p\n    selectors: ['{team=\"a\"}']\n\n\n    " + tc.policy + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			ms := tc.methods
			if ms == nil {
				ms = testMethods(cfg)
			}
			warns, err := cfg.CheckSubjects(ms)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want %q", err, tc.err)
			}
			switch {
			case tc.warn == "" && len(warns) > 0:
				t.Errorf("warnings: %q", warns)
			case tc.warn != "" && (len(warns) != 1 || !strings.Contains(warns[0], tc.warn)):
				t.Errorf("warnings %q, want %q", warns, tc.warn)
			}
		})
	}
}
