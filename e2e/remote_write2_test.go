package e2e

// Remote write 2.0 through promgate, with real Prometheus 3.16 agents: a
// team's agent writes its series (native histograms and exemplars among
// them) into a Prometheus 3.16 and they read back the same through promgate
// and directly; another team's agent is refused and nothing of it arrives.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

const rw2ContentType = "application/x-protobuf;proto=io.prometheus.write.v2.Request"

// rw2Observations are what the scrape target's native histogram holds:
// fixed, so that every scrape gives the same histogram and the upstream's
// can be compared with it.
var rw2Observations = []float64{0.01, 0.02, 0.5, 1.5, 3}

// rw2Target serves a native histogram and a counter, both with exemplars,
// in the protobuf exposition format (Prometheus asks for it first).
func rw2Target(t *testing.T) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                        "rw2_latency_seconds",
		Help:                        "Latency of the test's requests.",
		NativeHistogramBucketFactor: 1.1,
		NativeHistogramMaxExemplars: 10,
	})
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "rw2_requests_total", Help: "Requests."})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "rw2_temperature_celsius", Help: "A gauge."})
	reg.MustRegister(h, c, g)
	for i, v := range rw2Observations {
		h.(prometheus.ExemplarObserver).ObserveWithExemplar(v, prometheus.Labels{"trace_id": fmt.Sprintf("trace-%d", i)})
	}
	c.(prometheus.ExemplarAdder).AddWithExemplar(42, prometheus.Labels{"trace_id": "counter-trace"})
	g.Set(21.5)
	s := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(s.Close)
	return s
}

func rw2AgentConfig(job, team, target, gateURL string, u remoteUser) string {
	return fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: %s
    scrape_native_histograms: true
    scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0, PrometheusText0.0.4]
    static_configs:
      - targets: [%q]
        labels:
          team: %q
remote_write:
  - url: %s/api/v1/write
    protobuf_message: io.prometheus.write.v2.Request
    send_exemplars: true
    send_native_histograms: true
    basic_auth:
      username: %s
      password: %s
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
`, job, target, team, gateURL, u.name, u.password())
}

// startAgent starts a Prometheus in agent mode: no TSDB, only the
// write-ahead log it remote-writes from.
func startAgent(t *testing.T, name, dir, config string) *server {
	t.Helper()
	bin := requireTool(t, "prometheus")
	cfg := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := startServer(t, name, dir, bin, func(addr string) []string {
		return []string{"--agent", "--config.file=" + cfg, "--storage.agent.path=" + filepath.Join(dir, name+"-wal"),
			"--web.listen-address=" + addr, "--log.level=info"}
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rw2Data is the data of a successful answer of base+path, as a client
// decodes it; user "" asks without credentials (the upstream directly).
func rw2Data(t *testing.T, base, path string, vs url.Values, u *remoteUser) any {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path+"?"+vs.Encode(), nil)
	if u != nil {
		req.SetBasicAuth(u.name, u.password())
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env struct {
		Status string
		Data   any
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		t.Fatalf("%s %v: %d %s", path, vs, resp.StatusCode, body)
	}
	return env.Data
}

// rw2Result is the result of an instant query.
func rw2Result(t *testing.T, base, expr string, at time.Time, u *remoteUser) []any {
	t.Helper()
	d := rw2Data(t, base, "/api/v1/query", url.Values{"query": {expr}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}, u)
	res, _ := d.(map[string]any)["result"].([]any)
	return res
}

// rw2PostV2 sends a 2.0 request as a Go client would and returns the
// answer.
func rw2PostV2(t *testing.T, base string, u remoteUser, req *writev2.Request) (*http.Response, string) {
	t.Helper()
	data, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest("POST", base+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, data)))
	hr.Header.Set("Content-Type", rw2ContentType)
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	hr.SetBasicAuth(u.name, u.password())
	resp, err := httpClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestRemoteWrite2: Prometheus 3.16 agents sending remote write 2.0
// through promgate into a Prometheus 3.16.
func TestRemoteWrite2(t *testing.T) {
	skipIfShort(t)
	requirePromgate(t)
	onlyPrometheus3(t, "remote write 2.0 and agents sending it are Prometheus 3's")
	dir := t.TempDir()
	upstream := startRemotePrometheus(t, "upstream", dir, "global:\n  scrape_interval: 1m\n",
		"--web.enable-remote-write-receiver", "--enable-feature=exemplar-storage")
	alice := remoteUser{name: "alice", selectors: []string{`{team="a"}`}}
	gate := startRemotePromgate(t, dir, upstream.url, alice)
	target := rw2Target(t)
	targetAddr := strings.TrimPrefix(target.URL, "http://")

	agentA := startAgent(t, "agent-a", dir, rw2AgentConfig("agent-a", "a", targetAddr, gate.url, alice))
	agentB := startAgent(t, "agent-b", dir, rw2AgentConfig("agent-b", "b", targetAddr, gate.url, alice))

	t.Run("allowed agent", func(t *testing.T) {
		rwWaitFor(t, "agent-a's series upstream", 90*time.Second, func() bool {
			return len(rwInstantQuery(t, upstream.url, `rw2_latency_seconds{job="agent-a"}`)) == 1 &&
				len(rwInstantQuery(t, upstream.url, `rw2_requests_total{job="agent-a"}`)) == 1 &&
				len(rwInstantQuery(t, upstream.url, `up{job="agent-a"}`)) == 1
		})
		for _, m := range rwInstantQuery(t, upstream.url, `{job="agent-a"}`) {
			if m["team"] != "a" {
				t.Errorf("series without team=a upstream: %v", m)
			}
		}
		// The native histogram arrived as one: its count and sum are the
		// target's observations.
		at := time.Now()
		sum := 0.0
		for _, v := range rw2Observations {
			sum += v
		}
		for expr, want := range map[string]float64{
			`histogram_count(rw2_latency_seconds{job="agent-a"})`: float64(len(rw2Observations)),
			`histogram_sum(rw2_latency_seconds{job="agent-a"})`:   sum,
			`rw2_requests_total{job="agent-a"}`:                   42,
		} {
			res := rw2Result(t, upstream.url, expr, at, nil)
			if len(res) != 1 {
				t.Fatalf("%s: %v", expr, res)
			}
			v := res[0].(map[string]any)["value"].([]any)[1].(string)
			if got, _ := strconv.ParseFloat(v, 64); got < want-1e-9 || got > want+1e-9 {
				t.Errorf("%s = %s, want %v", expr, v, want)
			}
		}
		// Read back through promgate as alice: the same answers.
		for _, expr := range []string{`rw2_latency_seconds{job="agent-a"}`, `{job="agent-a"}`, `rw2_requests_total`} {
			direct := rw2Result(t, upstream.url, expr, at, nil)
			through := rw2Result(t, gate.url, expr, at, &alice)
			if len(direct) == 0 || !reflect.DeepEqual(direct, through) {
				t.Errorf("%s: directly %v, through promgate %v", expr, direct, through)
			}
		}
		// The histogram is native: a histogram sample, no _bucket series.
		res := rw2Result(t, gate.url, `rw2_latency_seconds{job="agent-a"}`, at, &alice)
		if _, ok := res[0].(map[string]any)["histogram"]; !ok {
			t.Errorf("not a native histogram: %v", res[0])
		}
		if got := rwInstantQuery(t, upstream.url, `{__name__=~"rw2_latency_seconds_.+"}`); len(got) != 0 {
			t.Errorf("classic histogram series upstream: %v", got)
		}
		// Exemplars: Prometheus 3.16's sender puts them in series of their
		// own, without samples, which its receiver refuses (400, "TimeSeries
		// must contain at least one sample or histogram"; the rest of the
		// request is written): the agent's exemplars do not arrive, with or
		// without promgate. The Go client below writes exemplars with their
		// samples.
		for _, m := range []string{"prometheus_remote_storage_samples_failed_total", "prometheus_remote_storage_histograms_failed_total"} {
			if v := rwMetricSum(t, agentA.url, m); v != 0 {
				t.Errorf("agent-a: %s = %v", m, v)
			}
		}
		for _, m := range []string{"prometheus_remote_storage_samples_total", "prometheus_remote_storage_histograms_total"} {
			if v := rwMetricSum(t, agentA.url, m); v == 0 {
				t.Errorf("agent-a: %s = 0: nothing of that kind was sent", m)
			}
		}
	})

	t.Run("refused agent", func(t *testing.T) {
		rwWaitFor(t, "agent-b's samples refused", 90*time.Second, func() bool {
			return rwMetricSum(t, agentB.url, "prometheus_remote_storage_samples_failed_total") > 0
		})
		time.Sleep(3 * time.Second)
		for _, q := range []string{`{job="agent-b"}`, `{team="b"}`} {
			if got := rwInstantQuery(t, upstream.url, q); len(got) != 0 {
				t.Errorf("%s reached the upstream: %v", q, got)
			}
		}
		if !strings.Contains(agentB.log(), "403") {
			t.Errorf("agent-b's log does not show the 403:\n%s", agentB.log())
		}
		if v := rwMetricSum(t, agentB.url, "prometheus_remote_storage_samples_retried_total"); v != 0 {
			t.Errorf("agent-b retried %v samples: a 403 must be final", v)
		}
	})

	t.Run("Go client", func(t *testing.T) {
		now := time.Now().UnixMilli()
		build := func(teams ...string) *writev2.Request {
			st := writev2.NewSymbolTable()
			req := &writev2.Request{}
			for _, team := range teams {
				req.Timeseries = append(req.Timeseries, writev2.TimeSeries{
					LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "rw2_direct_hist", "team", team), nil),
					Histograms: []writev2.Histogram{{
						Count: &writev2.Histogram_CountFloat{CountFloat: 6}, Sum: 7.5, Schema: 1,
						ZeroCount:     &writev2.Histogram_ZeroCountFloat{ZeroCountFloat: 1},
						PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveCounts: []float64{2, 3},
						Timestamp: now,
					}},
					Exemplars: []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "direct-"+team), nil), Value: 1.2, Timestamp: now}},
					Metadata:  writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: st.Symbolize("A float histogram."), UnitRef: st.Symbolize("seconds")},
				})
			}
			req.Symbols = st.Symbols()
			return req
		}
		resp, body := rw2PostV2(t, gate.url, alice, build("a", "b"))
		if resp.StatusCode != 403 || !strings.Contains(body, `{__name__=\"rw2_direct_hist\", team=\"b\"}`) {
			t.Errorf("mixed write: status %d, body %s", resp.StatusCode, body)
		}
		resp, body = rw2PostV2(t, gate.url, alice, build("a"))
		if resp.StatusCode != 204 {
			t.Fatalf("allowed write: status %d, body %s", resp.StatusCode, body)
		}
		// The upstream's counts of what it wrote come back.
		for k, want := range map[string]string{"Samples": "0", "Histograms": "1", "Exemplars": "1"} {
			if got := resp.Header.Get("X-Prometheus-Remote-Write-" + k + "-Written"); got != want {
				t.Errorf("X-Prometheus-Remote-Write-%s-Written: %q, want %q", k, got, want)
			}
		}
		rwWaitFor(t, "the allowed histogram upstream", 30*time.Second, func() bool {
			return len(rwInstantQuery(t, upstream.url, `rw2_direct_hist`)) > 0
		})
		got := rwInstantQuery(t, upstream.url, `rw2_direct_hist`)
		if len(got) != 1 || got[0]["team"] != "a" {
			t.Errorf("upstream holds %v, want only the allowed histogram", got)
		}
		at := time.UnixMilli(now)
		res := rw2Result(t, gate.url, `histogram_count(rw2_direct_hist)`, at, &alice)
		if len(res) != 1 || res[0].(map[string]any)["value"].([]any)[1] != "6" {
			t.Errorf("float histogram read back as %v", res)
		}
		if d, th := rw2Result(t, upstream.url, `rw2_direct_hist`, at, nil), rw2Result(t, gate.url, `rw2_direct_hist`, at, &alice); !reflect.DeepEqual(d, th) {
			t.Errorf("directly %v, through promgate %v", d, th)
		}
		// Its exemplar, the same both ways; team b's was never written.
		ex := url.Values{"query": {`rw2_direct_hist`}, "start": {strconv.FormatInt(at.Add(-time.Minute).Unix(), 10)}, "end": {strconv.FormatInt(at.Add(time.Minute).Unix(), 10)}}
		direct := rw2Data(t, upstream.url, "/api/v1/query_exemplars", ex, nil)
		through := rw2Data(t, gate.url, "/api/v1/query_exemplars", ex, &alice)
		if s := fmt.Sprint(direct); !strings.Contains(s, "direct-a") || strings.Contains(s, "direct-b") || !reflect.DeepEqual(direct, through) {
			t.Errorf("exemplars: directly %v, through promgate %v", direct, through)
		}
	})

	t.Run("remote write 1.0 alongside", func(t *testing.T) {
		now := time.Now().UnixMilli()
		code, body := rwPostWrite(t, gate.url, alice, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "rw2_v1_probe"}, {Name: "team", Value: "a"}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: now}},
		}}})
		if code != 204 {
			t.Fatalf("1.0 write: status %d, body %s", code, body)
		}
		rwWaitFor(t, "the 1.0 probe upstream", 30*time.Second, func() bool {
			return len(rwInstantQuery(t, upstream.url, `rw2_v1_probe{team="a"}`)) == 1
		})
	})
}
