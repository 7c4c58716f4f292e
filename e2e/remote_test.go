package e2e

// Remote read and remote write through promgate, against real Prometheus
// servers: a reader Prometheus whose remote_read points at promgate answers
// what an oracle holding only the tenant's series answers; writers whose
// series are outside the policy are refused and nothing of theirs arrives.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"golang.org/x/crypto/bcrypt"
)

// remoteUser is a promgate user of these tests and the selectors of its
// policies (one policy per selector).
type remoteUser struct {
	name      string
	selectors []string
}

func (u remoteUser) password() string { return "pw-" + u.name }

// writeRemoteConfig writes promgate.yml for users in front of upstream.
func writeRemoteConfig(t *testing.T, dir, upstream string, users ...remoteUser) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "upstreams:\n  prometheus:\n    url: %s\n    timeout: 30s\nauthentication:\n  basic_auth_users:\n", upstream)
	for _, u := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(u.password()), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "    %s: %s\n", u.name, hash)
	}
	b.WriteString("policies:\n")
	for _, u := range users {
		for i, s := range u.selectors {
			fmt.Fprintf(&b, "  - name: %s-%d\n    subjects: [\"user:%s\"]\n    selectors: [%s]\n", u.name, i, u.name, strconv.Quote(s))
		}
	}
	path := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startRemotePromgate(t *testing.T, dir, upstream string, users ...remoteUser) *server {
	t.Helper()
	bin := requirePromgate(t)
	cfg := writeRemoteConfig(t, dir, upstream, users...)
	s, err := startServer(t, "promgate", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + cfg, "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startConfiguredPrometheus starts Prometheus with the given configuration
// and an empty TSDB of its own.
func startRemotePrometheus(t *testing.T, name, dir, config string, flags ...string) *server {
	t.Helper()
	bin := requireTool(t, "prometheus")
	cfg := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := startServer(t, name, dir, bin, func(addr string) []string {
		return append([]string{
			"--config.file=" + cfg,
			"--storage.tsdb.path=" + filepath.Join(dir, name+"-data"),
			"--storage.tsdb.retention.time=100y",
			"--web.listen-address=" + addr,
			"--log.level=info",
		}, flags...)
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rrResult is a remote read answer: per query, its series as
// `labels: t=v t=v ...`, in the order received.
type rrResult [][]string

// doRemoteRead sends req to base/api/v1/read and decodes the answer. The
// samples of a streamed answer are decoded from its chunks.
func doRemoteRead(base, user, pass string, req *prompb.ReadRequest) (rrResult, error) {
	data, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequest("POST", base+"/api/v1/read", bytes.NewReader(snappy.Encode(nil, data)))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	if user != "" {
		hr.SetBasicAuth(user, pass)
	}
	resp, err := httpClient.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	out := make(rrResult, len(req.Queries))
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-streamed-protobuf") {
		return out, rrDecodeStreamed(body, out)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, err
	}
	var rr prompb.ReadResponse
	if err := rr.Unmarshal(raw); err != nil {
		return nil, err
	}
	if len(rr.Results) != len(req.Queries) {
		return nil, fmt.Errorf("%d results for %d queries", len(rr.Results), len(req.Queries))
	}
	for i, res := range rr.Results {
		for _, ts := range res.Timeseries {
			var b strings.Builder
			b.WriteString(rrLabels(ts.Labels) + ":")
			for _, s := range ts.Samples {
				fmt.Fprintf(&b, " %d=%x", s.Timestamp, math.Float64bits(s.Value))
			}
			out[i] = append(out[i], b.String())
		}
	}
	return out, nil
}

func rrLabels(ls []prompb.Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// decodeStreamed reads the frames of a streamed answer; a series split
// across consecutive frames becomes one entry.
func rrDecodeStreamed(body []byte, out rrResult) error {
	r := bufio.NewReader(bytes.NewReader(body))
	last := map[int64]string{}
	for {
		size, err := binary.ReadUvarint(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var crc [4]byte
		if _, err := io.ReadFull(r, crc[:]); err != nil {
			return err
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return err
		}
		if crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)) != binary.BigEndian.Uint32(crc[:]) {
			return fmt.Errorf("frame checksum mismatch")
		}
		var f prompb.ChunkedReadResponse
		if err := f.Unmarshal(data); err != nil {
			return err
		}
		if f.QueryIndex < 0 || f.QueryIndex >= int64(len(out)) {
			return fmt.Errorf("frame for query %d", f.QueryIndex)
		}
		for _, cs := range f.ChunkedSeries {
			id := rrLabels(cs.Labels)
			var b strings.Builder
			for _, c := range cs.Chunks {
				if c.Type != prompb.Chunk_XOR {
					return fmt.Errorf("chunk type %v", c.Type)
				}
				chk, err := chunkenc.FromData(chunkenc.EncXOR, c.Data)
				if err != nil {
					return err
				}
				it := chk.Iterator(nil)
				for it.Next() != chunkenc.ValNone {
					ts, v := it.At()
					fmt.Fprintf(&b, " %d=%x", ts, math.Float64bits(v))
				}
				if it.Err() != nil {
					return it.Err()
				}
			}
			q := f.QueryIndex
			if last[q] == id {
				out[q][len(out[q])-1] += b.String()
			} else {
				out[q] = append(out[q], id+":"+b.String())
			}
			last[q] = id
		}
	}
}

// rrQuery is an instant query at time t, or a range query when step > 0.
type rrQuery struct {
	expr            string
	time, end, step int64
}

func (q rrQuery) String() string {
	if q.step > 0 {
		return fmt.Sprintf("%s [%d..%d/%d]", q.expr, q.time, q.end, q.step)
	}
	return fmt.Sprintf("%s @%d", q.expr, q.time)
}

func (q rrQuery) run(e endpoint) response {
	ctx := context.Background()
	if q.step > 0 {
		return e.call(ctx, "GET", "/api/v1/query_range", url.Values{"query": {q.expr},
			"start": {strconv.FormatInt(q.time, 10)}, "end": {strconv.FormatInt(q.end, 10)}, "step": {strconv.FormatInt(q.step, 10)}})
	}
	return e.call(ctx, "GET", "/api/v1/query", url.Values{"query": {q.expr}, "time": {strconv.FormatInt(q.time, 10)}})
}

// resultCount is the number of series in a query answer (-1 if it is not one).
func rrResultCount(r response) int {
	var env struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if r.err != nil || json.Unmarshal(r.body, &env) != nil {
		return -1
	}
	return len(env.Data.Result)
}

// TestRemoteRead: a reader Prometheus with remote_read pointing at promgate
// (and no data of its own) answers PromQL exactly like the tenant's oracle;
// and a Go client reading SAMPLES and streamed chunks through promgate gets
// the oracle's series, for a one-selector and a two-selector policy.
func TestRemoteRead(t *testing.T) {
	skipIfShort(t)
	requirePromgate(t)
	promtool := requireTool(t, "promtool")
	prometheus := requireTool(t, "prometheus")
	dir := t.TempDir()

	users := []remoteUser{
		{name: "ann", selectors: []string{`{team="a"}`}},
		{name: "bert", selectors: []string{`{team="b"}`, `{__name__=~"node_.*", shared="true"}`}},
	}
	ds := Generate()
	datasets := []*Dataset{ds}
	for _, u := range users {
		sels, err := ParseSelectors(u.selectors...)
		if err != nil {
			t.Fatal(err)
		}
		datasets = append(datasets, ds.Filter(sels))
	}
	names := []string{"shared", "oracle-ann", "oracle-bert"}
	servers := make([]*server, len(names))
	if errs := parallel(len(names), 3, func(i int) error {
		om := filepath.Join(dir, names[i]+".om")
		data := filepath.Join(dir, names[i]+"-data")
		if err := datasets[i].WriteOpenMetricsFile(om); err != nil {
			return err
		}
		if err := backfill(promtool, om, data); err != nil {
			return err
		}
		s, err := startPrometheus(t, prometheus, "prometheus-"+names[i], data)
		servers[i] = s
		return err
	}); len(errs) > 0 {
		t.Fatal(errs)
	}
	shared := servers[0]
	gate := startRemotePromgate(t, dir, shared.url, users...)

	for ui, u := range users {
		oracle := servers[ui+1]
		t.Run(u.name, func(t *testing.T) {
			reader := startRemotePrometheus(t, "reader-"+u.name, dir, fmt.Sprintf(`global:
  scrape_interval: 1m
remote_read:
  - url: %s/api/v1/read
    read_recent: true
    basic_auth:
      username: %s
      password: %s
`, gate.url, u.name, u.password()))

			t.Run("reader Prometheus", func(t *testing.T) {
				exprs := []string{
					`count by (team) (up)`,
					`up{job="api"}`,
					`sum(rate(http_requests_total[5m]))`,
					`sum by (team, code) (rate(http_requests_total[5m]))`,
					`{__name__=~"node_load.*"}`,
					`max_over_time(node_cpu_temp[10m])`,
					`count by (__name__) ({__name__=~".+"})`,
					`histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))`,
					`foo_a`,
					`go_goroutines`,
					`node_sensor_reading`,
				}
				var queries []rrQuery
				for _, e := range exprs {
					queries = append(queries,
						rrQuery{expr: e, time: BaseTime},
						rrQuery{expr: e, time: BaseTime - 30*60},
						rrQuery{expr: e, time: BaseTime - 3600, end: BaseTime, step: 60})
				}
				readerEP := endpoint{name: "reader", url: reader.url}
				oracleEP := endpoint{name: "oracle", url: oracle.url}
				sharedEP := endpoint{name: "shared", url: shared.url}
				nonEmpty, discriminating := 0, 0
				for _, q := range queries {
					o, r := q.run(oracleEP), q.run(readerEP)
					if d := compareAnswers(kindQuery, o, r); d != "" {
						t.Errorf("%s: reader and oracle differ: %s\noracle: %s\nreader: %s", q, d, truncate(string(o.body), 600), truncate(string(r.body), 600))
						continue
					}
					if rrResultCount(o) > 0 {
						nonEmpty++
					}
					if compareAnswers(kindQuery, o, q.run(sharedEP)) != "" {
						discriminating++
					}
				}
				t.Logf("%d queries equal to the oracle's; %d with results, %d that differ on the shared Prometheus", len(queries), nonEmpty, discriminating)
				if nonEmpty < len(queries)/2 || discriminating < len(queries)/2 {
					t.Errorf("the queries prove too little: %d with results, %d discriminating, of %d", nonEmpty, discriminating, len(queries))
				}
			})

			for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
				t.Run("Go client "+rt.String(), func(t *testing.T) {
					start, end := int64(BaseTime-15*60)*1000, int64(BaseTime)*1000
					req := &prompb.ReadRequest{
						AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt},
						Queries: []*prompb.Query{
							{StartTimestampMs: start, EndTimestampMs: end, Matchers: []*prompb.LabelMatcher{
								{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: "node_load.*|up"}}},
							{StartTimestampMs: start, EndTimestampMs: end, Matchers: []*prompb.LabelMatcher{
								{Type: prompb.LabelMatcher_EQ, Name: "env", Value: "prod"},
								{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: "node_.*"}},
								Hints: &prompb.ReadHints{StartMs: start, EndMs: end, Func: "rate", RangeMs: 300000}},
							{StartTimestampMs: start, EndTimestampMs: end, Matchers: []*prompb.LabelMatcher{
								{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "go_goroutines"}}},
						},
					}
					want, err := doRemoteRead(oracle.url, "", "", req)
					if err != nil {
						t.Fatal("oracle:", err)
					}
					got, err := doRemoteRead(gate.url, u.name, u.password(), req)
					if err != nil {
						t.Fatal("promgate:", err)
					}
					total := 0
					for i := range req.Queries {
						total += len(want[i])
						if len(got[i]) != len(want[i]) {
							t.Errorf("query %d: %d series through promgate, %d in the oracle", i, len(got[i]), len(want[i]))
							continue
						}
						for j := range want[i] {
							if got[i][j] != want[i][j] {
								t.Errorf("query %d series %d:\n got %s\nwant %s", i, j, truncate(got[i][j], 300), truncate(want[i][j], 300))
							}
						}
					}
					if total == 0 || len(want[0]) == 0 || len(want[1]) == 0 {
						t.Errorf("the oracle answered too little to prove anything: %v series", total)
					}
					all, err := doRemoteRead(shared.url, "", "", req)
					if err != nil {
						t.Fatal(err)
					}
					if len(all[0]) <= len(want[0]) {
						t.Errorf("the shared Prometheus holds no more than the oracle (%d series)", len(all[0]))
					}
					t.Logf("%d series equal to the oracle's (the shared Prometheus has %d)", total, len(all[0])+len(all[1])+len(all[2]))
				})
			}
		})
	}
}

// scrapeTarget serves a small text exposition for writers to scrape.
func rwScrapeTarget(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, `# HELP rw_test_requests_total Requests.
# TYPE rw_test_requests_total counter
rw_test_requests_total{path="/x"} 5
rw_test_requests_total{path="/y"} 7
# HELP rw_test_temperature A gauge.
# TYPE rw_test_temperature gauge
rw_test_temperature 21.5
`)
	}))
	t.Cleanup(s.Close)
	return s
}

func rwWriterConfig(job, team, target, gateURL string, u remoteUser) string {
	return fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
        labels:
          team: %q
remote_write:
  - url: %s/api/v1/write
    basic_auth:
      username: %s
      password: %s
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send_interval: 2s
`, job, target, team, gateURL, u.name, u.password())
}

// instantQuery runs expr on a Prometheus and returns the series' labels.
func rwInstantQuery(t *testing.T, base, expr string) []map[string]string {
	t.Helper()
	resp, err := httpClient.Get(base + "/api/v1/query?" + url.Values{"query": {expr}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Status != "success" {
		t.Fatalf("query %s: %v %v", expr, err, env.Status)
	}
	var out []map[string]string
	for _, r := range env.Data.Result {
		out = append(out, r.Metric)
	}
	return out
}

// metricSum adds up the values of a metric on a server's /metrics.
func rwMetricSum(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := httpClient.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func rwWaitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func rwPostWrite(t *testing.T, base string, u remoteUser, req *prompb.WriteRequest) (int, string) {
	t.Helper()
	data, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest("POST", base+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, data)))
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	hr.SetBasicAuth(u.name, u.password())
	resp, err := httpClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestRemoteWrite: a Prometheus writing series of its tenant's team through
// promgate gets them into the upstream; one writing another team's series
// is refused (403) and nothing of it arrives; a request mixing both is
// refused whole.
func TestRemoteWrite(t *testing.T) {
	skipIfShort(t)
	requirePromgate(t)
	dir := t.TempDir()
	upstream := startRemotePrometheus(t, "upstream", dir, "global:\n  scrape_interval: 1m\n", "--web.enable-remote-write-receiver")
	alice := remoteUser{name: "alice", selectors: []string{`{team="a"}`}}
	gate := startRemotePromgate(t, dir, upstream.url, alice)
	target := rwScrapeTarget(t)
	targetAddr := strings.TrimPrefix(target.URL, "http://")

	writerA := startRemotePrometheus(t, "writer-a", dir, rwWriterConfig("writer-a", "a", targetAddr, gate.url, alice))
	writerB := startRemotePrometheus(t, "writer-b", dir, rwWriterConfig("writer-b", "b", targetAddr, gate.url, alice))

	t.Run("allowed writer", func(t *testing.T) {
		rwWaitFor(t, "writer-a's series upstream", 90*time.Second, func() bool {
			return len(rwInstantQuery(t, upstream.url, `rw_test_requests_total{job="writer-a"}`)) == 2 &&
				len(rwInstantQuery(t, upstream.url, `up{job="writer-a"}`)) == 1
		})
		for _, m := range rwInstantQuery(t, upstream.url, `{job="writer-a"}`) {
			if m["team"] != "a" {
				t.Errorf("series without team=a upstream: %v", m)
			}
		}
		// Metadata requests (metric names alice may write) pass too.
		rwWaitFor(t, "writer-a's metadata sent", 30*time.Second, func() bool {
			return rwMetricSum(t, writerA.url, "prometheus_remote_storage_metadata_bytes_total") > 0
		})
		for _, m := range []string{"prometheus_remote_storage_samples_failed_total", "prometheus_remote_storage_metadata_failed_total"} {
			if v := rwMetricSum(t, writerA.url, m); v != 0 {
				t.Errorf("writer-a: %s = %v", m, v)
			}
		}
	})

	t.Run("refused writer", func(t *testing.T) {
		rwWaitFor(t, "writer-b's samples refused", 90*time.Second, func() bool {
			return rwMetricSum(t, writerB.url, "prometheus_remote_storage_samples_failed_total") > 0
		})
		// Writer A keeps writing meanwhile: the upstream is up and ingesting.
		time.Sleep(3 * time.Second)
		if got := rwInstantQuery(t, upstream.url, `{job="writer-b"}`); len(got) != 0 {
			t.Errorf("writer-b's series reached the upstream: %v", got)
		}
		if got := rwInstantQuery(t, upstream.url, `{team="b"}`); len(got) != 0 {
			t.Errorf("team b series reached the upstream: %v", got)
		}
		refusal := ""
		for _, line := range strings.Split(writerB.log(), "\n") {
			if strings.Contains(line, "403") {
				refusal = line
				break
			}
		}
		if refusal == "" {
			t.Errorf("writer-b's log does not show the 403:\n%s", writerB.log())
		}
		t.Logf("writer-b: %s", truncate(refusal, 500))
		if v := rwMetricSum(t, writerB.url, "prometheus_remote_storage_samples_retried_total"); v != 0 {
			t.Errorf("writer-b retried %v samples: a 403 must be final", v)
		}
	})

	t.Run("Go client", func(t *testing.T) {
		now := time.Now().UnixMilli()
		probe := func(team string, v float64) prompb.TimeSeries {
			return prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "rw_direct_probe"}, {Name: "team", Value: team}},
				Samples: []prompb.Sample{{Value: v, Timestamp: now}},
			}
		}
		code, body := rwPostWrite(t, gate.url, alice, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{probe("a", 1), probe("b", 2)}})
		if code != 403 || !strings.Contains(body, `{__name__=\"rw_direct_probe\", team=\"b\"}`) {
			t.Errorf("mixed write: status %d, body %s", code, body)
		}
		code, body = rwPostWrite(t, gate.url, alice, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{probe("a", 3)}})
		if code != 204 {
			t.Fatalf("allowed write: status %d, body %s", code, body)
		}
		// Once the allowed write is visible, the refused one would be too.
		rwWaitFor(t, "the allowed probe upstream", 30*time.Second, func() bool {
			return len(rwInstantQuery(t, upstream.url, `rw_direct_probe`)) > 0
		})
		got := rwInstantQuery(t, upstream.url, `rw_direct_probe`)
		if len(got) != 1 || got[0]["team"] != "a" {
			t.Errorf("upstream holds %v, want only the allowed probe", got)
		}
	})
}

// TestRemoteBadInput: malformed remote read and write requests get their
// status and Prometheus' error envelope from promgate, and none reaches the
// upstream.
func TestRemoteBadInput(t *testing.T) {
	skipIfShort(t)
	requirePromgate(t)
	dir := t.TempDir()
	upstream := startRemotePrometheus(t, "upstream", dir, "global:\n  scrape_interval: 1m\n", "--web.enable-remote-write-receiver")
	alice := remoteUser{name: "alice", selectors: []string{`{team="a"}`}}
	gate := startRemotePromgate(t, dir, upstream.url, alice)

	goodRead, _ := (&prompb.ReadRequest{Queries: []*prompb.Query{{StartTimestampMs: 0, EndTimestampMs: 1000,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}}}}}).Marshal()
	goodWrite, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "rw_bad_input_control"}, {Name: "team", Value: "a"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}}}).Marshal()
	badRegex, _ := (&prompb.ReadRequest{Queries: []*prompb.Query{{
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "job", Value: "("}}}}}).Marshal()
	tooLarge := make([]byte, 32<<20+1)
	// With a space, receivers read another parameter and take it for 1.0.
	v2 := "application/x-protobuf; proto=io.prometheus.write.v2.Request"

	for _, tc := range []struct {
		name        string
		path        string
		body        []byte
		contentType string
		encoding    string
		status      int
		errType     string
		want        string
	}{
		{"read: garbage", "/api/v1/read", []byte("garbage\xff\x00"), "", "snappy", 400, "bad_data", "snappy"},
		{"read: snappy of garbage protobuf", "/api/v1/read", snappy.Encode(nil, []byte("not a protobuf")), "", "snappy", 400, "bad_data", "invalid remote read request"},
		{"read: gzip encoding", "/api/v1/read", snappy.Encode(nil, goodRead), "", "gzip", 415, "unsupported_media", "Content-Encoding"},
		{"read: JSON content type", "/api/v1/read", snappy.Encode(nil, goodRead), "application/json", "snappy", 415, "unsupported_media", "Content-Type"},
		{"read: invalid regex", "/api/v1/read", snappy.Encode(nil, badRegex), "", "snappy", 400, "bad_data", "invalid matcher"},
		{"read: too large", "/api/v1/read", tooLarge, "", "snappy", 413, "too_large", "larger than"},
		{"write: garbage", "/api/v1/write", []byte("garbage\xff\x00"), "", "snappy", 400, "bad_data", "snappy"},
		{"write: snappy of garbage protobuf", "/api/v1/write", snappy.Encode(nil, []byte("not a protobuf")), "", "snappy", 400, "bad_data", "invalid remote write request"},
		{"write: gzip encoding", "/api/v1/write", snappy.Encode(nil, goodWrite), "", "gzip", 415, "unsupported_media", "Content-Encoding"},
		{"write: remote write 2.0 spelt otherwise", "/api/v1/write", snappy.Encode(nil, goodWrite), v2, "snappy", 415, "unsupported_media", "remote write 2.0"},
		{"write: too large", "/api/v1/write", tooLarge, "", "snappy", 413, "too_large", "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := upstreamRequests(t, upstream.url)
			req, _ := http.NewRequest("POST", gate.url+tc.path, bytes.NewReader(tc.body))
			ct := tc.contentType
			if ct == "" {
				ct = "application/x-protobuf"
			}
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Content-Encoding", tc.encoding)
			req.SetBasicAuth(alice.name, alice.password())
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var env struct{ Status, ErrorType, Error string }
			if err := json.Unmarshal(body, &env); err != nil || env.Status != "error" || env.ErrorType != tc.errType || !strings.Contains(env.Error, tc.want) {
				t.Errorf("envelope %q, want errorType %s and an error mentioning %q", body, tc.errType, tc.want)
			}
			if after := upstreamRequests(t, upstream.url); after != before {
				t.Errorf("the refused request reached the upstream (%v -> %v requests)", before, after)
			}
		})
	}

	// The counter moves for requests promgate forwards: the checks above
	// prove something.
	for _, c := range []struct{ path, body string }{{"/api/v1/read", string(goodRead)}, {"/api/v1/write", string(goodWrite)}} {
		before := upstreamRequests(t, upstream.url)
		req, _ := http.NewRequest("POST", gate.url+c.path, bytes.NewReader(snappy.Encode(nil, []byte(c.body))))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		req.SetBasicAuth(alice.name, alice.password())
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("good request to %s: status %d: %s", c.path, resp.StatusCode, body)
		}
		if after := upstreamRequests(t, upstream.url); after != before+1 {
			t.Errorf("a forwarded %s request should count once upstream: %v -> %v", c.path, before, after)
		}
	}
}
