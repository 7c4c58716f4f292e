package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/config"
	"github.com/promgate/promgate/internal/identity"
)

func whoamiServer(t *testing.T) (*Server, *int) {
	t.Helper()
	return whoamiServerWith(t, "")
}

// whoamiServerWith is whoamiServer with more keys for the prometheus
// upstream (written inside its flow mapping, after url).
func whoamiServerWith(t *testing.T, promKeys string) (*Server, *int) {
	t.Helper()
	calls := 0
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ }))
	t.Cleanup(up.Close)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg, err := config.Parse(fmt.Appendf(nil, `upstreams:
  prometheus: {url: %s%s}
authentication:
  basic_auth_users: {alice: %s, bob: %s, root: %s}
groups:
  team-a: [alice]
policies:
  - {name: a, subjects: ["group:team-a"], selectors: ['{team="a"}'], limits: {upstream_time: 0.5, max_query_length: 64}}
  - {name: bob, subjects: ["user:bob"], selectors: ['{job="{{ .User }}"}', '{env="dev", team!="x"}']}
  - {name: admins, subjects: ["user:root"], allow_all: true}
`, up.URL, promKeys, hash, hash, hash))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	st, err := Build(cfg, BuildOptions{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{Logger: logger, Registry: prometheus.NewRegistry()}, st), &calls
}

func TestWhoamiPage(t *testing.T) {
	srv, calls := whoamiServer(t)
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	for _, tc := range []struct {
		name, user, method, accept, query string
		status                            int
		want, absent                      []string
	}{{
		name: "page of a restricted user", user: "alice", accept: browser, status: 200,
		want: []string{
			`<td id="user">alice</td>`, `<td id="method">basic</td>`, `<td id="groups">team-a</td>`,
			`<code>{team=&#34;a&#34;}</code>`, `label &#34;team&#34; is &#34;a&#34;`, `name="explain"`,
			`<li><code>upstream_time: 0.5 seconds of upstream time per second, saved up to 30s (upstream_time_burst)</code></li>`,
			`<li><code>max_query_length: 64 bytes</code></li>`,
		},
		absent: []string{`id="for-user"`, `id="result"`, "<script"},
	}, {
		name: "a query over a guard is refused on the page", user: "alice", accept: browser, status: 200,
		query: "explain=" + url.QueryEscape(`sum by (instance, job, namespace) (rate(http_requests_total[5m]))`),
		want:  []string{`id="refusal">Refused: query is 65 bytes long, over the limit of 64 bytes (max_query_length)`},
	}, {
		name: "no limits, no list", user: "bob", accept: browser, status: 200,
		absent: []string{`id="limits"`},
	}, {
		name: "query rewritten on the page", user: "alice", accept: browser, status: 200,
		query: "explain=" + url.QueryEscape(`rate(x[5m])`),
		want:  []string{`<pre class="sent">rate({__name__=&#34;x&#34;,team=&#34;a&#34;}[5m])</pre>`},
	}, {
		name: "POSTed form", user: "alice", method: "POST", accept: browser, status: 200,
		query: "explain=up&match=" + url.QueryEscape(`{job="j"}`),
		want:  []string{`<pre class="sent">{__name__=&#34;up&#34;,team=&#34;a&#34;}</pre>`, `<code>{job=&#34;j&#34;, team=&#34;a&#34;}</code>`},
	}, {
		name: "a refusal is shown", user: "alice", accept: browser, status: 200,
		query: "explain=" + url.QueryEscape(`up{`),
		want:  []string{`id="refusal">Refused: invalid parameter &#34;query&#34;`},
	}, {
		name: "everything the user typed is escaped", user: "alice", accept: browser, status: 200,
		query:  "explain=" + url.QueryEscape(`</textarea><script>alert(1)</script>`) + "&match=" + url.QueryEscape(`"><img src=x>`),
		want:   []string{`&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;`, `value="&#34;&gt;&lt;img src=x&gt;"`},
		absent: []string{"<script>", "<img"},
	}, {
		name: "restricted user cannot explain for another", user: "alice", accept: browser, status: 403,
		query:  "explain=up&user=bob",
		want:   []string{`id="error">Only unrestricted`},
		absent: []string{`job=&#34;bob&#34;`, `id="result"`},
	}, {
		name: "admin explains for another user", user: "root", accept: browser, status: 200,
		query: "explain=up&user=bob",
		want: []string{
			`id="for-user"`, `<span id="target-user">bob</span>`, `<td id="target-policies">bob</td>`,
			`<code>{job=&#34;bob&#34;}</code>`,
			`<pre class="sent">({__name__=&#34;up&#34;,job=&#34;bob&#34;} or {__name__=&#34;up&#34;,env=&#34;dev&#34;,team!=&#34;x&#34;})</pre>`,
		},
	}, {
		name: "admin explains for asserted groups", user: "root", accept: browser, status: 200,
		query: "explain=up&user=zed&groups=team-a",
		want:  []string{`<td id="target-groups">team-a</td>`, `<pre class="sent">{__name__=&#34;up&#34;,team=&#34;a&#34;}</pre>`},
	}, {
		name: "admin explains for a user without policy", user: "root", accept: browser, status: 200,
		query: "user=nobody",
		want:  []string{`<td id="target-policies">(none)</td>`, `Refused: user &#34;nobody&#34;: no policy`},
	}, {
		name: "admin sees everything", user: "root", accept: browser, status: 200,
		query: "explain=up",
		want:  []string{`id="access">Everything`, `<pre class="sent">up</pre>`},
	}, {
		name: "JSON for API clients", user: "alice", accept: "application/json", status: 200,
		query: "explain=up",
		want:  []string{`"status":"success"`, `"selectors":["{team=\"a\"}"]`},
	}, {
		name: "JSON without Accept", user: "alice", status: 200,
		want: []string{`"user":"alice"`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			var req *http.Request
			if method == "POST" {
				req = httptest.NewRequest(method, "/-/whoami", strings.NewReader(tc.query))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				req = httptest.NewRequest(method, "/-/whoami?"+tc.query, nil)
			}
			req.SetBasicAuth(tc.user, "pw")
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			rec := httptest.NewRecorder()
			before := *calls
			srv.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %.500s", rec.Code, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("no %q in:\n%s", w, body)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(body, a) {
					t.Errorf("%q in:\n%s", a, body)
				}
			}
			if *calls != before {
				t.Errorf("the upstream was called")
			}
			if tc.accept == browser {
				if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
					t.Errorf("Content-Security-Policy %q", csp)
				}
			} else if !json.Valid(rec.Body.Bytes()) {
				t.Errorf("not JSON: %s", body)
			}
		})
	}
}

func TestSelectorInWords(t *testing.T) {
	st, _ := whoamiServer(t)
	ex, err := st.state.Load().Explain(identity.Identity{User: "bob"}, ExplainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`series whose label "job" is "bob"`,
		`series whose label "env" is "dev" and whose label "team" is not "x"`,
	}
	if fmt.Sprint(ex.Words) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", ex.Words, want)
	}
}

func TestWantsHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                  false,
		"*/*":                               false,
		"application/json":                  false,
		"text/html":                         true,
		"application/json, text/html;q=0.5": true,
		"text/htmlx":                        false,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", accept)
		if got := wantsHTML(r); got != want {
			t.Errorf("Accept %q: %v, want %v", accept, got, want)
		}
	}
}

// TestWhoamiPushdown: with the policy handed down, the page shows the query
// as sent and the extra_filters[] beside it.
func TestWhoamiPushdown(t *testing.T) {
	srv, calls := whoamiServerWith(t, ", enforcement: victoriametrics")
	q := url.Values{"explain": {"WITH (x = rate(y)) x"}}
	req := httptest.NewRequest(http.MethodGet, "/-/whoami?"+q.Encode(), nil)
	req.SetBasicAuth("bob", "pw")
	req.Header.Set("Accept", "text/html")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, body)
	}
	for _, want := range []string{
		`<pre class="sent">WITH (x = rate(y)) x</pre>`,
		`<ul id="extra-filters"><li><code>{job=&#34;bob&#34;}</code></li><li><code>{env=&#34;dev&#34;, team!=&#34;x&#34;}</code></li></ul>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in:\n%s", want, body)
		}
	}
	if *calls != 0 {
		t.Errorf("%d upstream calls", *calls)
	}
}
