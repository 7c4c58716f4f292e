package server

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/promgate/promgate/internal/config"
	"github.com/promgate/promgate/internal/identity"
	"github.com/promgate/promgate/internal/policy"
)

func identityState(t *testing.T) *State {
	t.Helper()
	cfg, err := config.Parse([]byte(`upstreams:
  prometheus: {url: "http://127.0.0.1:9"}
authentication:
  trusted_header: {name: X-User, trusted_sources: [127.0.0.1]}
policies:
  - {name: a, subjects: ["user:a"], selectors: ['{team="a"}']}
  - {name: admins, subjects: ["user:root"], allow_all: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := Build(cfg, BuildOptions{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestAccessKeyIsUnambiguous: identities whose parts joined with NUL read
// the same must not share a cached policy.
func TestAccessKeyIsUnambiguous(t *testing.T) {
	for _, pair := range [][2]identity.Identity{
		{{User: "a", Groups: []string{"b", ""}}, {User: "a\x00b"}},
		{{User: "a", Groups: []string{"b", "c"}}, {User: "a\x00b", Groups: []string{"c"}}},
		{{User: "a", Groups: []string{"b\x00c"}}, {User: "a\x00b", Groups: []string{"c"}}},
	} {
		st := identityState(t)
		first, err := st.accessFor(pair[0])
		if err != nil || first.policy.Rules[0] != "a" {
			t.Fatalf("%q: %v %v", pair[0], first, err)
		}
		if got, err := st.accessFor(pair[1]); !errors.Is(err, policy.ErrNoPolicy) {
			t.Errorf("%q after %q: got policy %v (%v), want none", pair[1].User, pair[0].User, got, err)
		}
	}
}

// TestUserNamesAreOneNamespace pins the decision the README states: a user
// name means the same user whichever method asserted it, as in Prometheus'
// web.yml and the PromAuthProxy. A JWT, certificate or trusted header
// naming "root" gets root's policy, so an issuer that may assert arbitrary
// names must be trusted with every configured name.
func TestUserNamesAreOneNamespace(t *testing.T) {
	st := identityState(t)
	for _, method := range []string{"basic", "token", "jwt", "certificate", "header"} {
		acc, err := st.accessFor(identity.Identity{User: "root", Method: method})
		if err != nil || !acc.policy.AllowAll {
			t.Errorf("root by %s: %v, %v; want the admins policy", method, acc, err)
		}
	}
}
