package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The noisy-neighbour data: team a has many counters, so that its
// aggregations over subqueries keep Prometheus' CPU busy; team b has a few
// series, read by a small instant query.
const (
	nnSeries = 400
	nnSpan   = 2 * 3600
	nnStep   = 30
	nnEnd    = 1700000000
)

func noisyData() string {
	var b strings.Builder
	b.WriteString("# TYPE work counter\n")
	for i := range nnSeries {
		for ts := int64(nnEnd - nnSpan); ts <= nnEnd; ts += nnStep {
			fmt.Fprintf(&b, "work_total{team=\"a\",instance=\"a-%03d\"} %d %d\n", i, (ts-nnEnd+nnSpan)*int64(1+i%7), ts)
		}
	}
	b.WriteString("# TYPE up gauge\n")
	for i := range 8 {
		for _, team := range []string{"a", "b"} {
			for ts := int64(nnEnd - 600); ts <= nnEnd; ts += nnStep {
				fmt.Fprintf(&b, "up{team=%q,instance=\"%s-%d\"} 1 %d\n", team, team, i, ts)
			}
		}
	}
	b.WriteString("# EOF\n")
	return b.String()
}

// The queries: alice's costs Prometheus about 300 ms of CPU (a range query
// of 1,081 steps, each summing half an hour of her 400 counters) and
// allocates little, so that it loads the CPU, not the garbage collector,
// whose pauses would reach bob's queries whatever alice's concurrency; bob's
// is the small query of the benchmark.
var (
	aliceQuery = "/api/v1/query_range?" + url.Values{
		"query": {"sum(sum_over_time(work_total[30m]))"},
		"start": {strconv.Itoa(nnEnd - 5400)}, "end": {strconv.Itoa(nnEnd)}, "step": {"5"},
	}.Encode()
	bobQuery = "/api/v1/query?" + url.Values{"query": {"up"}, "time": {strconv.Itoa(nnEnd)}}.Encode()
)

// noisyEnv is a Prometheus on the noisy-neighbour data and, in front of
// it, three promgates that differ in alice's limits: one query at a time
// (limited), a share of the upstream's time as well (share), none (open);
// bob has no limit in any.
type noisyEnv struct {
	prom                 *server
	limited, share, open *server
	client               *http.Client
	promUpstreamURL      string
}

func startNoisyEnv(t *testing.T, upstream func(promURL string) string) *noisyEnv {
	t.Helper()
	bin := requirePromgate(t)
	promtool := requireTool(t, "promtool")
	prometheus := requireTool(t, "prometheus")
	dir := t.TempDir()
	om := filepath.Join(dir, "data.om")
	if err := os.WriteFile(om, []byte(noisyData()), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := backfill(promtool, om, data); err != nil {
		t.Fatal(err)
	}
	prom, err := startPrometheus(t, prometheus, "prometheus-noisy", data)
	if err != nil {
		t.Fatal(err)
	}
	e := &noisyEnv{prom: prom, promUpstreamURL: prom.url}
	if upstream != nil {
		e.promUpstreamURL = upstream(prom.url)
	}
	gate := func(name, aliceLimits string) *server {
		file := filepath.Join(dir, name+".yml")
		authWriteFile(t, file, fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  trusted_header:
    name: X-Forwarded-User
    trusted_sources: [127.0.0.1/32]
policies:
  - name: alice
    subjects: ["user:alice"]
    selectors: ['{team="a"}']
%s  - name: bob
    subjects: ["user:bob"]
    selectors: ['{team="b"}']
`, e.promUpstreamURL, aliceLimits))
		s, err := startServer(t, name, dir, bin, func(addr string) []string {
			return []string{"--config.file=" + file, "--web.listen-address=" + addr, "--log.level=warn"}
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Alice's excess requests wait in promgate's queue rather than being
	// refused: a refused flood would come back at once and measure the
	// cost of 429s, not of her queries.
	e.limited = gate("promgate-limited", "    limits: {max_concurrent: 1, max_queue_wait: 1m}\n")
	e.share = gate("promgate-share", "    limits: "+shareLimits()+"\n")
	e.open = gate("promgate-open", "")
	e.client = &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// shareLimits are alice's limits in the share promgate:
// PROMGATE_NOISY_ALICE_LIMITS (a YAML flow mapping), or one query at a
// time within a fiftieth of the upstream's time, saved up to a fifth of a
// second: about one of her heavy queries a few seconds apart.
func shareLimits() string {
	if l := os.Getenv("PROMGATE_NOISY_ALICE_LIMITS"); l != "" {
		return l
	}
	return "{max_concurrent: 1, max_queue_wait: 1m, upstream_time: 0.02, upstream_time_burst: 200ms}"
}

// get sends one query as user and returns its status and body.
func (e *noisyEnv) get(ctx context.Context, base, user, path string) (int, string, error) {
	code, body, _, err := e.getWait(ctx, base, user, path)
	return code, body, err
}

// getWait is get, with the Retry-After of a 429 (at least a second).
func (e *noisyEnv) getWait(ctx context.Context, base, user, path string) (int, string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, "", 0, err
	}
	req.Header.Set("X-Forwarded-User", user)
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	wait := time.Second
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 1 {
		wait = time.Duration(s) * time.Second
	}
	return resp.StatusCode, string(body), wait, err
}

// floodCount is what a flood got: answers, and refusals with 429.
type floodCount struct{ answered, refused atomic.Int64 }

// flood runs alice's query from n clients back to back until ctx ends, and
// counts her answers and refusals; any answer but 200 or 429 (or the end
// of ctx) is an error.
func (e *noisyEnv) flood(ctx context.Context, t *testing.T, base string, n int) (done *sync.WaitGroup, count *floodCount) {
	done, count = &sync.WaitGroup{}, &floodCount{}
	for range n {
		done.Go(func() {
			for ctx.Err() == nil {
				code, body, wait, err := e.getWait(ctx, base, "alice", aliceQuery)
				if ctx.Err() != nil {
					return
				}
				if err == nil && code == http.StatusTooManyRequests {
					// Over a limit: a well-behaved client waits as told.
					count.refused.Add(1)
					select {
					case <-ctx.Done():
					case <-time.After(wait):
					}
					continue
				}
				if err != nil || code != http.StatusOK {
					t.Errorf("alice: %d %v %s", code, err, truncate(body, 300))
					return
				}
				count.answered.Add(1)
			}
		})
	}
	return done, count
}

// bob sends his small query from workers clients, each waiting pause after
// every answer, for d, and returns the latencies; every answer must be 200
// with his data only.
func (e *noisyEnv) bob(t *testing.T, base string, workers int, pause, d time.Duration) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for range workers {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(end) {
				start := time.Now()
				code, body, err := e.get(context.Background(), base, "bob", bobQuery)
				took := time.Since(start)
				if err != nil || code != http.StatusOK || strings.Contains(body, `"team":"a"`) || !strings.Contains(body, `"team":"b"`) {
					t.Errorf("bob: %d %v %s", code, err, truncate(body, 300))
					return
				}
				mine = append(mine, took)
				time.Sleep(pause)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return lat
}

// quiesce waits until Prometheus runs no query (alice's cancelled ones end
// at the next step of their evaluation).
func (e *noisyEnv) quiesce(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, body := internalGet(t, http.MethodGet, e.prom.url+"/metrics")
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, "prometheus_engine_queries "); ok && strings.TrimSpace(v) == "0" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("Prometheus still runs queries 30s after the flood ended")
}

func percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func medianDuration(xs []time.Duration) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// aliceInFlight counts, in front of Prometheus, alice's queries being
// answered at once, and their maximum.
type aliceInFlight struct {
	now, peak atomic.Int64
}

func (a *aliceInFlight) proxy(t *testing.T, promURL string) string {
	target, err := url.Parse(promURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // alice's cancelled queries at the end of the flood
	// Prometheus evaluates a query before it answers: a query is done when
	// its answer's header arrives, before promgate can read its body and
	// let the next one of alice's through.
	type key struct{}
	done := func(r *http.Request) {
		if c, ok := r.Context().Value(key{}).(*atomic.Bool); ok && c.CompareAndSwap(false, true) {
			a.now.Add(-1)
		}
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		done(resp.Request)
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil && strings.Contains(r.Form.Get("query"), "work_total") {
			n := a.now.Add(1)
			for p := a.peak.Load(); n > p && !a.peak.CompareAndSwap(p, n); p = a.peak.Load() {
			}
			r = r.WithContext(context.WithValue(r.Context(), key{}, new(atomic.Bool)))
			defer done(r)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestNoisyNeighbourConfined is the cheap, always-run part of the
// noisy-neighbour measurement: alice floods with 6 concurrent heavy
// queries while bob queries. With her max_concurrent 1, at most one of her
// queries reaches Prometheus at a time, all of them are answered (queued,
// not refused), and bob's all pass with his data; without the limit her
// queries reach Prometheus side by side (the check can fail).
func TestNoisyNeighbourConfined(t *testing.T) {
	skipIfShort(t)
	var inflight aliceInFlight
	e := startNoisyEnv(t, func(promURL string) string { return inflight.proxy(t, promURL) })
	for _, c := range []struct {
		name     string
		gate     *server
		wantPeak func(int64) bool
		want     string
	}{
		{"limited", e.limited, func(p int64) bool { return p == 1 }, "1"},
		{"open", e.open, func(p int64) bool { return p >= 3 }, "at least 3"},
	} {
		inflight.peak.Store(0)
		ctx, cancel := context.WithCancel(context.Background())
		done, count := e.flood(ctx, t, c.gate.url, 6)
		lat := e.bob(t, c.gate.url, 2, 20*time.Millisecond, 3*time.Second)
		// Read before the flood is cancelled: a cancelled query leaves
		// promgate before Prometheus notices.
		peak := inflight.peak.Load()
		cancel()
		done.Wait()
		e.quiesce(t)
		t.Logf("%s: alice %d queries answered, at most %d at once at Prometheus; bob %d queries, p50 %s p99 %s",
			c.name, count.answered.Load(), peak, len(lat), percentile(lat, 0.5), percentile(lat, 0.99))
		if !c.wantPeak(peak) {
			t.Errorf("%s: at most %d of alice's queries at once reached Prometheus, want %s", c.name, peak, c.want)
		}
		if count.answered.Load() == 0 || len(lat) == 0 {
			t.Errorf("%s: alice had %d answers, bob %d: the flood or the probe did not run", c.name, count.answered.Load(), len(lat))
		}
	}
}

// TestNoisyNeighbourP99 measures what alice's flood does to bob's p99
// latency through the real Prometheus (SPEC: one tenant's flood must not
// raise another's p99 by more than 10 %). Bob sends a steady stream of
// small queries; phases of bob alone (baseline) and of bob while alice
// floods with many concurrent CPU-heavy queries alternate, their order
// rotated over several rounds, and the medians of the phases' p99 are
// compared. Alice floods through three promgates:
//
//   - open (no limit): at least 50 % above the baseline, else the flood
//     is not heavy enough for the measurement to prove anything;
//   - limited (max_concurrent 1): at most a tenth of the open rise
//     (asserted); the 10 % goal printed as met or missed. One query at a
//     time is a share of the upstream that depends on its cost and on
//     the upstream's CPUs: on two, alice's one heavy query holds one of
//     them, and bob's tail pays for it;
//   - share (upstream_time, with max_concurrent 1): the goal, at most 10 %
//     above the baseline plus the noise of the machine (the baseline's own
//     spread: the median absolute deviation of its p99s relative to their
//     median), asserted; and alice is served, not starved: some of her
//     queries are answered, the rest refused with 429.
//
// It is a measurement on a quiet machine: it runs under `make bench`
// (PROMGATE_BENCH=1), never in `make test`. PROMGATE_NOISY_ROUNDS and
// PROMGATE_NOISY_SECONDS set the rounds (default 5) and the length of a
// phase (default 4 s); PROMGATE_NOISY_ALICE_LIMITS alice's limits in the
// share promgate.
func TestNoisyNeighbourP99(t *testing.T) {
	if os.Getenv("PROMGATE_BENCH") == "" {
		t.Skip("a latency measurement: run by make bench (PROMGATE_BENCH=1)")
	}
	skipIfShort(t)
	if runtime.NumCPU() < 2 {
		t.Skipf("%d CPU: alice's one query at a time takes the whole machine; the measurement needs two or more", runtime.NumCPU())
	}
	rounds, phase := 5, 4*time.Second
	if n, err := strconv.Atoi(os.Getenv("PROMGATE_NOISY_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	if s, err := strconv.Atoi(os.Getenv("PROMGATE_NOISY_SECONDS")); err == nil && s > 0 {
		phase = time.Duration(s) * time.Second
	}
	const (
		floodClients = 8
		bobWorkers   = 2
		bobPause     = 10 * time.Millisecond
	)
	e := startNoisyEnv(t, nil)

	// Warm-up: every gate, both users, the flood's query once.
	for _, g := range []*server{e.limited, e.share, e.open} {
		e.bob(t, g.url, bobWorkers, bobPause, 500*time.Millisecond)
		start := time.Now()
		if code, body, err := e.get(context.Background(), g.url, "alice", aliceQuery); err != nil || code != 200 {
			t.Fatalf("alice: %d %v %s", code, err, truncate(body, 300))
		}
		t.Logf("alice's query alone: %s", time.Since(start).Round(time.Millisecond))
	}

	type phaseKind struct {
		name  string
		gate  *server
		flood bool
	}
	phases := []phaseKind{
		{"baseline", e.limited, false},
		{"limited", e.limited, true},
		{"share", e.share, true},
		{"baseline", e.open, false},
		{"open", e.open, true},
	}
	p99 := map[string][]time.Duration{}
	var shareAnswered, shareRefused int64
	for r := range rounds {
		for i := range phases {
			ph := phases[(i+r)%len(phases)]
			var done *sync.WaitGroup
			var count *floodCount
			cancel := func() {}
			if ph.flood {
				var ctx context.Context
				ctx, cancel = context.WithCancel(context.Background())
				done, count = e.flood(ctx, t, ph.gate.url, floodClients)
				time.Sleep(300 * time.Millisecond) // the flood under way
			}
			lat := e.bob(t, ph.gate.url, bobWorkers, bobPause, phase)
			cancel()
			if done != nil {
				done.Wait()
			}
			e.quiesce(t)
			if t.Failed() {
				t.FailNow()
			}
			p := percentile(lat, 0.99)
			p99[ph.name] = append(p99[ph.name], p)
			flood := ""
			if count != nil {
				flood = fmt.Sprintf(", alice %d answers, %d refused", count.answered.Load(), count.refused.Load())
				if ph.name == "share" {
					shareAnswered += count.answered.Load()
					shareRefused += count.refused.Load()
				}
			}
			t.Logf("round %d %-8s bob %4d queries p50 %6s p99 %6s%s", r+1, ph.name, len(lat),
				percentile(lat, 0.5).Round(10*time.Microsecond), p.Round(10*time.Microsecond), flood)
		}
	}

	base := medianDuration(p99["baseline"])
	var dev []time.Duration
	for _, p := range p99["baseline"] {
		dev = append(dev, (p - base).Abs())
	}
	noise := float64(medianDuration(dev)) / float64(base)
	rise := func(name string) float64 { return float64(medianDuration(p99[name]))/float64(base) - 1 }
	limited, share, open := rise("limited"), rise("share"), rise("open")
	at := func(name string) string { return medianDuration(p99[name]).Round(10 * time.Microsecond).String() }
	t.Logf("bob's p99 (medians of %d rounds): alone %s; alice flooding with max_concurrent 1 %s (%+.1f%%), with upstream_time %s (%+.1f%%), with no limit %s (%+.1f%%); noise of the baseline %.1f%%",
		rounds, base.Round(10*time.Microsecond), at("limited"), 100*limited, at("share"), 100*share, at("open"), 100*open, 100*noise)
	t.Logf("alice under upstream_time: %d queries answered, %d refused with 429 in %d phases of %s", shareAnswered, shareRefused, rounds, phase)
	if open < 0.5+noise {
		t.Errorf("without the limit alice's flood raises bob's p99 by only %+.1f%%: the flood is not heavy enough for the measurement to mean anything", 100*open)
	}
	// One query at a time must take away nearly all of the harm: at most a
	// tenth of the rise without it. The goal is printed for it, not
	// asserted: it depends on the upstream's CPUs.
	if limited > 0.1*open {
		t.Errorf("with alice's max_concurrent 1 her flood raises bob's p99 by %+.1f%%, more than a tenth of the %+.1f%% without it", 100*limited, 100*open)
	}
	verdict := "met"
	if limited > 0.10+noise {
		verdict = "missed"
	}
	t.Logf("max_concurrent 1 alone: goal %s (%+.1f%%; at most 10%% + %.1f%% noise)", verdict, 100*limited, 100*noise)
	// The goal, with a share of the upstream's time.
	if share > 0.10+noise {
		t.Errorf("goal missed: with alice's limits %s her flood raises bob's p99 by %+.1f%%; the goal is at most 10%% (+ %.1f%% noise)", shareLimits(), 100*share, 100*noise)
	} else {
		t.Logf("goal met: with alice's limits %s her flood raises bob's p99 by %+.1f%%; the goal is at most 10%% (+ %.1f%% noise)", shareLimits(), 100*share, 100*noise)
	}
	if shareAnswered == 0 || shareRefused == 0 {
		t.Errorf("alice under upstream_time: %d answered, %d refused; want both (served within her share, refused beyond it)", shareAnswered, shareRefused)
	}
}
