package e2e

// The oracle test on VictoriaMetrics: for every test policy, the answers
// promgate gives its user from a shared VictoriaMetrics must equal the
// answers of a VictoriaMetrics that holds only the series the policy
// allows, in both enforcement modes: rewrite (promgate rewrites PromQL, the
// PromQL corpus) and victoriametrics (the policy handed down as
// extra_filters[]; the PromQL corpus and the MetricsQL corpus). Only
// VictoriaMetrics is compared with VictoriaMetrics: its lookback, staleness
// and functions differ from Prometheus'.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/promgate/promgate/internal/testenv"
)

// kinds of answer only VictoriaMetrics gives: federate's text exposition
// and /api/v1/export's JSON lines, compared as sets of lines.
const (
	kindFederate answerKind = 100 + iota
	kindExport
)

// vmMode is one enforcement mode under test.
type vmMode struct {
	name   string // the enforcement setting
	corpus []corpusEntry
	floors map[string]floor
	// known are the mode's remaining differences, keyed as
	// knownDifferences, with their causes.
	known map[string]string
	// refusals are the (policy, query) pairs promgate refuses in this
	// mode, keyed as expectedRefusals.
	refusals map[string]string
}

// vmFloors are the floors of each mode (see floor): the counts of today's
// corpus and data less about 10 %.
// In rewrite mode 1230 requests per policy, in victoriametrics mode 1407
// (the MetricsQL corpus besides).
var vmFloors = map[string]map[string]floor{
	"rewrite": {
		"p0": {nonEmpty: 980},
		"p1": {nonEmpty: 945, differing: 855},
		"p2": {nonEmpty: 960, differing: 860},
		"p3": {nonEmpty: 980, differing: 75},
		"p4": {nonEmpty: 515, differing: 900},
		"p5": {nonEmpty: 700, differing: 890},
		"p6": {nonEmpty: 955, differing: 890},
		"p7": {nonEmpty: 235, differing: 935},
	},
	"victoriametrics": {
		"p0": {nonEmpty: 1120},
		"p1": {nonEmpty: 1085, differing: 990},
		"p2": {nonEmpty: 1100, differing: 995},
		"p3": {nonEmpty: 1120, differing: 75},
		"p4": {nonEmpty: 600, differing: 1040},
		"p5": {nonEmpty: 785, differing: 1030},
		"p6": {nonEmpty: 1100, differing: 1025},
		"p7": {nonEmpty: 240, differing: 1080},
	},
}

// vmRewriteDifferences are the rewrite mode's remaining differences of
// single requests (keyed as knownDifferences); the classes of
// vmRewriteCauses hold the rest.
var vmRewriteDifferences = map[string]string{}

// vmPushdownDifferences are the victoriametrics mode's remaining
// differences. There are none: VictoriaMetrics applies extra_filters[] to
// every series selector before evaluating anything.
var vmPushdownDifferences = map[string]string{}

// vmRewriteRefusals: in rewrite mode promgate refuses what it refuses in
// front of Prometheus; none of the PromQL corpus outside its Prometheus 3
// section (which does not run here) is refused.
var vmRewriteRefusals = map[string]string{}

// vmErrorWording is why an error of promgate's own in rewrite mode (it
// parses the query and the match[] selectors) and VictoriaMetrics' error
// for the same request are compared by their status alone.
const vmErrorWording = "in rewrite mode promgate parses the request and answers Prometheus' error (400 bad_data); VictoriaMetrics words its own (422 or 400)"

// vmRewriteCauses are the classes of the rewrite mode's remaining
// differences: promgate's rewriting assumes Prometheus' semantics, which
// VictoriaMetrics does not share everywhere. The victoriametrics mode has
// none of them. Each class must match at least one difference (so that a
// fixed one is dropped); a difference of no class fails the test.
var vmRewriteCauses = []struct {
	name, cause string
	match       func(o outcome) bool
}{
	{"utf8-probe", "promgate asks the upstream whether it parses quoted UTF-8 label names (/api/v1/format_query, which VictoriaMetrics does not serve: 400) " +
		"and so takes VictoriaMetrics for a Prometheus 2.x: a UTF-8 label name in the request or the policy is refused with a 400 naming it, never sent",
		func(o outcome) bool {
			return strings.Contains(string(o.gateway.body), "it parses only legacy label names")
		}},
	{"absent", "VictoriaMetrics' absent() and absent_over_time() label their answer with every equality matcher of the selector, the policy's too, and refuse " +
		"a selector with two __name__ matchers; promgate's rewrite of absent relies on Prometheus, which keeps only the query's own",
		func(o outcome) bool {
			return o.c.kind == kindQuery && (strings.HasPrefix(o.c.query, "absent(") || strings.HasPrefix(o.c.query, "absent_over_time("))
		}},
	{"promql-refusals", "promgate parses PromQL as Prometheus does and refuses what Prometheus refuses (the corpus' errors section); " +
		"VictoriaMetrics answers some of it (MetricsQL accepts rate(x) without a window, {team!=\"a\"}, a string): the victoriametrics mode passes them",
		func(o outcome) bool { return o.c.wantError && !failed(o.oracle) && failed(o.gateway) }},
}

// vmNondeterministic are expressions VictoriaMetrics does not answer the
// same way twice, even on one server: compared by status alone.
var vmNondeterministic = map[string]string{
	// foo_c and foo_c offset 1h have the same labels: which side of `or`
	// VictoriaMetrics keeps varies between evaluations.
	`{__name__=~"foo_.*"} or {__name__=~"foo_.*"} offset 1h`: "`or` of two series with one label set: VictoriaMetrics keeps either",
	// foo_c's series of one team, x ignored, are several on the right of
	// group_left: VictoriaMetrics fails naming two of them in either order,
	// or where one has ended picks either.
	"foo_a * ignoring (x) group_left foo_c": "duplicate series on the right of group_left: named, or picked, in no fixed order",
}

// vmUnsupported are the PromQL corpus' expressions that VictoriaMetrics
// answers with an error for some policies, on the oracle as through
// promgate: the answers are compared like those of the errors section.
var vmUnsupported = map[string]string{
	`quantile_over_time(scalar(foo_a{team="a", x="1"}) / 200, foo_b[10m])`:                      "VictoriaMetrics refuses a φ of NaN (scalar() of no series, where the policy hides foo_a{team=\"a\"})",
	`histogram_quantile(scalar(max(up)) * 0.9, rate(http_request_duration_seconds_bucket[5m]))`: "VictoriaMetrics refuses a φ of NaN (scalar() of no series, where the policy hides up)",
	`clamp(node_cpu_temp, scalar(min(foo_a)) / 2, 100)`:                                         "VictoriaMetrics refuses a bound of NaN (scalar() of no series, where the policy hides foo_a)",
}

func TestOracleVictoriaMetrics(t *testing.T) {
	skipIfShort(t)
	if os.Getenv(testenv.UpstreamsDirEnv) == "" {
		t.Skipf("VictoriaMetrics is built with the current generation of the servers: set %s (scripts/build-upstreams.sh)", testenv.UpstreamsDirEnv)
	}
	vmBin := requireTool(t, "victoria-metrics")
	var promgate string
	if directMode() {
		t.Log("PROMGATE_E2E_DIRECT is set: promgate is not used")
	} else {
		promgate = requirePromgate(t)
	}
	start := time.Now()

	// The PromQL corpus without its Prometheus 3 section (experimental
	// PromQL that VictoriaMetrics does not parse) and its native histogram
	// section (VictoriaMetrics stores no native histograms, and its data
	// here has none); with the UTF-8 data, policies and queries.
	var promqlCorpus []corpusEntry
	for _, e := range readCorpus(t, filepath.Join("testdata", "queries.txt")) {
		if !e.prometheus3 && !e.native {
			promqlCorpus = append(promqlCorpus, e)
		}
	}
	policies, promqlCorpus := utf8Selection(true, testPolicies, promqlCorpus)
	metricsqlCorpus := readCorpus(t, filepath.Join("testdata", "metricsql.txt"))
	metricsqlSet := map[string]bool{}
	for _, e := range metricsqlCorpus {
		metricsqlSet[e.expr] = true
	}
	modes := []*vmMode{
		{name: "rewrite", corpus: promqlCorpus, floors: vmFloors["rewrite"], known: vmRewriteDifferences, refusals: vmRewriteRefusals},
		{name: "victoriametrics", corpus: append(slices.Clone(promqlCorpus), metricsqlCorpus...), floors: vmFloors["victoriametrics"], known: vmPushdownDifferences},
	}

	// Data: one shared VictoriaMetrics and one per restricted policy.
	ds := GenerateWith(GenerateOptions{UTF8Names: true})
	tmp := t.TempDir()
	type store struct {
		name   string
		data   *Dataset
		server *server
	}
	stores := []*store{{name: "vm-shared", data: ds}}
	oracleOf := map[string]*store{}
	for _, p := range policies {
		sels, err := p.oracleSelectors()
		if err != nil {
			t.Fatalf("policy %s: %v", p.id, err)
		}
		if p.allowAll {
			oracleOf[p.id] = stores[0]
			continue
		}
		s := &store{name: "vm-oracle-" + p.id, data: ds.Filter(sels)}
		stores = append(stores, s)
		oracleOf[p.id] = s
	}
	errs := parallel(len(stores), 3, func(i int) error {
		s := stores[i]
		srv, err := startVictoriaMetrics(t, vmBin, tmp, s.name)
		if err != nil {
			return err
		}
		s.server = srv
		if err := vmImport(srv.url, s.data); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		// Flushed rows become searchable within a moment.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			err = checkSeriesCount(endpoint{name: s.name, url: srv.url}, len(s.data.AllSeries()))
			if err == nil || time.Now().After(deadline) {
				return err
			}
		}
	})
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	t.Logf("data: %d series, %d VictoriaMetrics loaded and checked in %v", len(ds.AllSeries()), len(stores), time.Since(start).Round(time.Millisecond))

	var seen sync.Map
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			modeStart := time.Now()
			var gw *server
			if !directMode() {
				var err error
				gw, err = startPromgateVM(t, promgate, filepath.Join(tmp, m.name), stores[0].server.url, m.name)
				if err != nil {
					t.Fatal(err)
				}
			}
			// Copies of the policies with this mode's floors: the outcomes
			// name them.
			var ps []*testPolicy
			targets := map[string]target{}
			for _, p := range policies {
				c := *p
				c.floor = m.floors[p.id]
				ps = append(ps, &c)
				o := endpoint{name: oracleOf[p.id].name, url: oracleOf[p.id].server.url}
				g := o
				switch {
				case passthroughMode():
					g = endpoint{name: "shared", url: stores[0].server.url}
				case gw != nil:
					g = endpoint{name: "promgate", url: gw.url, user: p.user, pass: p.password()}
				}
				tg := target{oracle: o, gateway: g}
				if !p.allowAll {
					tg.shared = endpoint{name: "shared", url: stores[0].server.url}
				}
				targets[p.id] = tg
			}
			if m.name == "victoriametrics" {
				holdForDebugging(t, targets)
			}
			var cases []testCase
			for _, p := range ps {
				// Two instant evaluations (t-30m, t) and the range query:
				// t-90m adds time, not another kind of answer.
				for _, c := range queryCases(p, m.corpus) {
					if c.desc != "instant t-90m" {
						cases = append(cases, c)
					}
				}
				cases = append(cases, metadataCases(p)...)
				cases = append(cases, utf8MetadataCases(p)...)
				cases = append(cases, vmExportCases(p)...)
				cases = append(cases, vmWideningCases(p)...)
			}
			outcomes, wording := runVMCases(cases, targets, m, &seen, 4)
			t.Logf("mode %s: %d cases (%d queries x %d evaluations + metadata, federate and export, %d policies) in %v; %d error answers compared by status alone (%s)",
				m.name, len(cases), len(m.corpus), len(instantTimes), len(ps), time.Since(modeStart).Round(time.Millisecond), wording, vmErrorWording)
			if m.name == "rewrite" && !directMode() && wording == 0 {
				t.Errorf("no error answer was compared by status alone: drop vmErrorWording")
			}
			known := maps.Clone(m.known)
			if m.name == "rewrite" && !directMode() {
				classifyRewriteDifferences(t, outcomes, known, !passthroughMode())
			}
			saved := knownDifferences
			knownDifferences = known
			defer func() { knownDifferences = saved }()
			for _, p := range ps {
				t.Run(p.id, func(t *testing.T) {
					checkFloor(t, p, outcomes)
					reportPolicy(t, p, outcomes)
				})
			}
			// The PromQL corpus' errors are Prometheus': VictoriaMetrics
			// answers some of them. The MetricsQL corpus' must fail.
			var declared []outcome
			for _, o := range outcomes {
				if o.c.kind != kindQuery || metricsqlSet[o.c.query] {
					declared = append(declared, o)
				}
			}
			checkDeclaredErrors(t, declared)
			if !directMode() {
				checkKnownDifferencesUsed(t, outcomes)
				checkVMRefusals(t, outcomes, m.refusals)
			}
			checkVMUnsupportedUsed(t, outcomes)
			if gw != nil && t.Failed() {
				t.Logf("promgate log (end):\n%s", gw.log())
			}
		})
	}
	t.Logf("VictoriaMetrics oracle: %v in all", time.Since(start).Round(time.Millisecond))
}

// classifyRewriteDifferences gives each difference of the rewrite mode
// its class of vmRewriteCauses, as a known difference of its request, and
// fails on a class that matched nothing when mustMatch.
func classifyRewriteDifferences(t *testing.T, outcomes []outcome, known map[string]string, mustMatch bool) {
	counts := make([]int, len(vmRewriteCauses))
	for _, o := range outcomes {
		if o.diff == "" {
			continue
		}
		for i, c := range vmRewriteCauses {
			if c.match(o) {
				counts[i]++
				known[o.c.policy.id+" ("+o.c.desc+") "+o.c.query] = c.name + ": " + c.cause
				break
			}
		}
	}
	for i, c := range vmRewriteCauses {
		t.Logf("rewrite mode, remaining difference %s: %d requests: %s", c.name, counts[i], c.cause)
		if counts[i] == 0 && mustMatch {
			t.Errorf("rewrite mode: the class of differences %q matched none: remove it", c.name)
		}
	}
}

// vmWideningCases send a client's own extra_filters, which
// VictoriaMetrics would OR with promgate's: selecting every series, they
// change nothing on the oracle, and must change nothing through promgate.
func vmWideningCases(p *testPolicy) []testCase {
	all := `{__name__=~".+"}`
	t := strconv.Itoa(BaseTime)
	var out []testCase
	for _, name := range []string{"extra_filters[]", "extra_filters"} {
		out = append(out,
			testCase{policy: p, kind: kindQuery, desc: "instant t, client " + name, query: "count by (team) (up) + " + name, method: http.MethodGet, path: "/api/v1/query",
				params: url.Values{"query": {"count by (team) (up)"}, "time": {t}, name: {all}}},
			testCase{policy: p, kind: kindSeries, desc: "series, client " + name, query: "/api/v1/series match[]=up + " + name, method: http.MethodPost, path: "/api/v1/series",
				params: url.Values{"match[]": {"up"}, "start": {strconv.Itoa(BaseTime - 600)}, "end": {t}, name: {all}}},
			testCase{policy: p, kind: kindNames, desc: "label values, client " + name, query: "/api/v1/label/team/values + " + name, method: http.MethodGet, path: "/api/v1/label/team/values",
				params: url.Values{"start": {strconv.Itoa(BaseTime - 600)}, "end": {t}, name: {all}}},
		)
	}
	return out
}

// vmExportCases compare /federate and /api/v1/export, which both modes
// enforce.
func vmExportCases(p *testPolicy) []testCase {
	var out []testCase
	for _, m := range [][]string{
		{`{__name__=~"foo_.*"}`},
		{`up`},
		{`{team="b"}`},
		{`sensitive_requests_total`},
		{`{__name__=~"node_load.*"}`, `{job="api"}`},
	} {
		q := " match[]=" + strings.Join(m, " match[]=")
		out = append(out,
			testCase{policy: p, kind: kindFederate, desc: "federate", query: "/federate" + q, method: http.MethodGet, path: "/federate",
				params: url.Values{"match[]": m, "start": {strconv.Itoa(BaseTime - 300)}, "end": {strconv.Itoa(BaseTime)}}},
			testCase{policy: p, kind: kindExport, desc: "export", query: "/api/v1/export" + q, method: http.MethodPost, path: "/api/v1/export",
				params: url.Values{"match[]": m, "start": {strconv.Itoa(BaseTime - 600)}, "end": {strconv.Itoa(BaseTime)}}},
		)
	}
	return out
}

// runVMCases is runCases for one mode: its refusals, federate and export
// answers, the expressions VictoriaMetrics does not support, and in
// rewrite mode errors compared by status alone (counted in wording).
//
// The oracle's and the shared server's answers are the same in both
// modes: seen holds them, so that the second mode asks only promgate.
func runVMCases(cases []testCase, targets map[string]target, m *vmMode, seen *sync.Map, workers int) ([]outcome, int) {
	out := make([]outcome, len(cases))
	lenient := make([]bool, len(cases))
	parallel(len(cases), workers, func(i int) error {
		c := cases[i]
		tg := targets[c.policy.id]
		ctx := context.Background()
		client := httpClient
		if c.gzip {
			client = gzipClient
		}
		key := c.policy.id + " " + c.method + " " + c.path + "?" + c.params.Encode()
		var ref [2]response // the oracle's and the shared server's
		if v, ok := seen.Load(key); ok {
			ref = v.([2]response)
		} else {
			ref[0] = tg.oracle.callWith(ctx, client, c.method, c.path, c.params)
			if tg.shared.url != "" {
				ref[1] = tg.shared.callWith(ctx, client, c.method, c.path, c.params)
			}
			seen.Store(key, ref)
		}
		o := ref[0]
		g := tg.gateway.callWith(ctx, client, c.method, c.path, c.params)
		r := outcome{c: c, oracle: o, gateway: g, nonEmpty: vmResultCount(c.kind, o) > 0}
		_, unsupported := vmUnsupported[c.query]
		if d := errorOutcome(o, c.wantError || unsupported); d != "" && c.kind < kindFederate {
			r.diff = "oracle " + d
		} else {
			r.diff = vmCompare(c.kind, o, g)
		}
		if r.diff != "" && m.name == "rewrite" && failed(o) && failed(g) {
			r.diff, lenient[i] = "", true
		}
		if _, ok := vmNondeterministic[c.query]; ok && r.diff != "" && failed(o) == failed(g) {
			r.diff = ""
		}
		if _, ok := m.refusals[c.policy.id+" "+c.query]; ok {
			if r.refused = isRefusal(g); r.refused {
				r.diff = ""
			} else if r.diff == "" {
				r.diff = "expected promgate to refuse this query as unenforceable for the policy, it answered"
			}
		}
		if tg.shared.url != "" {
			r.differs = vmCompare(c.kind, o, ref[1]) != ""
		}
		out[i] = r
		return nil
	})
	n := 0
	for _, l := range lenient {
		if l {
			n++
		}
	}
	return out, n
}

// vmCompare compares two answers of VictoriaMetrics or promgate.
func vmCompare(kind answerKind, o, g response) string {
	if kind < kindFederate {
		return compareAnswers(kind, o, g)
	}
	if o.err != nil {
		return "oracle request failed: " + o.err.Error()
	}
	if g.err != nil {
		return "gateway request failed: " + g.err.Error()
	}
	if o.code != g.code {
		return fmt.Sprintf("HTTP status: oracle %d, gateway %d", o.code, g.code)
	}
	ol, err := vmLines(kind, o.body)
	if err != nil {
		return "oracle answer: " + err.Error()
	}
	gl, err := vmLines(kind, g.body)
	if err != nil {
		return "gateway answer: " + err.Error()
	}
	return compareStringSets("lines", ol, gl)
}

// vmLines turns a federate or export answer into sorted canonical lines:
// federate's as they are; export's series with their labels sorted.
func vmLines(kind answerKind, body []byte) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if kind == kindExport {
			var s struct {
				Metric     map[string]string `json:"metric"`
				Values     []any             `json:"values"` // numbers, or "NaN", "Inf", "-Inf"
				Timestamps []int64           `json:"timestamps"`
			}
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				return nil, fmt.Errorf("%v: %s", err, truncate(line, 200))
			}
			line = fmt.Sprintf("%s %v %v", labelsKey(s.Metric), s.Values, s.Timestamps)
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out, sc.Err()
}

// vmResultCount is resultCount with federate and export answers: their
// lines.
func vmResultCount(kind answerKind, r response) int {
	if kind < kindFederate {
		return resultCount(kind, r)
	}
	if r.err != nil || r.code != http.StatusOK {
		return 0
	}
	lines, err := vmLines(kind, r.body)
	if err != nil {
		return 0
	}
	return len(lines)
}

// checkVMRefusals fails on listed refusals that no longer happen.
func checkVMRefusals(t *testing.T, outcomes []outcome, refusals map[string]string) {
	seen := map[string]int{}
	for _, o := range outcomes {
		if o.refused {
			seen[o.c.policy.id+" "+o.c.query]++
		}
	}
	for key, why := range refusals {
		if seen[key] == 0 {
			t.Errorf("refusal %q (%s) did not happen: remove it", key, why)
		}
	}
}

// checkVMUnsupportedUsed fails on vmUnsupported entries that every oracle
// answered: they belong with the expressions that return data.
func checkVMUnsupportedUsed(t *testing.T, outcomes []outcome) {
	failedOnce := map[string]bool{}
	ran := map[string]bool{}
	for _, o := range outcomes {
		if _, ok := vmUnsupported[o.c.query]; ok {
			ran[o.c.query] = true
			failedOnce[o.c.query] = failedOnce[o.c.query] || failed(o.oracle)
		}
	}
	for q, why := range vmUnsupported {
		if ran[q] && !failedOnce[q] {
			t.Errorf("vmUnsupported %q (%s): VictoriaMetrics answered it: remove the entry", q, why)
		}
	}
}

// startVictoriaMetrics starts a VictoriaMetrics single-node on an empty
// data directory, its answers made deterministic: no result cache, no
// latency offset (the data is years old anyway), retention long enough
// for the generated data's fixed past.
func startVictoriaMetrics(t testing.TB, bin, dir, name string) (*server, error) {
	data := filepath.Join(dir, name)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	return startWith(t, testenv.Options{Name: name, Dir: dir, ReadyPath: "/health", Args: func(addr string) []string {
		return []string{bin,
			"-storageDataPath=" + data,
			"-httpListenAddr=" + addr,
			"-retentionPeriod=100y",
			"-search.disableCache",
			"-search.latencyOffset=0s",
			"-loggerLevel=WARN",
		}
	}})
}

// vmImport loads a dataset through /api/v1/import (JSON lines) and makes
// it searchable at once (/internal/force_flush).
func vmImport(base string, ds *Dataset) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, s := range ds.AllSeries() {
		line := struct {
			Metric     map[string]string `json:"metric"`
			Values     []json.RawMessage `json:"values"`
			Timestamps []int64           `json:"timestamps"`
		}{Metric: s.Labels}
		for _, smp := range s.Samples {
			// NaN and the infinities have no JSON number: VictoriaMetrics
			// reads them as the strings "NaN", "Inf" and "-Inf".
			v := testenv.FormatFloat(smp.V)
			if math.IsNaN(smp.V) || math.IsInf(smp.V, 0) {
				v = strconv.Quote(strings.TrimPrefix(v, "+"))
			}
			line.Values = append(line.Values, json.RawMessage(v))
			line.Timestamps = append(line.Timestamps, smp.T*1000)
		}
		if err := enc.Encode(&line); err != nil {
			return err
		}
	}
	resp, err := http.Post(base+"/api/v1/import", "application/json", &body)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("import: status %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/internal/force_flush")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("force_flush: status %d", resp.StatusCode)
	}
	return nil
}

// startPromgateVM starts promgate in front of the shared VictoriaMetrics
// with the given enforcement.
func startPromgateVM(t testing.TB, bin, dir, upstream, enforcement string) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	raw, err := promgateConfig(upstream, nil)
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	cfg["upstreams"].(map[string]any)["prometheus"].(map[string]any)["enforcement"] = enforcement
	if raw, err = yaml.Marshal(cfg); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return nil, err
	}
	return startServer(t, "promgate-"+enforcement, dir, bin, func(addr string) []string {
		return []string{"--config.file=" + path, "--web.listen-address=" + addr}
	})
}
