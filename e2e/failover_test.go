package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/testenv"
)

// loadOutcome is one request of a load run: when it was sent, when its answer
// ended, and what went wrong (empty: a right answer).
type loadOutcome struct {
	start, end time.Time
	failure    string
}

// loadRun sends requests from several goroutines until stopped, and keeps
// every loadOutcome.
type loadRun struct {
	mu       sync.Mutex
	outcomes []loadOutcome
	cancel   context.CancelFunc
	done     sync.WaitGroup
}

// startLoad runs send in workers goroutines, each waiting pause between
// its requests. send returns "" for a right answer, else what was wrong.
func startLoad(workers int, pause time.Duration, send func(ctx context.Context, worker, i int) string) *loadRun {
	ctx, cancel := context.WithCancel(context.Background())
	l := &loadRun{cancel: cancel}
	for w := range workers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for i := 0; ctx.Err() == nil; i++ {
				start := time.Now()
				f := send(ctx, w, i)
				if ctx.Err() != nil && f != "" {
					return // cut by the end of the run, not by a server
				}
				l.mu.Lock()
				l.outcomes = append(l.outcomes, loadOutcome{start, time.Now(), f})
				l.mu.Unlock()
				time.Sleep(pause)
			}
		}()
	}
	return l
}

// stop ends the run and returns its outcomes.
func (l *loadRun) stop() []loadOutcome {
	l.cancel()
	l.done.Wait()
	return l.outcomes
}

// between counts the outcomes sent in [from, to), and the failed ones.
func between(outs []loadOutcome, from, to time.Time) (total, failed int) {
	for _, o := range outs {
		if !o.start.Before(from) && o.start.Before(to) {
			total++
			if o.failure != "" {
				failed++
			}
		}
	}
	return total, failed
}

// window is a span of a run in which requests in flight may fail: a
// server being stopped.
type window struct {
	name     string
	from, to time.Time
}

// checkOnlyInFlightFailed fails the test for a failed request that was not
// in flight during one of the windows, and logs every failure.
func checkOnlyInFlightFailed(t *testing.T, outs []loadOutcome, start time.Time, windows ...window) (failed int) {
	t.Helper()
	for _, o := range outs {
		if o.failure == "" {
			continue
		}
		failed++
		in := ""
		for _, w := range windows {
			if !o.start.After(w.to) && !o.end.Before(w.from) {
				in = w.name
			}
		}
		t.Logf("failed request sent at %s, ended at %s (in flight during %q): %s",
			o.start.Sub(start).Round(time.Millisecond), o.end.Sub(start).Round(time.Millisecond), in, o.failure)
		if in == "" {
			t.Errorf("a request in flight outside %v failed: %s", windows, o.failure)
		}
	}
	return failed
}

// queryAs sends an instant query as user, alternately as GET and as a POST
// form, and checks that the answer is the user's team only.
func queryAs(ctx context.Context, base, user, pass string, i int) string {
	q := url.Values{"query": {"count by (team) (up)"}, "time": {"1700000000"}}
	var req *http.Request
	if i%2 == 0 {
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+q.Encode(), nil)
	} else {
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/query", strings.NewReader(q.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth(user, pass)
	resp, err := httpClient.Do(req)
	if err != nil {
		return req.Method + ": " + err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return req.Method + ": " + err.Error()
	}
	if resp.StatusCode != 200 {
		return fmt.Sprintf("%s: %d %s", req.Method, resp.StatusCode, body)
	}
	if !strings.Contains(string(body), `"team":"a"`) || strings.Contains(string(body), `"team":"b"`) {
		return req.Method + ": wrong answer: " + string(body)
	}
	return ""
}

// backendCounter reads one server's counter from promgate's metrics.
func backendCounter(t *testing.T, metricsURL, name, backend string) float64 {
	t.Helper()
	m := sample(scrapeFamilies(t, metricsURL, "text/plain"), name, map[string]string{"upstream": "prometheus", "backend": backend})
	if m == nil {
		t.Fatalf("%s{backend=%q} not exported", name, backend)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestFailover runs promgate in front of an HA pair of Prometheus servers
// holding the same data. Under load (queries as GET and POST), one server
// is stopped: only the requests in flight on it at that instant may fail,
// every other is answered by its twin. It is started again on its address
// and takes requests again once its fail_timeout has passed.
func TestFailover(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	promtool := requireTool(t, "promtool")
	prometheus := requireTool(t, "prometheus")
	dir := t.TempDir()
	om := filepath.Join(dir, "data.om")
	authWriteFile(t, om, smallData)
	var pair [2]*server
	var args [2]func(addr string) []string
	for i, name := range []string{"prometheus-a", "prometheus-b"} {
		data := filepath.Join(dir, name)
		if err := backfill(promtool, om, data); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, name+".yml")
		authWriteFile(t, cfg, "global:\n  scrape_interval: 1m\n")
		args[i] = func(addr string) []string { return testenv.PrometheusArgs(prometheus, cfg, data, addr) }
		s, err := startWith(t, testenv.Options{Name: name, Dir: dir, Args: args[i]})
		if err != nil {
			t.Fatal(err)
		}
		pair[i] = s
	}
	a, b := pair[0], pair[1]

	internalPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", internalPort)
	cfgFile := filepath.Join(dir, "promgate.yml")
	authWriteFile(t, cfgFile, fmt.Sprintf(`upstreams:
  prometheus:
    url: [%s, %s]
    load_balancing: least_loaded
    fail_timeout: 2s
authentication:
  basic_auth_users:
    alice: %s
policies:
  - {name: team-a, subjects: ["user:alice"], selectors: ['{team="a"}']}
`, a.url, b.url, authHash(t, "alice-pw", bcrypt.MinCost)))
	gate, err := startServer(t, "promgate-failover", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + cfgFile, "--web.listen-address=" + addr,
			fmt.Sprintf("--web.internal-listen-address=127.0.0.1:%d", internalPort)}
	})
	if err != nil {
		t.Fatal(err)
	}
	if f := queryAs(context.Background(), gate.url, "alice", "alice-pw", 0); f != "" {
		t.Fatalf("before the load: %s", f)
	}

	const workers = 6
	start := time.Now()
	load := startLoad(workers, 2*time.Millisecond, func(ctx context.Context, _, i int) string {
		return queryAs(ctx, gate.url, "alice", "alice-pw", i)
	})
	time.Sleep(3 * time.Second)
	aBefore := backendCounter(t, metricsURL, "promgate_upstream_backend_requests_total", a.url)
	stopping := time.Now()
	a.stop() // SIGTERM to its PID; returns once it has exited
	stopped := time.Now()
	time.Sleep(3 * time.Second)

	restarting := time.Now()
	a2, err := startWith(t, testenv.Options{Name: "prometheus-a-again", Dir: dir, Addr: a.Addr, Args: args[0]})
	if err != nil {
		load.stop()
		t.Fatal(err)
	}
	restarted := time.Now()
	aRestarted := backendCounter(t, metricsURL, "promgate_upstream_backend_requests_total", a2.url)
	time.Sleep(5 * time.Second)
	aEnd := backendCounter(t, metricsURL, "promgate_upstream_backend_requests_total", a2.url)
	bEnd := backendCounter(t, metricsURL, "promgate_upstream_backend_requests_total", b.url)
	aHealthy := backendCounter(t, metricsURL, "promgate_upstream_backend_healthy", a.url)

	// b crashes: SIGKILL, no graceful end of the requests it is serving.
	killing := time.Now()
	if err := syscall.Kill(b.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.Exited()
	killed := time.Now()
	time.Sleep(2 * time.Second)
	outs := load.stop()
	end := time.Now()
	aErrors := backendCounter(t, metricsURL, "promgate_upstream_backend_errors_total", a.url)

	failed := checkOnlyInFlightFailed(t, outs, start,
		window{"a stopped", stopping, stopped}, window{"b killed", killing, killed})
	t.Logf("failover: %d requests from %d workers in %s, %d failed; a stopped (SIGTERM) in %s, restarted in %s; b killed (SIGKILL) at %s",
		len(outs), workers, end.Sub(start).Round(time.Millisecond), failed,
		stopped.Sub(stopping).Round(time.Millisecond), restarted.Sub(restarting).Round(time.Millisecond),
		killing.Sub(start).Round(time.Millisecond))
	for _, p := range []window{
		{"both up", start, stopping},
		{"stopping a", stopping, stopped},
		{"a down", stopped, restarting},
		{"a starting", restarting, restarted},
		{"a back", restarted, killing},
		{"killing b", killing, killed},
		{"b dead", killed, end},
	} {
		total, f := between(outs, p.from, p.to)
		t.Logf("  %-11s %6d requests, %d failed", p.name, total, f)
		if (p.name == "a down" || p.name == "b dead") && (total < workers || f > 0) {
			t.Errorf("%s: %d requests, %d failed; want them all answered by the other", p.name, total, f)
		}
	}
	t.Logf("  promgate_upstream_backend_requests_total: a %.0f before the stop, %.0f at its restart, %.0f at the end; b %.0f; a's errors %.0f",
		aBefore, aRestarted, aEnd, bEnd, aErrors)
	if aBefore == 0 {
		t.Error("a took no requests before it was stopped")
	}
	if aErrors == 0 {
		t.Error("a's failure was not counted")
	}
	// Started again, it takes its share: at least a tenth of the requests
	// sent since, fail_timeout (2s) of the 5s included.
	backTotal, _ := between(outs, restarted, killing)
	if got := aEnd - aRestarted; got < float64(backTotal)/10 {
		t.Errorf("a took %.0f of the %d requests since its restart: it does not take load again", got, backTotal)
	}
	if aHealthy != 1 {
		t.Errorf("promgate_upstream_backend_healthy of a is %v at the end, want 1", aHealthy)
	}
}

// TestFailoverWrites sends remote writes through promgate to an HA pair of
// Prometheus receiving remote write: each write lands on exactly one of
// them, never on both; with one of them stopped, every write lands on the
// other (its connection to the stopped one could not be opened, so the
// stopped one never saw it).
func TestFailoverWrites(t *testing.T) {
	skipIfShort(t)
	requirePromgate(t)
	dir := t.TempDir()
	a := startRemotePrometheus(t, "receiver-a", dir, "global:\n  scrape_interval: 1m\n", "--web.enable-remote-write-receiver")
	b := startRemotePrometheus(t, "receiver-b", dir, "global:\n  scrape_interval: 1m\n", "--web.enable-remote-write-receiver")
	alice := remoteUser{name: "alice", selectors: []string{`{team="a"}`}}
	gate := startRemotePromgate(t, dir, "["+a.url+", "+b.url+"]", alice)

	write := func(seq int) {
		t.Helper()
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "ha_write"},
				{Name: "seq", Value: strconv.Itoa(seq)},
				{Name: "team", Value: "a"},
			},
			Samples: []prompb.Sample{{Value: float64(seq), Timestamp: time.Now().UnixMilli()}},
		}}}
		if code, body := rwPostWrite(t, gate.url, alice, req); code != http.StatusNoContent {
			t.Fatalf("write %d: %d %s", seq, code, body)
		}
	}
	seqs := func(s *server) map[string]bool {
		out := map[string]bool{}
		for _, m := range rwInstantQuery(t, s.url, "ha_write") {
			out[m["seq"]] = true
		}
		return out
	}

	const n = 20
	for i := range n {
		write(i)
	}
	onA, onB := seqs(a), seqs(b)
	for i := range n {
		seq := strconv.Itoa(i)
		if onA[seq] == onB[seq] {
			t.Errorf("write %d: on a %v, on b %v; want it on exactly one", i, onA[seq], onB[seq])
		}
	}
	t.Logf("both up: %d writes, %d on a, %d on b", n, len(onA), len(onB))
	if len(onA) == 0 || len(onB) == 0 {
		t.Errorf("least_loaded sent every write to one server: a %d, b %d", len(onA), len(onB))
	}

	a.stop()
	for i := n; i < 2*n; i++ {
		write(i)
	}
	onB = seqs(b)
	for i := n; i < 2*n; i++ {
		if !onB[strconv.Itoa(i)] {
			t.Errorf("write %d, sent with a stopped, is not on b", i)
		}
	}
}

// TestFailoverAlertmanager sends silences through promgate to two
// Alertmanagers (not clustered, so that each shows what it received): each
// silence is created on exactly one of them; with one stopped, silences
// are created on, listed from and expired on the other.
func TestFailoverAlertmanager(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	amBin := requireTool(t, "prometheus-alertmanager")
	dir := t.TempDir()
	amCfg := filepath.Join(dir, "alertmanager.yml")
	amWriteFile(t, amCfg, amConfigYAML)
	var ams [2]*server
	for i := range ams {
		name := fmt.Sprintf("alertmanager-%d", i+1)
		s, err := startWith(t, testenv.Options{Name: name, Dir: dir, Args: func(addr string) []string {
			return testenv.AlertmanagerArgs(amBin, amCfg, filepath.Join(dir, name), addr)
		}})
		if err != nil {
			t.Fatal(err)
		}
		ams[i] = s
	}
	cfgFile := filepath.Join(dir, "promgate.yml")
	amWriteFile(t, cfgFile, fmt.Sprintf(`upstreams:
  prometheus:
    url: http://127.0.0.1:9
  alertmanager:
    url: [%s, %s]
authentication:
  basic_auth_users:
    alice: %s
%s`, ams[0].url, ams[1].url, authHash(t, "alice-pw", bcrypt.MinCost), amPolicies))
	gate, err := startServer(t, "promgate-am-pair", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + cfgFile, "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}

	call := func(base, method, path, body string, auth bool) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if auth {
			req.SetBasicAuth("alice", "alice-pw")
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	silence := func() string {
		t.Helper()
		now := time.Now().UTC()
		body := fmt.Sprintf(`{"matchers":[{"name":"team","value":"a","isRegex":false,"isEqual":true}],"startsAt":%q,"endsAt":%q,"createdBy":"alice","comment":"pair"}`,
			now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
		code, resp := call(gate.url+"/alertmanager", http.MethodPost, "/api/v2/silences", body, true)
		var out struct{ SilenceID string }
		if code != 200 || json.Unmarshal([]byte(resp), &out) != nil || out.SilenceID == "" {
			t.Fatalf("POST silence: %d %s", code, resp)
		}
		return out.SilenceID
	}
	has := func(am *server, id string) bool {
		t.Helper()
		code, _ := call(am.url, http.MethodGet, "/api/v2/silence/"+id, "", false)
		return code == 200
	}

	perAM := [2]int{}
	for range 6 {
		id := silence()
		on := [2]bool{has(ams[0], id), has(ams[1], id)}
		if on[0] == on[1] {
			t.Errorf("silence %s: on the first %v, on the second %v; want it on exactly one", id, on[0], on[1])
		}
		for i := range on {
			if on[i] {
				perAM[i]++
			}
		}
	}
	t.Logf("6 silences created: %d on the first Alertmanager, %d on the second", perAM[0], perAM[1])

	ams[0].stop()
	id := silence()
	if !has(ams[1], id) {
		t.Errorf("silence %s, created with the first stopped, is not on the second", id)
	}
	if code, body := call(gate.url+"/alertmanager", http.MethodGet, "/api/v2/silences", "", true); code != 200 || !strings.Contains(body, id) {
		t.Errorf("listing with the first stopped: %d %s", code, truncate(body, 300))
	}
	if code, body := call(gate.url+"/alertmanager", http.MethodDelete, "/api/v2/silence/"+id, "", true); code != 200 {
		t.Errorf("expiring with the first stopped: %d %s", code, body)
	}
}
