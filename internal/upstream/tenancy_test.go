package upstream

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/promgate/promgate/internal/identity"
)

var testParser = parser.NewParser(parser.Options{})

func matchersString(ms []*labels.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, ",")
}

func selectors(t *testing.T, sels ...string) [][]*labels.Matcher {
	t.Helper()
	var out [][]*labels.Matcher
	for _, s := range sels {
		ms, err := testParser.ParseMetricSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ms)
	}
	return out
}

// The format of X-Prom-Label-Policy: no GEM runs here, so the values are
// checked against the documented example (mimirtool acl generate-header
// --id=1234 --rule='{namespace="A"}' prints
// "X-Prom-Label-Policy: 1234:%7Bnamespace=%22A%22%7D") and read back the
// way GEM and Loki read them: values split on commas, each split at its
// first colon into tenant and path-escaped selector.
func TestLabelPolicyValues(t *testing.T) {
	for _, tc := range []struct {
		tenant string
		sels   []string
		want   []string
	}{
		{"1234", []string{`{namespace="A"}`}, []string{`1234:%7Bnamespace=%22A%22%7D`}},
		{"team-a", []string{`{team="a"}`, `{__name__=~"node_.*", shared="true"}`},
			[]string{`team-a:%7Bteam=%22a%22%7D`, `team-a:%7B__name__=~%22node_.%2A%22%2C%20shared=%22true%22%7D`}},
		{"t", []string{`{secret!="true", env!~"a|b,c"}`}, []string{`t:%7Bsecret%21=%22true%22%2C%20env%21~%22a%7Cb%2Cc%22%7D`}},
		{"t", []string{`{"service.name"="x:y/z"}`}, []string{`t:%7B%22service.name%22=%22x:y%2Fz%22%7D`}},
	} {
		sels := selectors(t, tc.sels...)
		got := LabelPolicyValues(tc.tenant, sels)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %q:\n got %q\nwant %q", tc.tenant, tc.sels, got, tc.want)
		}
		// Read back as GEM and Loki do, all values joined in one header.
		var read [][]*labels.Matcher
		for _, v := range strings.Split(strings.Join(got, ","), ",") {
			tenant, sel, ok := strings.Cut(v, ":")
			if !ok || tenant != tc.tenant {
				t.Fatalf("%q: tenant %q, want %q", v, tenant, tc.tenant)
			}
			s, err := url.PathUnescape(sel)
			if err != nil {
				t.Fatalf("%q: %v", v, err)
			}
			ms, err := testParser.ParseMetricSelector(s)
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			read = append(read, ms)
		}
		if len(read) != len(sels) {
			t.Fatalf("read %d selectors, want %d", len(read), len(sels))
		}
		for i := range sels {
			if matchersString(read[i]) != matchersString(sels[i]) {
				t.Errorf("selector %d read back as %v, want %v", i, read[i], sels[i])
			}
		}
	}
}

// The tenancy headers on the wire: the client's copies of every tenancy
// header are removed, exactly one tenant goes upstream, the label policy
// when configured; an invalid tenant is a 403 naming it and nothing goes
// upstream.
func TestTenancyHeaders(t *testing.T) {
	tenantOf := func(user string) (string, error) {
		if strings.Contains(user, "|") {
			return "", errors.New(`tenant ID "` + user + `": "|" would name several tenants`)
		}
		return "org-" + user, nil
	}
	for _, tc := range []struct {
		name        string
		tenancy     Tenancy
		user        string
		policy      bool // put the caller's policy in the context
		allowAll    bool
		wantStatus  int
		wantError   string
		wantHeaders map[string][]string // nil value: absent
	}{
		{name: "mimir tenant", tenancy: Tenancy{Header: "X-Scope-OrgID", Tenant: tenantOf}, user: "alice", policy: true, wantStatus: 200,
			wantHeaders: map[string][]string{"X-Scope-Orgid": {"org-alice"}, "X-Prom-Label-Policy": nil, "Thanos-Tenant": nil}},
		{name: "label policy", tenancy: Tenancy{Header: "X-Scope-OrgID", Tenant: tenantOf, LabelPolicy: true}, user: "alice", policy: true, wantStatus: 200,
			wantHeaders: map[string][]string{"X-Scope-Orgid": {"org-alice"}, "X-Prom-Label-Policy": {"org-alice:%7Bteam=%22a%22%7D", "org-alice:%7Bjob=%22x%22%7D"}}},
		{name: "label policy, allow_all: none", tenancy: Tenancy{Header: "X-Scope-OrgID", Tenant: tenantOf, LabelPolicy: true}, user: "root", policy: true, allowAll: true, wantStatus: 200,
			wantHeaders: map[string][]string{"X-Scope-Orgid": {"org-root"}, "X-Prom-Label-Policy": nil}},
		{name: "label policy unknown: fail closed", tenancy: Tenancy{Header: "X-Scope-OrgID", Tenant: tenantOf, LabelPolicy: true}, user: "alice", wantStatus: 500, wantError: "label policy of this request is unknown"},
		{name: "thanos tenant", tenancy: Tenancy{Header: "THANOS-TENANT", Tenant: tenantOf}, user: "alice", policy: true, wantStatus: 200,
			wantHeaders: map[string][]string{"Thanos-Tenant": {"org-alice"}, "X-Scope-Orgid": nil, "X-Prom-Label-Policy": nil}},
		{name: "thanos custom header", tenancy: Tenancy{Header: "X-Tenant", Tenant: tenantOf}, user: "alice", policy: true, wantStatus: 200,
			wantHeaders: map[string][]string{"X-Tenant": {"org-alice"}, "Thanos-Tenant": nil}},
		{name: "invalid tenant", tenancy: Tenancy{Header: "X-Scope-OrgID", Tenant: tenantOf}, user: "a|b", policy: true, wantStatus: 403, wantError: `user "a|b" has no valid tenant for the upstream: tenant ID "a|b": "|" would name several tenants`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got http.Header
			requests := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Clone()
				requests++
				io.WriteString(w, "ok")
			}))
			defer srv.Close()
			base, _ := url.Parse(srv.URL)
			tn := tc.tenancy
			u, err := New(Options{URL: base, Tenancy: &tn,
				HeaderNames: []string{"X-Scope-OrgID", "THANOS-TENANT", "X-Prom-Label-Policy", tn.Header}}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			req := httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
			for _, h := range []string{"X-Scope-OrgID", "THANOS-TENANT", "X-Tenant"} {
				req.Header.Add(h, "someone-else")
				req.Header.Add(h, "another")
			}
			req.Header.Set("X-Prom-Label-Policy", "someone-else:%7B%7D")
			ctx := identity.NewContext(req.Context(), identity.Identity{User: tc.user})
			if tc.policy {
				ctx = WithPolicy(ctx, tc.allowAll, selectors(t, `{team="a"}`, `{job="x"}`))
			}
			rec := httptest.NewRecorder()
			u.ServeHTTP(rec, req.WithContext(ctx))
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantStatus != 200 {
				var env struct{ Status, Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Status != "error" || !strings.Contains(env.Error, tc.wantError) {
					t.Errorf("answer %s, want an error envelope containing %q", rec.Body, tc.wantError)
				}
				if requests != 0 {
					t.Errorf("a refused request reached the upstream")
				}
				return
			}
			for name, want := range tc.wantHeaders {
				if v := got.Values(name); !reflect.DeepEqual(v, want) && !(len(v) == 0 && want == nil) {
					t.Errorf("upstream %s: %q, want %q", name, v, want)
				}
			}
		})
	}
}
