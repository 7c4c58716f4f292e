package policy

import (
	"errors"
	"slices"
	"testing"

	"github.com/promgate/promgate/internal/identity"
)

func TestParseTemplate(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{`{team="a"}`, false},
		{`{namespace="ns-{{ .User }}"}`, false},
		{`{namespace=~"{{ .User }}-.*"}`, false},
		{`{__name__=~"node_.*", shared="true"}`, false},
		{`{team="a"`, true},                         // not a selector
		{`sum(up)`, true},                           // an expression, not a selector
		{`{namespace="{{ .Nope }}"}`, true},         // unknown field, caught at load
		{`{namespace="{{ .User "}`, true},           // broken template
		{`{namespace=~"{{ .User }}("}`, true},       // the regex is checked before substitution too
		{`{namespace="{{ printf "%s" 1 }}"}`, true}, // quotes inside break the selector
		// UTF-8 names, as Prometheus 3 stores them.
		{`{"service.name"="checkout"}`, false},
		{`{__name__=~"http\\.server\\..*"}`, false},
		{`{"http.server.duration", "service.name"="x"}`, false},
		{`{"k8s.namespace.name"="{{ .User }}"}`, false},
		{`{"ü"=~"a|b", "a-b"!="c"}`, false},
		{`{""="x"}`, true},          // no label is named ""
		{`{"\xff"="x"}`, true},      // nor invalid UTF-8
		{`{"service.name"}`, false}, // a metric name
	} {
		_, err := ParseTemplate(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseTemplate(%s): err %v, wantErr %v", tc.in, err, tc.wantErr)
		}
	}
}

// A selector on UTF-8 names is what the parser reads: names as written,
// the quoted metric name as __name__, and written back quoted.
func TestParseTemplateUTF8(t *testing.T) {
	for _, tc := range []struct {
		in, user, want string
	}{
		{`{"service.name"="checkout"}`, "u", `{"service.name"="checkout"}`},
		{`{"http.server.duration", "service.name"="x"}`, "u", `{__name__="http.server.duration", "service.name"="x"}`},
		{`{"k8s.namespace.name"="ns-{{ .User }}"}`, "alice", `{"k8s.namespace.name"="ns-alice"}`},
		{`{"service.name"=~"{{ .User }}"}`, "a.b", `{"service.name"=~"a\\.b"}`},
	} {
		tm, err := ParseTemplate(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		sel, err := tm.Execute(tc.user)
		if err != nil {
			t.Fatal(err)
		}
		if got := sel.String(); got != tc.want {
			t.Errorf("%s for %q: got %s, want %s", tc.in, tc.user, got, tc.want)
		}
	}
}

func TestExecuteEscapes(t *testing.T) {
	for _, tc := range []struct {
		tmpl, user string
		matches    []string // values of the templated label that must match
		rejects    []string
	}{
		// A user name is a value, never syntax.
		{`{ns="{{ .User }}"}`, `a"} or {ns=~".*`, []string{`a"} or {ns=~".*`}, []string{"a", "b"}},
		// In a regex it is quoted: ".*" matches only itself.
		{`{ns=~"{{ .User }}"}`, `.*`, []string{`.*`}, []string{"anything", ""}},
		{`{ns=~"{{ .User }}-(dev|prod)"}`, `a.b`, []string{"a.b-dev"}, []string{"axb-dev", "a.b-test"}},
		{`{ns!~"{{ .User }}"}`, `x|y`, []string{"x", "y"}, []string{"x|y"}}, // !~: matches = not the quoted name
	} {
		tm, err := ParseTemplate(tc.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		sel, err := tm.Execute(tc.user)
		if err != nil {
			t.Fatalf("%s for %q: %v", tc.tmpl, tc.user, err)
		}
		if len(sel) != 1 {
			t.Fatalf("%s: %d matchers", tc.tmpl, len(sel))
		}
		for _, v := range tc.matches {
			if !sel[0].Matches(v) {
				t.Errorf("%s for user %q: %q should match", tc.tmpl, tc.user, v)
			}
		}
		for _, v := range tc.rejects {
			if sel[0].Matches(v) {
				t.Errorf("%s for user %q: %q should not match", tc.tmpl, tc.user, v)
			}
		}
	}
}

func TestParseSubject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Subject
		err  bool
	}{
		{"*", Subject{Kind: SubjectEveryone}, false},
		{"user:alice", Subject{Kind: SubjectUser, Name: "alice"}, false},
		{"group:team-a", Subject{Kind: SubjectGroup, Name: "team-a"}, false},
		{"user:", Subject{}, true},
		{"alice", Subject{}, true},
		{"role:x", Subject{}, true},
	} {
		got, err := ParseSubject(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseSubject(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestSetFor(t *testing.T) {
	mustT := func(s string) *Template {
		tm, err := ParseTemplate(s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	sub := func(s string) Subject {
		x, err := ParseSubject(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	set := NewSet([]Rule{
		{Name: "team-a", Subjects: []Subject{sub("group:team-a"), sub("user:dave")}, Selectors: []*Template{mustT(`{team="a"}`)}},
		{Name: "shared", Subjects: []Subject{sub("group:team-a")}, Selectors: []*Template{mustT(`{shared="true"}`), mustT(`{team="a"}`)}},
		{Name: "own-ns", Subjects: []Subject{sub("*")}, Selectors: []*Template{mustT(`{namespace="ns-{{ .User }}"}`)}},
		{Name: "admins", Subjects: []Subject{sub("user:root")}, AllowAll: true},
	}, map[string][]string{"team-a": {"alice", "carol"}})

	for _, tc := range []struct {
		id        identity.Identity
		allowAll  bool
		selectors []string
		rules     []string
	}{
		// Union across policies, the duplicate {team="a"} once.
		{identity.Identity{User: "alice"}, false, []string{`{team="a"}`, `{shared="true"}`, `{namespace="ns-alice"}`}, []string{"team-a", "shared", "own-ns"}},
		{identity.Identity{User: "dave"}, false, []string{`{team="a"}`, `{namespace="ns-dave"}`}, []string{"team-a", "own-ns"}},
		// Groups asserted by the authenticator count too.
		{identity.Identity{User: "erin", Groups: []string{"team-a"}}, false, []string{`{team="a"}`, `{shared="true"}`, `{namespace="ns-erin"}`}, []string{"team-a", "shared", "own-ns"}},
		{identity.Identity{User: "root"}, true, nil, []string{"own-ns", "admins"}},
	} {
		p, err := set.For(tc.id)
		if err != nil {
			t.Fatalf("%v: %v", tc.id, err)
		}
		var sels []string
		for _, s := range p.Selectors {
			sels = append(sels, s.String())
		}
		if p.AllowAll != tc.allowAll || !slices.Equal(sels, tc.selectors) || !slices.Equal(p.Rules, tc.rules) {
			t.Errorf("%v: got allowAll=%v %v %v, want %v %v %v", tc.id, p.AllowAll, sels, p.Rules, tc.allowAll, tc.selectors, tc.rules)
		}
	}

	noStar := NewSet([]Rule{{Name: "a", Subjects: []Subject{sub("user:alice")}, Selectors: []*Template{mustT(`{team="a"}`)}}}, nil)
	if _, err := noStar.For(identity.Identity{User: "mallory"}); !errors.Is(err, ErrNoPolicy) {
		t.Errorf("an identity no policy names: got %v, want ErrNoPolicy", err)
	}
}
