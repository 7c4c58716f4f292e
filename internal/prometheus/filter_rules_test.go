package prometheus

import (
	"encoding/json"
	"net/url"
	"reflect"
	"testing"

	"github.com/promgate/promgate/internal/apierror"
)

// TestRulesPaging pages the groups a tenant sees, after filtering: other
// tenants' groups neither take a page's room nor name a token.
func TestRulesPaging(t *testing.T) {
	data := []byte(`{"groups":[` +
		`{"name":"b1","file":"f","rules":[{"labels":{"team":"b"}}]},` +
		`{"name":"a1","file":"f","rules":[{"labels":{"team":"a"}}]},` +
		`{"name":"b2","file":"f","rules":[{"labels":{"team":"b"}}]},` +
		`{"name":"a2","file":"g","rules":[{"labels":{"team":"a"}},{"labels":{"team":"b"}}]},` +
		`{"name":"a3","file":"g","rules":[{"labels":{"team":"a"}}]}` +
		`],"groupNextToken":"upstream"}`)
	type result struct {
		Groups []struct{ Name string }
		Next   string `json:"groupNextToken"`
	}
	for _, tc := range []struct {
		name      string
		limit     int
		token     string
		want      []string
		wantNext  string
		wantError bool
	}{
		{name: "no paging", want: []string{"a1", "a2", "a3"}},
		{name: "first page", limit: 2, want: []string{"a1", "a2"}, wantNext: groupToken("g", "a3")},
		{name: "second page", limit: 2, token: groupToken("g", "a3"), want: []string{"a3"}},
		{name: "one a page", limit: 1, token: groupToken("g", "a2"), want: []string{"a2"}, wantNext: groupToken("g", "a3")},
		{name: "all in one page", limit: 3, want: []string{"a1", "a2", "a3"}},
		{name: "more than all", limit: 10, want: []string{"a1", "a2", "a3"}},
		{name: "token of another tenant's group", limit: 1, token: groupToken("f", "b2"), wantError: true},
		{name: "unknown token", limit: 1, token: "x", wantError: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var page *rulesPage
			if tc.limit > 0 {
				page = &rulesPage{limit: tc.limit, token: tc.token}
			}
			out, _, err := filterRulesData(nil, data, teamA, page)
			if tc.wantError {
				if e, ok := err.(*apierror.Error); !ok || e.Status() != 400 {
					t.Fatalf("error %v, want a 400", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var r result
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
			var got []string
			for _, g := range r.Groups {
				got = append(got, g.Name)
			}
			if !reflect.DeepEqual(got, tc.want) || r.Next != tc.wantNext {
				t.Errorf("groups %v next %q, want %v next %q (%s)", got, r.Next, tc.want, tc.wantNext, out)
			}
		})
	}
}

// TestRulesPageParameters: group_limit and group_next_token are promgate's
// to answer; they never go upstream.
func TestRulesPageParameters(t *testing.T) {
	for _, tc := range []struct {
		query   string
		want    *rulesPage
		wantErr bool
	}{
		{query: "", want: nil},
		{query: "group_limit=3", want: &rulesPage{limit: 3}},
		{query: "group_limit=3&group_next_token=abc", want: &rulesPage{limit: 3, token: "abc"}},
		{query: "group_next_token=abc", wantErr: true},
		{query: "group_limit=0", wantErr: true},
		{query: "group_limit=-1", wantErr: true},
		{query: "group_limit=x", wantErr: true},
		{query: "group_limit=99999999999", wantErr: true},
	} {
		vs, _ := url.ParseQuery(tc.query + "&type=alert")
		p, err := takePage(vs)
		if (err != nil) != tc.wantErr || !tc.wantErr && !reflect.DeepEqual(p, tc.want) {
			t.Errorf("%q: page %+v error %v", tc.query, p, err)
		}
		if vs.Has("group_limit") || vs.Has("group_next_token") || vs.Get("type") != "alert" {
			t.Errorf("%q: sent upstream %v", tc.query, vs)
		}
	}
}
