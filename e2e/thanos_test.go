package e2e

// Thanos Query as the upstream: two Prometheus servers holding the same data
// (external labels replica="0" and "1") behind Thanos sidecars and one
// Thanos Query that deduplicates on replica; promgate in front. Every
// policy's answers must equal those of an oracle Thanos Query over a
// Prometheus (and sidecar) holding only the policy's series.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/promgate/promgate/internal/testenv"
)

// thanosFloors are the floors of the Thanos oracle test, per policy: its
// corpus is the oracle test's less what Thanos 0.36 does not run (see
// thanosCorpus) at two evaluations, so the counts are smaller (728
// requests per policy today). The figures are today's less about 10 %.
var thanosFloors = map[string]floor{
	"p0": {nonEmpty: 580},
	"p1": {nonEmpty: 560, differing: 510},
	"p2": {nonEmpty: 570, differing: 510},
	"p3": {nonEmpty: 575, differing: 45},
	"p4": {nonEmpty: 330, differing: 535},
	"p5": {nonEmpty: 410, differing: 530},
	"p6": {nonEmpty: 570, differing: 525},
}

// thanosEvaluations are the evaluations of each corpus expression: the
// instant query at t-30m (gzip) and the range query over the last hour.
// The other two instant times of the oracle test add little that these
// do not show and would double the run.
var thanosEvaluations = map[string]bool{"instant t-30m": true, "range 1h/60s": true}

// onlyCurrentGeneration skips a test of a server only built with the
// current generation (scripts/build-upstreams.sh).
func onlyCurrentGeneration(t *testing.T, what string) {
	t.Helper()
	if os.Getenv(testenv.UpstreamsDirEnv) == "" {
		t.Skipf("%s is built with the current generation of the servers: set %s", what, testenv.UpstreamsDirEnv)
	}
}

// thanosStack is Prometheus servers with sidecars behind one Thanos Query.
type thanosStack struct {
	query    *server
	sidecars []*server
}

// startThanosStack starts one Prometheus and sidecar per data directory
// (external labels replica="<i>" plus extra) and a Thanos Query over them
// with --query.replica-label=replica and queryFlags.
func startThanosStack(t *testing.T, name, prometheus, thanos string, dataDirs []string, queryFlags ...string) (*thanosStack, error) {
	st := &thanosStack{}
	var grpcAddrs []string
	for i, dataDir := range dataDirs {
		dir := filepath.Dir(dataDir)
		pname := fmt.Sprintf("%s-prometheus-%d", name, i)
		cfg := filepath.Join(dir, pname+".yml")
		body := fmt.Sprintf("global:\n  scrape_interval: 1m\n  external_labels:\n    replica: %q\n", strconv.Itoa(i))
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			return nil, err
		}
		prom, err := startWith(t, testenv.Options{Name: pname, Dir: dir, Args: func(addr string) []string {
			return testenv.PrometheusArgs(prometheus, cfg, dataDir, addr)
		}})
		if err != nil {
			return nil, err
		}
		var grpc string
		sc, err := startWith(t, testenv.Options{Name: fmt.Sprintf("%s-sidecar-%d", name, i), Dir: dir, Args: func(addr string) []string {
			grpc, _ = testenv.FreeAddr()
			return []string{thanos, "sidecar", "--prometheus.url=" + prom.url, "--tsdb.path=" + dataDir,
				"--http-address=" + addr, "--grpc-address=" + grpc, "--log.level=warn"}
		}})
		if err != nil {
			return nil, err
		}
		st.sidecars = append(st.sidecars, sc)
		grpcAddrs = append(grpcAddrs, grpc)
	}
	dir := filepath.Dir(dataDirs[0])
	q, err := startWith(t, testenv.Options{Name: name + "-query", Dir: dir, Args: func(addr string) []string {
		grpc, _ := testenv.FreeAddr()
		args := []string{thanos, "query", "--http-address=" + addr, "--grpc-address=" + grpc,
			"--query.replica-label=replica", "--log.level=warn"}
		for _, a := range grpcAddrs {
			args = append(args, "--endpoint="+a)
		}
		return append(args, queryFlags...)
	}})
	if err != nil {
		return nil, err
	}
	st.query = q
	// The query finds its stores in the background: wait until it sees
	// every one.
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := endpoint{url: q.url}.call(context.Background(), http.MethodGet, "/api/v1/stores", nil)
		var env struct {
			Data map[string][]json.RawMessage `json:"data"`
		}
		if r.err == nil && json.Unmarshal(r.body, &env) == nil && len(env.Data["sidecar"]) == len(dataDirs) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: thanos query sees not all %d sidecars: %s", name, len(dataDirs), truncate(string(r.body), 300))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// copyDir copies a TSDB directory (a backfilled one, for a second replica).
func copyDir(src, dst string) error {
	out, err := exec.Command("cp", "-R", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -R %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}

// thanosCorpus is the oracle test's corpus less what this Thanos does not
// run: Thanos 0.36 evaluates with the PromQL of Prometheus 2.52, so the
// Prometheus 3 section (and UTF-8 names) does not parse there, and the
// Prometheus 2 section does not parse in promgate; the errors section is
// left out because Thanos words parse errors as Prometheus 2.52 does, which
// differs from promgate's 3.16 parser (as on Prometheus 2.x, see
// prometheus2Differences), and proves nothing about filtering; the native
// histogram section, because its data is not loaded here (the sidecars
// serve the backfilled blocks).
func thanosCorpus(t *testing.T) []corpusEntry {
	var out []corpusEntry
	for _, e := range readCorpus(t, filepath.Join("testdata", "queries.txt")) {
		if !e.prometheus3 && !e.prometheus2 && !e.utf8 && !e.wantError && !e.native {
			out = append(out, e)
		}
	}
	return out
}

func TestThanosOracle(t *testing.T) {
	skipIfShort(t)
	onlyCurrentGeneration(t, "Thanos")
	prometheus := requireTool(t, "prometheus")
	promtool := requireTool(t, "promtool")
	thanos := requireTool(t, "thanos")
	promgate := requirePromgate(t)
	start := time.Now()
	corpus := thanosCorpus(t)

	var policies []*testPolicy
	for _, p := range testPolicies {
		if p.utf8 {
			continue
		}
		q := *p
		q.floor = thanosFloors[p.id]
		policies = append(policies, &q)
	}

	ds := GenerateWith(GenerateOptions{})
	tmp := t.TempDir()
	type tsdb struct {
		name string
		data *Dataset
		dirs []string
	}
	shared := &tsdb{name: "shared", data: ds}
	dbs := []*tsdb{shared}
	oracleOf := map[string]*tsdb{}
	for _, p := range policies {
		if p.allowAll {
			oracleOf[p.id] = shared
			continue
		}
		sels, err := p.oracleSelectors()
		if err != nil {
			t.Fatal(err)
		}
		db := &tsdb{name: "oracle-" + p.id, data: ds.Filter(sels)}
		dbs = append(dbs, db)
		oracleOf[p.id] = db
	}
	errs := parallel(len(dbs), 3, func(i int) error {
		db := dbs[i]
		om := filepath.Join(tmp, db.name+".om")
		dataDir := filepath.Join(tmp, db.name, "data0")
		if err := db.data.WriteOpenMetricsFile(om); err != nil {
			return err
		}
		if err := backfill(promtool, om, dataDir); err != nil {
			return err
		}
		os.Remove(om)
		db.dirs = []string{dataDir}
		if db == shared { // the second replica: the same blocks
			second := filepath.Join(tmp, db.name, "data1")
			if err := copyDir(dataDir, second); err != nil {
				return err
			}
			db.dirs = append(db.dirs, second)
		}
		return nil
	})
	for _, err := range errs {
		t.Fatal(err)
	}
	stacks := map[*tsdb]*thanosStack{}
	var stackList []*tsdb
	stackList = append(stackList, dbs...)
	results := make([]*thanosStack, len(stackList))
	errs = parallel(len(stackList), 3, func(i int) error {
		st, err := startThanosStack(t, stackList[i].name, prometheus, thanos, stackList[i].dirs)
		results[i] = st
		return err
	})
	for _, err := range errs {
		t.Fatal(err)
	}
	for i, db := range stackList {
		stacks[db] = results[i]
		// Deduplicated, the shared Query holds each series once.
		if err := checkSeriesCount(endpoint{name: db.name, url: results[i].query.url}, len(db.data.AllSeries())); err != nil {
			t.Fatalf("%s: %v", db.name, err)
		}
	}
	t.Logf("data: %d series, %d Prometheus servers with sidecars, %d Thanos Query, started and checked in %v",
		len(ds.AllSeries()), len(dbs)+1, len(dbs), time.Since(start).Round(time.Millisecond))

	gw, err := startPromgateWith(t, promgate, tmp, "promgate", stacks[shared].query.url, policies, "")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]target{}
	sharedEP := endpoint{name: "shared", url: stacks[shared].query.url}
	for _, p := range policies {
		tg := target{
			oracle:  endpoint{name: oracleOf[p.id].name, url: stacks[oracleOf[p.id]].query.url},
			gateway: endpoint{name: "promgate", url: gw.url, user: p.user, pass: p.password()},
		}
		if !p.allowAll {
			tg.shared = sharedEP
		}
		targets[p.id] = tg
	}

	knownDifferences = map[string]string{}
	var cases []testCase
	for _, p := range policies {
		for _, c := range queryCases(p, corpus) {
			if thanosEvaluations[c.desc] {
				cases = append(cases, c)
			}
		}
		cases = append(cases, metadataCases(p)...)
	}
	runStart := time.Now()
	outcomes := runCases(cases, targets, 4)
	t.Logf("ran %d cases (%d queries x %d evaluations + metadata, %d policies) in %v",
		len(cases), len(corpus), len(thanosEvaluations), len(policies), time.Since(runStart).Round(time.Millisecond))
	for _, p := range policies {
		t.Run(p.id, func(t *testing.T) {
			checkFloor(t, p, outcomes)
			reportPolicy(t, p, outcomes)
		})
	}
	checkDeclaredErrors(t, outcomes)

	// Deduplication with rewritten queries, and the Thanos parameters.
	ann := findPolicy(t, policies, "p1")
	bert := findPolicy(t, policies, "p2")
	t.Run("dedup", func(t *testing.T) {
		checkThanosDedup(t, endpoint{name: "promgate", url: gw.url, user: bert.user, pass: bert.password()},
			endpoint{name: "oracle", url: stacks[oracleOf["p2"]].query.url})
	})
	t.Run("ui", func(t *testing.T) {
		root := findPolicy(t, policies, "p0")
		checkThanosUI(t, endpoint{name: "promgate", url: gw.url, user: ann.user, pass: ann.password()},
			endpoint{name: "promgate", url: gw.url, user: root.user, pass: root.password()})
	})
	t.Run("tenancy", func(t *testing.T) {
		checkThanosTenancy(t, promgate, thanos, tmp, stacks[shared])
	})
	if t.Failed() {
		t.Logf("promgate log (end):\n%s", gw.log())
	}
	t.Logf("TestThanosOracle took %v", time.Since(start).Round(time.Second))
}

func findPolicy(t *testing.T, ps []*testPolicy, id string) *testPolicy {
	for _, p := range ps {
		if p.id == id {
			return p
		}
	}
	t.Fatalf("no policy %s", id)
	return nil
}

// startPromgateWith starts promgate (its files named name) in front of
// upstream for policies; a tenancy, when given, is the upstream's tenancy
// section (YAML flow).
func startPromgateWith(t *testing.T, bin, dir, name, upstream string, policies []*testPolicy, tenancy string) (*server, error) {
	cfg, err := promgateConfigFor(upstream, nil, policies)
	if err != nil {
		return nil, err
	}
	if tenancy != "" {
		var doc map[string]any
		if err := yaml.Unmarshal(cfg, &doc); err != nil {
			return nil, err
		}
		var tn map[string]any
		if err := yaml.Unmarshal([]byte(tenancy), &tn); err != nil {
			return nil, err
		}
		doc["upstreams"].(map[string]any)["prometheus"].(map[string]any)["tenancy"] = tn
		if cfg, err = yaml.Marshal(doc); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return nil, err
	}
	return startServer(t, name, dir, bin, func(addr string) []string {
		return []string{"--config.file=" + path, "--web.listen-address=" + addr}
	})
}

// thanosSeries is one series of a query answer.
type thanosSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

func queryResult(t *testing.T, e endpoint, path string, params url.Values) []thanosSeries {
	t.Helper()
	r := e.call(context.Background(), http.MethodGet, path, params)
	var env struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []thanosSeries `json:"result"`
		} `json:"data"`
	}
	if r.err != nil || json.Unmarshal(r.body, &env) != nil || env.Status != "success" {
		t.Fatalf("%s %s?%s: %d %v %s", e.name, path, params.Encode(), r.code, r.err, truncate(string(r.body), 300))
	}
	return env.Data.Result
}

// checkThanosDedup: a rewritten query over the two replicas answers each
// series once, without the replica label and with one sample per step;
// dedup=false (a parameter promgate passes) shows both replicas, so the
// check can tell; storeMatch[] (refused) never reaches Thanos.
func checkThanosDedup(t *testing.T, gw, oracle endpoint) {
	// Under a policy of two selectors, every selector becomes a union.
	q := `sum by (team, instance) (rate(http_requests_total[5m])) or node_load1 or foo_b`
	rng := url.Values{"query": {q}, "start": {strconv.Itoa(rangeStart)}, "end": {strconv.Itoa(rangeEnd)}, "step": {strconv.Itoa(rangeStep)}}
	steps := (rangeEnd-rangeStart)/rangeStep + 1
	got := queryResult(t, gw, "/api/v1/query_range", rng)
	want := queryResult(t, oracle, "/api/v1/query_range", rng)
	if len(got) == 0 || len(got) != len(want) {
		t.Fatalf("deduplicated: %d series, the oracle %d (want equal, not 0)", len(got), len(want))
	}
	for _, s := range got {
		if _, ok := s.Metric["replica"]; ok {
			t.Errorf("series %v keeps the replica label", s.Metric)
		}
		if len(s.Values) > steps {
			t.Errorf("series %v has %d samples for %d steps: doubled", s.Metric, len(s.Values), steps)
		}
	}
	// Raw samples: each series once, as many samples as the oracle's.
	samples := func(e endpoint) map[string]int {
		out := map[string]int{}
		for _, s := range queryResult(t, e, "/api/v1/query", url.Values{"query": {"{__name__=~\"node_load.*|foo_b\"}[10m]"}, "time": {strconv.Itoa(BaseTime)}}) {
			if _, ok := s.Metric["replica"]; ok {
				t.Errorf("raw series %v keeps the replica label", s.Metric)
			}
			out[labelsKey(s.Metric)] += len(s.Values)
		}
		return out
	}
	gs, ors := samples(gw), samples(oracle)
	if len(gs) == 0 || len(gs) != len(ors) {
		t.Errorf("raw samples: %d series, the oracle %d", len(gs), len(ors))
	}
	for k, n := range gs {
		if ors[k] != n {
			t.Errorf("raw samples of %s: %d, the oracle %d", k, n, ors[k])
		}
	}
	t.Logf("deduplicated through promgate: %d series over %d steps and %d raw series, none doubled, no replica label", len(got), steps, len(gs))

	nodedup := url.Values{"query": {q}, "start": {strconv.Itoa(rangeStart)}, "end": {strconv.Itoa(rangeEnd)}, "step": {strconv.Itoa(rangeStep)}, "dedup": {"false"}}
	both := queryResult(t, gw, "/api/v1/query_range", nodedup)
	withReplica := 0
	for _, s := range both {
		if _, ok := s.Metric["replica"]; ok {
			withReplica++
		}
	}
	// foo_a keeps its labels (replica too); the sum groups it away.
	if len(both) <= len(got) || withReplica == 0 {
		t.Errorf("dedup=false: %d series (%d with a replica label), deduplicated %d: the parameter did not pass", len(both), withReplica, len(got))
	}

	r := gw.call(context.Background(), http.MethodGet, "/api/v1/query", url.Values{"query": {"foo_a"}, "storeMatch[]": {`{__address__=~".+"}`}})
	var env envelope
	if r.code != http.StatusBadRequest || json.Unmarshal(r.body, &env) != nil || !strings.Contains(env.Error, `"storeMatch[]"`) {
		t.Errorf("storeMatch[]: %d %s, want 400 naming the parameter", r.code, truncate(string(r.body), 300))
	}
}

// checkThanosUI: Thanos Query's UI pages are static shells and pass; the
// API behind its store and flag pages is refused to a restricted user, not
// to an allow_all one.
func checkThanosUI(t *testing.T, user, admin endpoint) {
	get := func(e endpoint, path string) (int, string) {
		r := e.call(context.Background(), http.MethodGet, path, nil)
		if r.err != nil {
			t.Fatalf("%s: %v", path, r.err)
		}
		return r.code, string(r.body)
	}
	code, index := get(user, "/graph")
	if code != 200 || !strings.Contains(index, "THANOS_COMPONENT") {
		t.Fatalf("/graph: %d %s, want Thanos' page", code, truncate(index, 300))
	}
	for _, p := range []string{"/stores", "/status", "/flags", "/alerts", "/rules", "/targets"} {
		if code, body := get(user, p); code != 200 || body != index {
			t.Errorf("%s: %d, want 200 and the same static page as /graph", p, code)
		}
	}
	assets := regexp.MustCompile(`(?:src|href)="\.?/?(static/[^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(assets) == 0 {
		t.Fatalf("no static asset in the page: %s", truncate(index, 500))
	}
	for _, a := range assets {
		if code, _ := get(user, "/"+a[1]); code != 200 {
			t.Errorf("/%s: %d, want 200", a[1], code)
		}
	}
	for _, p := range []string{"/api/v1/stores", "/api/v1/status/flags", "/api/v1/query_explain?query=up"} {
		if code, body := get(user, p); code != http.StatusForbidden {
			t.Errorf("%s as a restricted user: %d %s, want 403", p, code, truncate(body, 200))
		}
		if code, body := get(admin, p); code == http.StatusForbidden {
			t.Errorf("%s as allow_all: %d %s, want Thanos' answer", p, code, truncate(body, 200))
		}
	}
	if code, body := get(user, "/api/v1/status/buildinfo"); code != 200 || !strings.Contains(body, "0.36.1") {
		t.Errorf("/api/v1/status/buildinfo: %d %s", code, truncate(body, 200))
	}
	t.Logf("Thanos UI: /graph and 6 other pages, %d assets passed; stores, flags and explain refused", len(assets))
}

// checkThanosTenancy: a Thanos Query enforcing tenancy on the team label
// (--query.enforce-tenancy) behind a promgate whose tenant is the user
// name: the user sees only the tenant's series, whatever THANOS-TENANT the
// client sends (its copy is removed, one tenant goes upstream).
func checkThanosTenancy(t *testing.T, promgate, thanos, dir string, shared *thanosStack) {
	var grpcs []string
	for _, sc := range shared.sidecars {
		// The sidecar's gRPC address is in its command line.
		for _, a := range sc.Cmd.Args {
			if v, ok := strings.CutPrefix(a, "--grpc-address="); ok {
				grpcs = append(grpcs, v)
			}
		}
	}
	q, err := startWith(t, testenv.Options{Name: "tenancy-query", Dir: dir, Args: func(addr string) []string {
		grpc, _ := testenv.FreeAddr()
		args := []string{thanos, "query", "--http-address=" + addr, "--grpc-address=" + grpc,
			"--query.replica-label=replica", "--query.enforce-tenancy", "--query.tenant-label-name=team", "--log.level=warn"}
		for _, g := range grpcs {
			args = append(args, "--endpoint="+g)
		}
		return args
	}})
	if err != nil {
		t.Fatal(err)
	}
	// User "a" may see every series; Thanos gives tenant "a" team="a".
	users := []*testPolicy{{id: "ta", user: "a", rules: [][]string{{`{__name__=~".+"}`}}}}
	gw, err := startPromgateWith(t, promgate, dir, "promgate-tenancy", q.url, users, `{kind: thanos, tenant: "{{ .User }}"}`)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(tenantHeader string) map[string]bool {
		req, _ := http.NewRequest(http.MethodGet, gw.url+"/api/v1/query?query="+url.QueryEscape("count by (team) (foo_a)")+"&time="+strconv.Itoa(BaseTime), nil)
		req.SetBasicAuth("a", users[0].password())
		if tenantHeader != "" {
			req.Header.Add("THANOS-TENANT", tenantHeader)
			req.Header.Add("Thanos-Tenant", "c")
		}
		var teams map[string]bool
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var env struct {
				Data struct {
					Result []thanosSeries `json:"result"`
				} `json:"data"`
			}
			if resp.StatusCode != 200 || json.Unmarshal(body, &env) != nil {
				t.Fatalf("tenancy query: %d %s", resp.StatusCode, truncate(string(body), 300))
			}
			teams = map[string]bool{}
			for _, s := range env.Data.Result {
				teams[s.Metric["team"]] = true
			}
			// The query finds its stores in the background.
			if len(teams) > 0 || time.Now().After(deadline) {
				return teams
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, h := range []string{"", "b"} {
		teams := ask(h)
		if len(teams) != 1 || !teams["a"] {
			t.Errorf("client THANOS-TENANT %q: teams %v, want only a (the tenant promgate names)", h, teams)
		}
	}
	// An invalid tenant (".." is not one): 403 naming it.
	bad := []*testPolicy{{id: "tb", user: "..", rules: [][]string{{`{team="a"}`}}}}
	gw2, err := startPromgateWith(t, promgate, dir, "promgate-tenancy-bad", q.url, bad, `{kind: thanos, tenant: "{{ .User }}"}`)
	if err != nil {
		t.Fatal(err)
	}
	r := endpoint{url: gw2.url, user: "..", pass: bad[0].password()}.call(context.Background(), http.MethodGet, "/api/v1/query", url.Values{"query": {"up"}})
	var env envelope
	if r.code != http.StatusForbidden || json.Unmarshal(r.body, &env) != nil || !strings.Contains(env.Error, `tenant ID ".."`) {
		t.Errorf("invalid tenant: %d %s, want 403 naming it", r.code, truncate(string(r.body), 300))
	}
}
