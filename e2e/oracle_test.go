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

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/promgate/promgate/internal/testenv"
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
	// floor is the least the corpus must prove for this policy; see
	// checkFloor.
	floor floor
	// utf8 policies name UTF-8 labels: they run where the data has them
	// (Prometheus 3; see utf8_test.go).
	utf8 bool
	// nativeFloor is the floor of the answers to the corpus' native
	// histogram section alone (Prometheus 3; see native_histograms_test.go).
	nativeFloor nativeFloor
}

// floor is what a policy's answers must show for equality with the oracle
// to mean anything: enough answers with data, and enough answers that the
// shared Prometheus (what a gateway enforcing nothing would return) answers
// differently. The figures are the counts of the corpus and data of today
// (1466 requests per policy) less about 10 %, so that adding to the corpus or
// the data never trips them but losing a part of what it proves does. The
// shape of the policy sets them: the GEM-style exclusion (p3) hides only the
// secret series of one metric, so few answers differ; the name-regex union
// (p4) and the per-user namespace (p5) see little, so fewer hold data.
type floor struct {
	nonEmpty  int // answers of the oracle with at least one series, label set or name
	differing int // answers of the oracle that differ from the shared Prometheus'
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
	{id: "p0", about: "allow_all admin: promgate must be transparent", user: "root", allowAll: true,
		floor: floor{nonEmpty: 1120}, nativeFloor: nativeFloor{nonEmpty: 176, histograms: 105}},
	{id: "p1", about: "one equality selector, granted through a group", user: "ann", group: "team-a",
		rules: [][]string{{`{team="a"}`}}, floor: floor{nonEmpty: 1090, differing: 1010}, nativeFloor: nativeFloor{nonEmpty: 172, histograms: 100, differing: 170}},
	{id: "p2", about: "two selectors from two policies naming the same user, overlapping", user: "bert",
		rules: [][]string{{`{team="b"}`}, {`{__name__=~"node_.*", shared="true"}`}}, floor: floor{nonEmpty: 1110, differing: 1010}, nativeFloor: nativeFloor{nonEmpty: 172, histograms: 100, differing: 165}},
	{id: "p3", about: "GEM-style exclusion of secret series of one metric", user: "gem",
		rules: [][]string{{`{secret!="true", __name__="sensitive_requests_total"}`, `{__name__!="sensitive_requests_total"}`}}, floor: floor{nonEmpty: 1120, differing: 80}, nativeFloor: nativeFloor{nonEmpty: 176, histograms: 105}},
	{id: "p4", about: "__name__ regex union: series differing only in name come from different selectors", user: "nora",
		rules: [][]string{{`{__name__=~"foo_a|foo_c", team="a"}`, `{__name__=~"foo_b|http_requests_total", team=~"a|b"}`}}, floor: floor{nonEmpty: 630, differing: 1050}, nativeFloor: nativeFloor{differing: 172}},
	{id: "p5", about: "templated per-user selector", user: "alice",
		rules: [][]string{{`{namespace="ns-{{ .User }}"}`}}, floor: floor{nonEmpty: 790, differing: 1060}, nativeFloor: nativeFloor{nonEmpty: 176, histograms: 105, differing: 172}},
	{id: "p6", about: "selectors with negative matchers, two of them alike but for one equality (promgate unites those into one regex term)", user: "neg",
		rules: [][]string{{`{team="c", env!="prod"}`, `{namespace="ns-bob", env!="prod"}`, `{namespace="ns-dave", env!="prod"}`, `{__name__=~"http_request.*", code!~"5..", team="a"}`, `{job="node", instance=~"host-0[0-4]:.*", team!="c"}`}}, floor: floor{nonEmpty: 1110, differing: 1040}, nativeFloor: nativeFloor{nonEmpty: 172, histograms: 100, differing: 170}},
	{id: "p7", about: "UTF-8 names: a dotted label, and a regex on dotted metric names whose series differ only in name", user: "otto", utf8: true,
		rules: [][]string{{`{"service.name"="checkout"}`, `{__name__=~"http\\.server\\..*", team="a"}`}}, floor: floor{nonEmpty: 290, differing: 1200}, nativeFloor: nativeFloor{nonEmpty: 14, histograms: 7, differing: 170}},
}

// knownDifferences are the (policy, query) pairs whose answers cannot be
// equal, keyed "POLICY QUERY" ("* QUERY" for every policy; "POLICY (DESC)
// QUERY" for one evaluation, DESC as in testCase.desc), with the reason.
// Anything unequal that is not listed fails the test. Keep it tiny. The
// test sets it for the version under test: every entry today is one of
// Prometheus 2.x's (prometheus2Differences); Prometheus 3 has none.
var knownDifferences map[string]string

var prometheus2Differences = map[string]string{
	// Prometheus 2.x words a parse error of /api/v1/query_range without the
	// "invalid parameter \"query\": " prefix it puts on /api/v1/query;
	// promgate, which parses the query of a restricted user itself, uses the
	// prefix on both.
	"* (range 1h/60s) sum(":                        rangeParsePrefix,
	"* (range 1h/60s) rate(foo_a)":                 rangeParsePrefix,
	"* (range 1h/60s) foo_a[5m] + 1":               rangeParsePrefix,
	"* (range 1h/60s) {__name__=~\".*\"}":          rangeParsePrefix,
	"* (range 1h/60s) {team!=\"a\"}":               rangeParsePrefix,
	"* (range 1h/60s) nonexistent_function(foo_a)": rangeParsePrefix,
	"* (range 1h/60s) count_values(1, up)":         rangeParsePrefix,
	"* (range 1h/60s) {team=\"\"}":                 rangeParsePrefix,
	// Prometheus 2.x reports an invalid regular expression in the anchored
	// form it compiles (`^(?:()$`), promgate's newer parser in the form written.
	"* foo_a{x=~\"(\"}": "regexp error wording of Prometheus 2.x (anchored) differs from promgate's parser; the range query also lacks the prefix",
}

// prometheus3Features are the --enable-feature values the Prometheus 3
// servers of the oracle test run with, and promgate is told of: every
// PromQL feature of 3.16, so that the corpus' Prometheus 3 section proves
// each construct enforced with the semantics the features give it.
var prometheus3Features = []string{
	"promql-experimental-functions",
	"promql-binop-fill-modifiers",
	"promql-unquoted-utf8-names",
	"promql-delayed-name-removal",
	"type-and-unit-labels",
}

// expectedRefusals are the (policy, query) pairs promgate refuses because it
// cannot enforce them exactly under that policy (a 400 saying why), with the
// reason. Such a refusal is not a difference; a refusal not listed is one,
// and so is a listed pair that is answered. Keyed like knownDifferences.
var expectedRefusals = map[string]string{
	// info() joins target_info (or the info metrics it names) by job and
	// instance; these policies show some series of those names and not
	// others, and a policy matcher put in info()'s second argument would
	// change the labels it adds. p3 (shows every such series) and p4 (none)
	// are enforced.
	"p1 info(up)": refusedInfo,
	"p2 info(up)": refusedInfo,
	"p5 info(up)": refusedInfo,
	"p6 info(up)": refusedInfo,
	`p1 info(up{job="node"}, {__name__="node_cpu_seconds_total", cpu="0", mode="idle"})`: refusedInfo,
	`p2 info(up{job="node"}, {__name__="node_cpu_seconds_total", cpu="0", mode="idle"})`: refusedInfo,
	`p5 info(up{job="node"}, {__name__="node_cpu_seconds_total", cpu="0", mode="idle"})`: refusedInfo,
	`p6 info(up{job="node"}, {__name__="node_cpu_seconds_total", cpu="0", mode="idle"})`: refusedInfo,
	`p1 info(http_requests_total{code="500"}, {__name__=~"up|node_load1", job="api"})`:   refusedInfo,
	`p2 info(http_requests_total{code="500"}, {__name__=~"up|node_load1", job="api"})`:   refusedInfo,
	`p5 info(http_requests_total{code="500"}, {__name__=~"up|node_load1", job="api"})`:   refusedInfo,
	`p6 info(http_requests_total{code="500"}, {__name__=~"up|node_load1", job="api"})`:   refusedInfo,
	// p7 (UTF-8 names, Prometheus 3 only) shows some series of those names
	// too: its dotted label selects a part of them.
	"p7 info(up)": refusedInfo,
	`p7 info(up{job="node"}, {__name__="node_cpu_seconds_total", cpu="0", mode="idle"})`: refusedInfo,
	`p7 info(http_requests_total{code="500"}, {__name__=~"up|node_load1", job="api"})`:   refusedInfo,
	// limitk keeps the first k series in the order its operand yields
	// them; where the operand's selector becomes a union of several
	// policy selectors, that order is not the storage's.
	"p2 limitk by (team) (1, node_load1)":                     refusedLimitk,
	"p6 limitk by (team) (1, node_load1)":                     refusedLimitk,
	"p6 limitk(2, foo_a)":                                     refusedLimitk,
	`p6 limitk(3, rate(http_requests_total{code="500"}[5m]))`: refusedLimitk,
}

const (
	refusedInfo   = "info() over info series the policy shows only in part"
	refusedLimitk = "limitk over a union of the policy's selectors"
)

// refusalText is what promgate's refusal of an unenforceable construct says.
const refusalText = "cannot be enforced exactly under this policy"

const rangeParsePrefix = `promgate prefixes a range query's parse error with "invalid parameter \"query\": ", Prometheus 2.x does not`

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
	// nativeRangeStep is the step of the native histogram section's range
	// queries: a histogram weighs as much as a dozen floats in an answer,
	// and thirteen of them per series show a matrix of histograms as well
	// as sixty-one.
	nativeRangeStep = 300
)

// testCase is one request sent to both the gateway and the oracle.
type testCase struct {
	policy *testPolicy
	kind   answerKind
	desc   string // how it is evaluated: "instant t-30m", "range 1h/60s", "series", …
	query  string // the expression, or the endpoint and match[]: the allow-list key
	// wantError says the request is one whose error is the point (the
	// corpus' errors section, a missing parameter): the oracle may fail, and
	// must fail at least once per query, the gateway alike. Every other
	// request must succeed on the oracle.
	wantError bool
	method    string
	path      string
	params    url.Values
	gzip      bool // ask for a gzip-compressed answer
	native    bool // of the corpus' native histogram section
}

// outcome is the result of running one case.
type outcome struct {
	c       testCase
	diff    string // "" when equal
	oracle  response
	gateway response
	// nonEmpty: the oracle's answer holds data; differs: the shared
	// Prometheus answers otherwise, so an unfiltered answer would be caught.
	nonEmpty, differs bool
	// refused: promgate refused the query as unenforceable for this
	// policy, as expectedRefusals says it must.
	refused bool
	// histograms: the oracle's answer holds native histogram samples.
	histograms bool
}

// target is where a policy's requests go: its oracle and the gateway, and
// the shared Prometheus, which tells whether an answer discriminates (unset
// for allow_all, whose oracle it is).
type target struct {
	oracle, gateway, shared endpoint
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
	var features []string
	knownDifferences = prometheus2Differences
	if v := prometheusVersion(t); v.Major >= 3 {
		features = prometheus3Features
		knownDifferences = map[string]string{}
		var kept []corpusEntry
		for _, e := range corpus {
			if !e.prometheus2 {
				kept = append(kept, e)
			}
		}
		t.Logf("Prometheus %s: the %d queries of the corpus' Prometheus 2 section are skipped: Prometheus 3 removed what they use (holt_winters, now double_exponential_smoothing in the Prometheus 3 section)", v, len(corpus)-len(kept))
		corpus = kept
	} else {
		var kept []corpusEntry
		for _, e := range corpus {
			if !e.prometheus3 {
				kept = append(kept, e)
			}
		}
		t.Logf("Prometheus %s: the %d queries of the corpus' Prometheus 3 section are skipped: their PromQL (experimental functions, duration expressions, anchored/smoothed ranges, fill modifiers, info()) does not parse there", v, len(corpus)-len(kept))
		corpus = kept
	}
	start := time.Now()
	// UTF-8 names where the generation stores them: their data, policies
	// and corpus section (utf8_test.go).
	utf8Names := prometheusVersion(t).Major >= 3
	testPolicies, corpus := utf8Selection(utf8Names, testPolicies, corpus)
	// Native histograms where Prometheus takes them without a feature
	// flag, by remote write: their data and corpus section.
	nativeHistograms := prometheusVersion(t).Major >= 3
	if kept := nativeSelection(nativeHistograms, corpus); len(kept) < len(corpus) {
		t.Logf("Prometheus %s: the %d queries of the corpus' native histogram section are skipped: the data has no native histograms there", prometheusVersion(t), len(corpus)-len(kept))
		corpus = kept
	}

	// Data: one shared TSDB with every series and one oracle TSDB per
	// restricted policy.
	ds := GenerateWith(GenerateOptions{UTF8Names: utf8Names, NativeHistograms: nativeHistograms})
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
		s, err := startOraclePrometheus(t, prometheus, db.name, dataDir, features, nativeHistograms)
		db.server = s
		if err != nil || !nativeHistograms {
			return err
		}
		// The native histograms, which backfill cannot carry.
		if err := db.data.RemoteWrite(context.Background(), s.url); err != nil {
			return fmt.Errorf("%s: %v", db.name, err)
		}
		return nil
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
		if nativeHistograms {
			if err := checkNativeSamples(endpoint{name: db.name, url: db.server.url}, db.data); err != nil {
				t.Fatalf("%s: %v", db.name, err)
			}
		}
	}
	t.Logf("data: %d series, %d TSDBs loaded and checked in %v", len(ds.AllSeries()), len(dbs), time.Since(start).Round(time.Millisecond))

	// The gateway: promgate in front of the shared Prometheus, or in direct
	// mode the Prometheus that the oracle endpoint already is.
	targets := map[string]target{}
	var gw *server
	if !directMode() {
		var err error
		gw, err = startPromgate(t, promgate, tmp, dbs[0].server.url, features)
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
		tg := target{oracle: o, gateway: g}
		if !p.allowAll {
			tg.shared = endpoint{name: "shared", url: dbs[0].server.url}
		}
		targets[p.id] = tg
	}

	holdForDebugging(t, targets)

	var cases []testCase
	for _, p := range testPolicies {
		if p.allowAll && p.floor.differing > 0 {
			t.Fatalf("policy %s: allow_all is compared with the shared Prometheus itself: no answer can differ", p.id)
		}
		cases = append(cases, queryCases(p, corpus)...)
		cases = append(cases, metadataCases(p)...)
		if utf8Names {
			cases = append(cases, utf8MetadataCases(p)...)
		}
	}
	runStart := time.Now()
	outcomes := runCases(cases, targets, 4)
	t.Logf("ran %d cases (%d queries x %d evaluations + metadata, %d policies) in %v",
		len(cases), len(corpus), len(instantTimes)+1, len(testPolicies), time.Since(runStart).Round(time.Millisecond))

	for _, p := range testPolicies {
		t.Run(p.id, func(t *testing.T) {
			checkFloor(t, p, outcomes)
			if nativeHistograms {
				checkNativeFloor(t, p, outcomes)
			}
			reportPolicy(t, p, outcomes)
		})
	}
	checkDeclaredErrors(t, outcomes)
	if !directMode() { // the known differences are promgate's
		checkKnownDifferencesUsed(t, outcomes)
		checkExpectedRefusals(t, outcomes, features != nil)
	}
	if gw != nil && t.Failed() {
		t.Logf("promgate log (end):\n%s", gw.log())
	}
}

// checkDeclaredErrors fails on a request declared to fail (the corpus'
// errors section) that no oracle answered with an error: it belongs with the
// expressions that must return data, or the errors section proves nothing.
func checkDeclaredErrors(t *testing.T, outcomes []outcome) {
	type key struct{ path, query string }
	declared := map[key]bool{} // whether it failed at least once
	var order []key
	for _, o := range outcomes {
		if !o.c.wantError {
			continue
		}
		k := key{o.c.path, o.c.query}
		if _, ok := declared[k]; !ok {
			order = append(order, k)
		}
		declared[k] = declared[k] || failed(o.oracle)
	}
	for _, k := range order {
		if !declared[k] {
			t.Errorf("%s %s is declared to fail but succeeded on every oracle and evaluation: move it out of the errors section", k.path, k.query)
		}
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
		for _, key := range knownDifferenceKeys(o.c) {
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

// checkExpectedRefusals fails on listed refusals that no longer happen, so
// that the list only shrinks; on Prometheus 2 the queries of the Prometheus
// 3 section, where all refusals are, do not run.
func checkExpectedRefusals(t *testing.T, outcomes []outcome, prometheus3 bool) {
	seen := map[string]int{}
	for _, o := range outcomes {
		if o.refused {
			seen[o.c.policy.id+" "+o.c.query]++
		}
	}
	refused := 0
	for key, why := range expectedRefusals {
		if seen[key] > 0 {
			refused++
			t.Logf("refused as expected (%d requests): %s: %s", seen[key], key, why)
		} else if prometheus3 {
			t.Errorf("expectedRefusals entry %q was not refused: remove it", key)
		}
	}
	t.Logf("%d (policy, query) pairs refused as unenforceable", refused)
}

// startOraclePrometheus starts a Prometheus of the oracle test with the
// given --enable-feature values; with native histograms, ready to take
// them by remote write (the receiver on, an out-of-order window that
// reaches back before the backfilled blocks).
func startOraclePrometheus(t *testing.T, prometheus, name, dataDir string, features []string, nativeHistograms bool) (*server, error) {
	if len(features) == 0 && !nativeHistograms {
		return startPrometheus(t, prometheus, name, dataDir)
	}
	dir := filepath.Dir(dataDir)
	cfg := filepath.Join(dir, name+".yml")
	text := "global:\n  scrape_interval: 1m\n"
	var flags []string
	if len(features) > 0 {
		flags = append(flags, "--enable-feature="+strings.Join(features, ","))
	}
	if nativeHistograms {
		text += testenv.NativeHistogramConfig
		flags = append(flags, "--web.enable-remote-write-receiver")
	}
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return nil, err
	}
	return startWith(t, testenv.Options{Name: name, Dir: dir, Args: func(addr string) []string {
		return testenv.PrometheusArgs(prometheus, cfg, dataDir, addr, flags...)
	}})
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
func startPromgate(t *testing.T, bin, dir, upstream string, features []string) (*server, error) {
	cfg, err := promgateConfig(upstream, features)
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
func promgateConfig(upstream string, features []string) ([]byte, error) {
	return promgateConfigFor(upstream, features, testPolicies)
}

// promgateConfigFor renders promgate.yml for the given policies.
func promgateConfigFor(upstream string, features []string, policies []*testPolicy) ([]byte, error) {
	type upstreamCfg struct {
		URL      string   `yaml:"url"`
		Features []string `yaml:"features,omitempty"`
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
	cfg.Upstreams.Prometheus.Features = features
	cfg.Authentication.BasicAuthUsers = map[string]string{}
	cfg.Groups = map[string][]string{}
	for _, p := range policies {
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

// corpusEntry is one expression of the corpus.
type corpusEntry struct {
	expr        string
	wantError   bool // in the errors section
	prometheus3 bool // in the Prometheus 3 section
	prometheus2 bool // in the Prometheus 2 section
	utf8        bool // in the UTF-8 section (utf8Directive)
	native      bool // in the native histogram section (nativeDirective)
}

// errorsDirective starts the corpus' errors section, which runs to the end
// of the file: its expressions must fail, on the oracle and through the
// gateway alike (same errorType and message). Everywhere else an error
// fails the test, since two equal errors cannot show a leak.
const errorsDirective = "@errors"

// The Prometheus 3 section runs from prometheus3Directive to
// prometheus3EndDirective: PromQL that only Prometheus 3 (with
// prometheus3Features) parses. It is skipped on Prometheus 2.
const (
	prometheus3Directive    = "@prometheus3"
	prometheus3EndDirective = "@end prometheus3"
)

// The Prometheus 2 section runs from prometheus2Directive to
// prometheus2EndDirective: PromQL that Prometheus 3 no longer has. It is
// skipped on Prometheus 3.
const (
	prometheus2Directive    = "@prometheus2"
	prometheus2EndDirective = "@end prometheus2"
)

// readCorpus reads the query corpus: one PromQL expression per line; blank
// lines and lines starting with # are ignored, and the line @errors starts
// the errors section. Duplicates are an error.
func readCorpus(t *testing.T, path string) []corpusEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusEntry
	seen := map[string]int{}
	inErrors, inPrometheus3, inPrometheus2, inUTF8, inNative := false, false, false, false, false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line == utf8Directive || line == utf8EndDirective {
			if inUTF8 == (line == utf8Directive) {
				t.Fatalf("%s:%d: %s out of place", path, n, line)
			}
			inUTF8 = !inUTF8
			continue
		}
		if line == nativeDirective || line == nativeEndDirective {
			if inNative == (line == nativeDirective) {
				t.Fatalf("%s:%d: %s out of place", path, n, line)
			}
			inNative = !inNative
			continue
		}
		if line == errorsDirective {
			if inErrors {
				t.Fatalf("%s:%d: a second %s", path, n, errorsDirective)
			}
			inErrors = true
			continue
		}
		if line == prometheus3Directive || line == prometheus3EndDirective {
			if inPrometheus3 == (line == prometheus3Directive) {
				t.Fatalf("%s:%d: %s out of place", path, n, line)
			}
			inPrometheus3 = !inPrometheus3
			continue
		}
		if line == prometheus2Directive || line == prometheus2EndDirective {
			if inPrometheus2 == (line == prometheus2Directive) {
				t.Fatalf("%s:%d: %s out of place", path, n, line)
			}
			inPrometheus2 = !inPrometheus2
			continue
		}
		if prev, ok := seen[line]; ok {
			t.Fatalf("%s:%d: duplicate of line %d: %s", path, n, prev, line)
		}
		seen[line] = n
		out = append(out, corpusEntry{expr: line, wantError: inErrors, prometheus3: inPrometheus3, prometheus2: inPrometheus2, utf8: inUTF8, native: inNative})
	}
	if inUTF8 {
		t.Fatalf("%s: %s without %s", path, utf8Directive, utf8EndDirective)
	}
	if inNative {
		t.Fatalf("%s: %s without %s", path, nativeDirective, nativeEndDirective)
	}
	if !inErrors {
		t.Fatalf("%s: no %s section", path, errorsDirective)
	}
	if inPrometheus3 {
		t.Fatalf("%s: %s without %s", path, prometheus3Directive, prometheus3EndDirective)
	}
	if inPrometheus2 {
		t.Fatalf("%s: %s without %s", path, prometheus2Directive, prometheus2EndDirective)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// queryCases evaluates every corpus expression as an instant query (GET) at
// each of instantTimes and as a range query (POST form) over the last hour.
// The instant query at t-30m and the range query ask for gzip (the native
// histogram section's range queries step by nativeRangeStep). A range
// query of a range vector or a string is an error by definition: there that
// error is the point, as in the errors section.
func queryCases(p *testPolicy, corpus []corpusEntry) []testCase {
	var out []testCase
	for _, e := range corpus {
		q := e.expr
		rangeFails := e.wantError || !rangeQueryable(q)
		for i, it := range instantTimes {
			out = append(out, testCase{policy: p, kind: kindQuery, desc: "instant " + it.name, query: q, wantError: e.wantError, native: e.native,
				method: http.MethodGet, path: "/api/v1/query", gzip: i == 1,
				params: url.Values{"query": {q}, "time": {strconv.FormatInt(it.t, 10)}}})
		}
		step := rangeStep
		if e.native {
			step = nativeRangeStep
		}
		out = append(out, testCase{policy: p, kind: kindQuery, desc: fmt.Sprintf("range 1h/%ds", step), query: q, wantError: rangeFails, native: e.native,
			method: http.MethodPost, path: "/api/v1/query_range", gzip: true,
			params: url.Values{"query": {q}, "start": {strconv.Itoa(rangeStart)}, "end": {strconv.Itoa(rangeEnd)}, "step": {strconv.Itoa(step)}}})
	}
	return out
}

// rangeQueryable reports whether a valid expression can be evaluated as a
// range query: Prometheus refuses range vectors and strings there.
func rangeQueryable(q string) bool {
	x, err := parser.NewParser(parser.Options{EnableExperimentalFunctions: true, EnableBinopFillModifiers: true, EnableUnquotedUTF8Names: true}).ParseExpr(q)
	if err != nil {
		return true // invalid: the errors section decides
	}
	switch x.Type() {
	case parser.ValueTypeMatrix, parser.ValueTypeString:
		return false
	}
	return true
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
	out = append(out, testCase{policy: p, kind: kindSeries, desc: "series without match[]", query: "/api/v1/series", wantError: true,
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

// runCases sends every case to its policy's oracle and gateway, and to the
// shared Prometheus where the policy is restricted, with at most workers
// cases in flight.
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
		r := outcome{c: c, oracle: o, gateway: g, nonEmpty: resultCount(c.kind, o) > 0, histograms: c.native && holdsHistograms(c.kind, o)}
		if d := errorOutcome(o, c.wantError); d != "" {
			r.diff = "oracle " + d
		} else {
			r.diff = compareAnswers(c.kind, o, g)
		}
		if _, ok := expectedRefusals[c.policy.id+" "+c.query]; ok {
			if r.refused = isRefusal(g); r.refused {
				r.diff = ""
			} else if r.diff == "" {
				r.diff = "expected promgate to refuse this query as unenforceable for the policy, it answered"
			}
		}
		if tg.shared.url != "" {
			s := tg.shared.callWith(ctx, client, c.method, c.path, c.params)
			r.differs = compareAnswers(c.kind, o, s) != ""
		}
		out[i] = r
		return nil
	})
	return out
}

// checkFloor fails when the policy's answers prove less than its floor: a
// corpus whose answers are empty, or the same with and without the policy,
// would let a gateway that filters nothing (or everything) pass.
func checkFloor(t *testing.T, p *testPolicy, outcomes []outcome) {
	var nonEmpty, differing, total int
	for _, o := range outcomes {
		if o.c.policy != p {
			continue
		}
		total++
		if o.nonEmpty {
			nonEmpty++
		}
		if o.differs {
			differing++
		}
	}
	t.Logf("policy %s: %d of %d answers hold data (floor %d), %d differ from the shared Prometheus' (floor %d)",
		p.id, nonEmpty, total, p.floor.nonEmpty, differing, p.floor.differing)
	if nonEmpty < p.floor.nonEmpty {
		t.Errorf("policy %s: only %d answers hold data, below the floor of %d: the corpus or the data lost what it proves", p.id, nonEmpty, p.floor.nonEmpty)
	}
	if differing < p.floor.differing {
		t.Errorf("policy %s: only %d answers differ from the shared Prometheus', below the floor of %d: the corpus cannot tell a filtered answer from an unfiltered one", p.id, differing, p.floor.differing)
	}
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
		case knownDifference(o.c) != "":
			allowed++
			t.Logf("known difference, %s %s: %s (%s)", o.c.desc, o.c.query, o.diff, knownDifference(o.c))
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
			g := groups[key]
			rest = append(rest, "\n    "+key+"  ["+strings.Join(g.descs, ", ")+"]: "+truncate(g.first.diff, 200))
		}
		t.Errorf("policy %s: %d more requests differ:%s", p.id, len(order)-show, truncate(strings.Join(rest, ""), 12000))
	}
	t.Errorf("policy %s: %d of %d requests (%d expressions/endpoints) differ unexpectedly", p.id, total-equal-allowed, total, len(order))
}

// knownDifferenceKeys are the allow-list keys that can excuse a case: for
// its policy or every policy ("*"), for every evaluation of the query or for
// this one ("(range 1h/60s)").
func knownDifferenceKeys(c testCase) []string {
	var keys []string
	for _, p := range []string{c.policy.id, "*"} {
		keys = append(keys, p+" "+c.query, p+" ("+c.desc+") "+c.query)
	}
	return keys
}

// knownDifference returns the allow-list reason for a case.
func knownDifference(c testCase) string {
	for _, k := range knownDifferenceKeys(c) {
		if r, ok := knownDifferences[k]; ok {
			return r
		}
	}
	return ""
}

// isRefusal reports whether r is promgate's 400 for a construct it cannot
// enforce exactly.
func isRefusal(r response) bool {
	var e envelope
	return r.err == nil && r.code == http.StatusBadRequest && json.Unmarshal(r.body, &e) == nil &&
		e.ErrorType == "bad_data" && strings.Contains(e.Error, refusalText)
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
