package e2e

// The oracle test: SPEC section 1 made executable. For every test policy, the
// answers promgate gives its user on the shared Prometheus (which holds every
// series) must equal the answers of an oracle Prometheus that holds only the
// series the policy allows.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// testPolicy is one tenant of the oracle test: a user, the configuration
// policies that name them, and so the selectors of their oracle.
type testPolicy struct {
	id    string
	about string // what the policy exercises
	user  string
	// group, when set, makes the user a member of this group and the
	// configuration policies name the group instead of the user.
	group    string
	allowAll bool
	// rules are the selectors of each configuration policy naming the user;
	// several rules for one user are united, like the selectors of one rule.
	rules [][]string
}

// password is the basic-auth password of a test user.
func (p *testPolicy) password() string { return "pw-" + p.user }

// oracleSelectors are the selectors the oracle's data is filtered with: the
// union of all rules, with {{ .User }} substituted (nil for allow_all).
func (p *testPolicy) oracleSelectors() ([]Selector, error) {
	if p.allowAll {
		return nil, nil
	}
	var texts []string
	for _, rule := range p.rules {
		for _, s := range rule {
			texts = append(texts, strings.ReplaceAll(s, "{{ .User }}", p.user))
		}
	}
	return ParseSelectors(texts...)
}

// testPolicies are the tenants of the oracle test.
var testPolicies = []*testPolicy{
	{id: "p0", about: "allow_all admin: promgate must be transparent", user: "root", allowAll: true},
	{id: "p1", about: "one equality selector, granted through a group", user: "ann", group: "team-a",
		rules: [][]string{{`{team="a"}`}}},
	{id: "p2", about: "two selectors from two policies naming the same user, overlapping", user: "bert",
		rules: [][]string{{`{team="b"}`}, {`{__name__=~"node_.*", shared="true"}`}}},
	{id: "p3", about: "GEM-style exclusion of secret series of one metric", user: "gem",
		rules: [][]string{{`{secret!="true", __name__="sensitive_requests_total"}`, `{__name__!="sensitive_requests_total"}`}}},
	{id: "p4", about: "__name__ regex union: series differing only in name come from different selectors", user: "nora",
		rules: [][]string{{`{__name__=~"foo_a|foo_c", team="a"}`, `{__name__=~"foo_b|http_requests_total", team=~"a|b"}`}}},
	{id: "p5", about: "templated per-user selector", user: "alice",
		rules: [][]string{{`{namespace="ns-{{ .User }}"}`}}},
	{id: "p6", about: "three selectors with negative matchers", user: "neg",
		rules: [][]string{{`{team="c", env!="prod"}`, `{__name__=~"http_request.*", code!~"5..", team="a"}`, `{job="node", instance=~"host-0[0-4]:.*", team!="c"}`}}},
}

// knownDifferences are the (policy, query) pairs whose answers cannot be
// equal, keyed "POLICY QUERY" ("* QUERY" for every policy), with the reason.
// Anything unequal that is not listed fails the test. Keep it tiny.
var knownDifferences = map[string]string{}

// Evaluation times of the corpus: instant queries at three times, range
// queries over the last hour.
var instantTimes = []struct {
	name string
	t    int64
}{
	{"t-90m", BaseTime - 90*60},
	{"t-30m", BaseTime - 30*60},
	{"t", BaseTime},
}

const (
	rangeStart = BaseTime - 3600
	rangeEnd   = BaseTime
	rangeStep  = 60
)

// testCase is one request sent to both the gateway and the oracle.
type testCase struct {
	policy *testPolicy
	kind   answerKind
	desc   string // how it is evaluated: "instant t-30m", "range 1h/60s", "series", …
	query  string // the expression, or the endpoint and match[]: the allow-list key
	method string
	path   string
	params url.Values
	gzip   bool // ask for a gzip-compressed answer
}

// outcome is the result of running one case.
type outcome struct {
	c       testCase
	diff    string // "" when equal
	oracle  response
	gateway response
}

// target is where a policy's requests go: its oracle and the gateway.
type target struct {
	oracle, gateway endpoint
}

func TestOracle(t *testing.T) {
	skipIfShort(t)
	prometheus := requireTool(t, "prometheus")
	promtool := requireTool(t, "promtool")
	var promgate string
	if directMode() {
		t.Log("PROMGATE_E2E_DIRECT is set: comparing Prometheus with itself, promgate is not used")
	} else {
		promgate = requirePromgate(t)
	}
	corpus := readCorpus(t, filepath.Join("testdata", "queries.txt"))
	start := time.Now()

	// Data: one shared TSDB with every series and one oracle TSDB per
	// restricted policy.
	ds := Generate()
	tmp := t.TempDir()
	type tsdb struct {
		name   string
		data   *Dataset
		server *server
	}
	dbs := []*tsdb{{name: "shared", data: ds}}
	oracleOf := map[string]*tsdb{}
	for _, p := range testPolicies {
		sels, err := p.oracleSelectors()
		if err != nil {
			t.Fatalf("policy %s: %v", p.id, err)
		}
		if p.allowAll {
			oracleOf[p.id] = dbs[0] // the shared Prometheus is the admin's oracle
			continue
		}
		db := &tsdb{name: "oracle-" + p.id, data: ds.Filter(sels)}
		dbs = append(dbs, db)
		oracleOf[p.id] = db
	}
	errs := parallel(len(dbs), 3, func(i int) error {
		db := dbs[i]
		om := filepath.Join(tmp, db.name+".om")
		dataDir := filepath.Join(tmp, db.name, "data")
		if err := db.data.WriteOpenMetricsFile(om); err != nil {
			return err
		}
		if err := backfill(promtool, om, dataDir); err != nil {
			return err
		}
		os.Remove(om)
		s, err := startPrometheus(t, prometheus, db.name, dataDir)
		db.server = s
		return err
	})
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	// Every TSDB must hold exactly the series it was given.
	for _, db := range dbs {
		if err := checkSeriesCount(endpoint{name: db.name, url: db.server.url}, len(db.data.AllSeries())); err != nil {
			t.Fatalf("%s: %v", db.name, err)
		}
	}
	t.Logf("data: %d series, %d TSDBs loaded and checked in %v", len(ds.AllSeries()), len(dbs), time.Since(start).Round(time.Millisecond))

	// The gateway: promgate in front of the shared Prometheus, or in direct
	// mode the Prometheus that the oracle endpoint already is.
	targets := map[string]target{}
	var gw *server
	if !directMode() {
		var err error
		gw, err = startPromgate(t, promgate, tmp, dbs[0].server.url)
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range testPolicies {
		o := endpoint{name: oracleOf[p.id].name, url: oracleOf[p.id].server.url}
		g := o
		if passthroughMode() {
			g = endpoint{name: "shared", url: dbs[0].server.url}
		}
		if gw != nil {
			g = endpoint{name: "promgate", url: gw.url, user: p.user, pass: p.password()}
		}
		targets[p.id] = target{oracle: o, gateway: g}
	}

	holdForDebugging(t, targets)

	var cases []testCase
	for _, p := range testPolicies {
		cases = append(cases, queryCases(p, corpus)...)
		cases = append(cases, metadataCases(p)...)
	}
	runStart := time.Now()
	outcomes := runCases(cases, targets, 4)
	t.Logf("ran %d cases (%d queries x %d evaluations + metadata, %d policies) in %v",
		len(cases), len(corpus), len(instantTimes)+1, len(testPolicies), time.Since(runStart).Round(time.Millisecond))

	for _, p := range testPolicies {
		t.Run(p.id, func(t *testing.T) {
			reportPolicy(t, p, outcomes)
		})
	}
	checkKnownDifferencesUsed(t, outcomes)
	if gw != nil && t.Failed() {
		t.Logf("promgate log (end):\n%s", gw.log())
	}
}

// checkKnownDifferencesUsed fails on allow-list entries that no longer match
// a difference, so that the list only shrinks as promgate improves.
func checkKnownDifferencesUsed(t *testing.T, outcomes []outcome) {
	used := map[string]bool{}
	for _, o := range outcomes {
		if o.diff == "" {
			continue
		}
		for _, key := range []string{o.c.policy.id + " " + o.c.query, "* " + o.c.query} {
			if _, ok := knownDifferences[key]; ok {
				used[key] = true
			}
		}
	}
	for key := range knownDifferences {
		if !used[key] {
			t.Errorf("knownDifferences entry %q matches no difference any more: remove it", key)
		}
	}
}

// holdForDebugging keeps the servers up for PROMGATE_E2E_HOLD (a duration
// such as 10m) after logging their addresses, so that a human can query them.
func holdForDebugging(t *testing.T, targets map[string]target) {
	hold := os.Getenv("PROMGATE_E2E_HOLD")
	if hold == "" {
		return
	}
	d, err := time.ParseDuration(hold)
	if err != nil {
		t.Fatalf("PROMGATE_E2E_HOLD: %v", err)
	}
	for _, p := range testPolicies {
		tg := targets[p.id]
		t.Logf("%s: oracle %s, gateway %s (user %q, password %q)", p.id, tg.oracle.url, tg.gateway.url, tg.gateway.user, tg.gateway.pass)
	}
	t.Logf("holding the servers for %v (interrupt to stop them and go on)", d)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// startPromgate writes promgate's configuration for the test policies and
// starts it in front of the shared Prometheus.
func startPromgate(t *testing.T, bin, dir, upstream string) (*server, error) {
	cfg, err := promgateConfig(upstream)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return nil, err
	}
	return startServer(t, "promgate", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + path, "--web.listen-address=" + addr}
	})
}

// promgateConfig renders promgate.yml (SPEC section 4) for testPolicies.
func promgateConfig(upstream string) ([]byte, error) {
	type upstreamCfg struct {
		URL string `yaml:"url"`
	}
	type policyCfg struct {
		Name      string   `yaml:"name"`
		Subjects  []string `yaml:"subjects"`
		Selectors []string `yaml:"selectors,omitempty"`
		AllowAll  bool     `yaml:"allow_all,omitempty"`
	}
	var cfg struct {
		Upstreams struct {
			Prometheus upstreamCfg `yaml:"prometheus"`
		} `yaml:"upstreams"`
		Authentication struct {
			BasicAuthUsers map[string]string `yaml:"basic_auth_users"`
		} `yaml:"authentication"`
		Groups   map[string][]string `yaml:"groups,omitempty"`
		Policies []policyCfg         `yaml:"policies"`
	}
	cfg.Upstreams.Prometheus.URL = upstream
	cfg.Authentication.BasicAuthUsers = map[string]string{}
	cfg.Groups = map[string][]string{}
	for _, p := range testPolicies {
		hash, err := bcrypt.GenerateFromPassword([]byte(p.password()), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		cfg.Authentication.BasicAuthUsers[p.user] = string(hash)
		subject := "user:" + p.user
		if p.group != "" {
			cfg.Groups[p.group] = append(cfg.Groups[p.group], p.user)
			subject = "group:" + p.group
		}
		if p.allowAll {
			cfg.Policies = append(cfg.Policies, policyCfg{Name: p.id, Subjects: []string{subject}, AllowAll: true})
			continue
		}
		for i, sels := range p.rules {
			cfg.Policies = append(cfg.Policies, policyCfg{Name: fmt.Sprintf("%s-%d", p.id, i+1), Subjects: []string{subject}, Selectors: sels})
		}
	}
	return yaml.Marshal(&cfg)
}

// readCorpus reads the query corpus: one PromQL expression per line; blank
// lines and lines starting with # are ignored. Duplicates are an error.
func readCorpus(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if prev, ok := seen[line]; ok {
			t.Fatalf("%s:%d: duplicate of line %d: %s", path, n, prev, line)
		}
		seen[line] = n
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// queryCases evaluates every corpus expression as an instant query (GET) at
// each of instantTimes and as a range query (POST form) over the last hour.
// The instant query at t-30m and the range query ask for gzip.
func queryCases(p *testPolicy, corpus []string) []testCase {
	var out []testCase
	for _, q := range corpus {
		for i, it := range instantTimes {
			out = append(out, testCase{policy: p, kind: kindQuery, desc: "instant " + it.name, query: q,
				method: http.MethodGet, path: "/api/v1/query", gzip: i == 1,
				params: url.Values{"query": {q}, "time": {strconv.FormatInt(it.t, 10)}}})
		}
		out = append(out, testCase{policy: p, kind: kindQuery, desc: "range 1h/60s", query: q,
			method: http.MethodPost, path: "/api/v1/query_range", gzip: true,
			params: url.Values{"query": {q}, "start": {strconv.Itoa(rangeStart)}, "end": {strconv.Itoa(rangeEnd)}, "step": {strconv.Itoa(rangeStep)}}})
	}
	return out
}

// metadataCases compare /api/v1/series, /api/v1/labels and
// /api/v1/label/NAME/values, with and without match[].
func metadataCases(p *testPolicy) []testCase {
	full := url.Values{"start": {strconv.Itoa(StartTime)}, "end": {strconv.Itoa(BaseTime)}}
	with := func(base url.Values, matches ...string) url.Values {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		if len(matches) > 0 {
			v["match[]"] = matches
		}
		return v
	}
	describe := func(path string, matches []string) string {
		if len(matches) == 0 {
			return path
		}
		return path + " match[]=" + strings.Join(matches, " match[]=")
	}
	var out []testCase
	seriesMatches := [][]string{
		{`{__name__=~"http.*"}`},
		{`up`},
		{`{team="b"}`},
		{`{__name__=~"foo_.*"}`},
		{`{__name__=~".+"}`},
		{`foo_a`, `{team="c"}`},
		{`sensitive_requests_total`},
		{`{__name__=~"node_load.*", shared="true"}`},
		{`{namespace=~"ns-alice.*"}`},
		{`go_goroutines`},
		{`{__name__="nonexistent_metric"}`},
	}
	for _, m := range seriesMatches {
		out = append(out, testCase{policy: p, kind: kindSeries, desc: "series", query: describe("/api/v1/series", m),
			method: http.MethodGet, path: "/api/v1/series", params: with(full, m...)})
	}
	// foo_c has no samples in the last 30 minutes.
	recent := url.Values{"start": {strconv.Itoa(BaseTime - 1800)}, "end": {strconv.Itoa(BaseTime)}}
	out = append(out, testCase{policy: p, kind: kindSeries, desc: "series last 30m", query: describe("/api/v1/series", []string{`{__name__=~"foo_.*"}`}) + " (last 30m)",
		method: http.MethodPost, path: "/api/v1/series", params: with(recent, `{__name__=~"foo_.*"}`)})
	// Without start and end, Prometheus looks at all of its data.
	out = append(out,
		testCase{policy: p, kind: kindSeries, desc: "series, no time range", query: describe("/api/v1/series", []string{`{__name__=~"foo_.*"}`}) + " (no time range)",
			method: http.MethodGet, path: "/api/v1/series", params: with(nil, `{__name__=~"foo_.*"}`)},
		testCase{policy: p, kind: kindNames, desc: "labels, no time range", query: "/api/v1/labels (no time range)",
			method: http.MethodPost, path: "/api/v1/labels", params: with(nil)},
		testCase{policy: p, kind: kindNames, desc: "label values, no time range", query: "/api/v1/label/__name__/values (no time range)",
			method: http.MethodGet, path: "/api/v1/label/__name__/values", params: with(nil)},
	)
	// The series endpoint requires match[]: the same 400 from both.
	out = append(out, testCase{policy: p, kind: kindSeries, desc: "series without match[]", query: "/api/v1/series",
		method: http.MethodGet, path: "/api/v1/series", params: with(full)})

	nameMatches := [][]string{nil, {`{__name__=~"foo_.*"}`}, {`up`}, {`{team="b"}`}, {`{job="infra"}`}, {`{job="api"}`, `{__name__=~"node_load.*"}`}}
	for _, m := range nameMatches {
		out = append(out, testCase{policy: p, kind: kindNames, desc: "labels", query: describe("/api/v1/labels", m),
			method: http.MethodGet, path: "/api/v1/labels", params: with(full, m...)})
	}
	valueMatches := [][]string{nil, {`{job="api"}`}, {`{__name__=~"foo_.*"}`}, {`{job="infra"}`}}
	for _, name := range []string{"__name__", "team", "namespace", "secret", "shared", "instance", "le"} {
		for _, m := range valueMatches {
			path := "/api/v1/label/" + name + "/values"
			out = append(out, testCase{policy: p, kind: kindNames, desc: "label values", query: describe(path, m),
				method: http.MethodGet, path: path, params: with(full, m...)})
		}
	}
	return out
}

// runCases sends every case to its policy's oracle and gateway with at most
// workers cases in flight.
func runCases(cases []testCase, targets map[string]target, workers int) []outcome {
	out := make([]outcome, len(cases))
	parallel(len(cases), workers, func(i int) error {
		c := cases[i]
		tg := targets[c.policy.id]
		ctx := context.Background()
		client := httpClient
		if c.gzip {
			client = gzipClient
		}
		o := tg.oracle.callWith(ctx, client, c.method, c.path, c.params)
		g := tg.gateway.callWith(ctx, client, c.method, c.path, c.params)
		out[i] = outcome{c: c, diff: compareAnswers(c.kind, o, g), oracle: o, gateway: g}
		return nil
	})
	return out
}

// reportPolicy logs the policy's score and fails on unexpected differences.
// Differences are grouped by request (the evaluations of one expression go
// together); the first few are shown with both answers, the rest listed.
func reportPolicy(t *testing.T, p *testPolicy, outcomes []outcome) {
	var total, equal, allowed int
	type group struct {
		first outcome
		descs []string
	}
	var order []string
	groups := map[string]*group{}
	for _, o := range outcomes {
		if o.c.policy != p {
			continue
		}
		total++
		switch {
		case o.diff == "":
			equal++
		case knownDifference(p.id, o.c.query) != "":
			allowed++
			t.Logf("known difference, %s %s: %s (%s)", o.c.desc, o.c.query, o.diff, knownDifference(p.id, o.c.query))
		default:
			key := o.c.path + " " + o.c.query
			if o.c.kind == kindQuery {
				key = o.c.query
			}
			g, ok := groups[key]
			if !ok {
				g = &group{first: o}
				groups[key] = g
				order = append(order, key)
			}
			g.descs = append(g.descs, o.c.desc)
		}
	}
	t.Logf("policy %s: equal %d / total %d (known differences %d) — %s", p.id, equal, total, allowed, p.about)
	if len(order) == 0 {
		return
	}
	const show = 6
	for i, key := range order {
		if i == show {
			break
		}
		g := groups[key]
		f := g.first
		t.Errorf("policy %s (user %s): %s\n    query:   %s\n    differs: %s\n    first:   %s %s?%s\n    diff:    %s\n    oracle:  %s\n    gateway: %s",
			p.id, p.user, f.c.path, f.c.query, strings.Join(g.descs, ", "), f.c.method, f.c.path, f.c.params.Encode(),
			f.diff, showResponse(f.oracle), showResponse(f.gateway))
	}
	if len(order) > show {
		var rest []string
		for _, key := range order[show:] {
			rest = append(rest, "\n    "+key+"  ["+strings.Join(groups[key].descs, ", ")+"]")
		}
		t.Errorf("policy %s: %d more requests differ:%s", p.id, len(order)-show, truncate(strings.Join(rest, ""), 6000))
	}
	t.Errorf("policy %s: %d of %d requests (%d expressions/endpoints) differ unexpectedly", p.id, total-equal-allowed, total, len(order))
}

// knownDifference returns the allow-list reason for a policy and query.
func knownDifference(policy, query string) string {
	if r, ok := knownDifferences[policy+" "+query]; ok {
		return r
	}
	return knownDifferences["* "+query]
}

func showResponse(r response) string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.code, truncate(string(r.body), 600))
}

// checkSeriesCount asserts that a Prometheus holds exactly want series over
// the generated time range.
func checkSeriesCount(e endpoint, want int) error {
	params := url.Values{"match[]": {`{__name__=~".+"}`}, "start": {strconv.Itoa(StartTime)}, "end": {strconv.Itoa(BaseTime)}}
	r := e.call(context.Background(), http.MethodGet, "/api/v1/series", params)
	if r.err != nil {
		return r.err
	}
	var env struct {
		Status string              `json:"status"`
		Data   []map[string]string `json:"data"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil || env.Status != "success" {
		return fmt.Errorf("series check: %d %s", r.code, truncate(string(r.body), 300))
	}
	if len(env.Data) != want {
		return fmt.Errorf("holds %d series, generated %d", len(env.Data), want)
	}
	return nil
}

// parallel runs f(0..n-1) with at most limit calls at once and returns the
// errors.
func parallel(n, limit int, f func(i int) error) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, limit)
	)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}
