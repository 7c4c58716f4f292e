package e2e

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRulesPaging pages /api/v1/rules through promgate in front of a real
// Prometheus: promgate filters, then pages (Prometheus 2.42 does not page,
// and a page taken before filtering would be emptied by other tenants'
// groups, its token naming them). bob sees two groups of the live rules,
// alice one; a token naming a group the tenant does not see is refused.
func TestRulesPaging(t *testing.T) {
	skipIfShort(t)
	s := startLiveStack(t)
	type page struct {
		Groups []struct {
			Name string
			File string
		}
		GroupNextToken string `json:"groupNextToken"`
	}
	names := func(p page) (out []string) {
		for _, g := range p.Groups {
			out = append(out, g.Name)
		}
		return out
	}
	rules := filepath.Join(s.dir, "rules.yml")
	token := func(name string) string {
		h := sha1.Sum([]byte(rules + ";" + name))
		return hex.EncodeToString(h[:])
	}

	var all page
	s.getJSON(t, "bob", "/api/v1/rules", &all)
	if got := sorted(names(all)); !reflect.DeepEqual(got, []string{"team-b-only", "tenants"}) {
		t.Fatalf("bob's groups %v", got)
	}
	// One group a page: every page full, the last without a token.
	var seen []string
	next := ""
	for i := 0; ; i++ {
		q := url.Values{"group_limit": {"1"}}
		if next != "" {
			q.Set("group_next_token", next)
		}
		var p page
		s.getJSON(t, "bob", "/api/v1/rules?"+q.Encode(), &p)
		if len(p.Groups) != 1 {
			t.Fatalf("page %d: %d groups, want 1: %+v", i, len(p.Groups), p)
		}
		seen = append(seen, names(p)...)
		if p.GroupNextToken == "" {
			break
		}
		if i > 3 {
			t.Fatalf("pages do not end: %v", seen)
		}
		next = p.GroupNextToken
	}
	if !reflect.DeepEqual(seen, names(all)) {
		t.Errorf("pages gave %v, want %v", seen, names(all))
	}

	// alice's only group fills her page: no token.
	var p page
	s.getJSON(t, "alice", "/api/v1/rules?group_limit=1", &p)
	if got := names(p); !reflect.DeepEqual(got, []string{"tenants"}) || p.GroupNextToken != "" {
		t.Errorf("alice's page %+v, want [tenants] without a token", p)
	}

	for _, tc := range []struct {
		user, query string
		code        int
	}{
		// A token of bob's group is not alice's: it names nothing she sees.
		{"alice", "group_limit=1&group_next_token=" + token("team-b-only"), 400},
		{"bob", "group_limit=1&group_next_token=" + token(all.Groups[1].Name), 200},
		{"bob", "group_limit=1&group_next_token=nonsense", 400},
		{"bob", "group_next_token=" + token("tenants"), 400},
		{"bob", "group_limit=0", 400},
		{"bob", "group_limit=x", 400},
	} {
		code, body := s.get(t, tc.user, "/api/v1/rules?"+tc.query)
		if code != tc.code {
			t.Errorf("%s %s: status %d, want %d: %s", tc.user, tc.query, code, tc.code, body)
			continue
		}
		var env struct{ Status, ErrorType string }
		if err := json.Unmarshal(body, &env); err != nil || code == 400 && (env.Status != "error" || env.ErrorType != "bad_data") {
			t.Errorf("%s %s: not Prometheus' error envelope: %s", tc.user, tc.query, body)
		}
	}
}
