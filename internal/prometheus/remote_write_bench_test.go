package prometheus

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"syscall"
	"testing"

	"github.com/golang/snappy"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/promgate/promgate/internal/promql"
	"github.com/promgate/promgate/internal/upstream"
)

// writeEnforcer is the enforcer of a policy of selectors, for benchmarks
// and fuzz targets.
func writeEnforcer(tb testing.TB, sels ...string) *promql.Enforcer {
	tb.Helper()
	var ms [][]*labels.Matcher
	for _, s := range sels {
		m, err := pqlParser.ParseMetricSelector(s)
		if err != nil {
			tb.Fatal(err)
		}
		ms = append(ms, m)
	}
	e, err := promql.New(ms)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// A batch as a Prometheus agent sends it: 500 series of a team, 4 samples
// each (2,000 samples), labels as a Kubernetes scrape gives them.
const (
	benchSeries  = 500
	benchSamples = 4
)

func benchLabels(i int) []string {
	return []string{
		"__name__", fmt.Sprintf("http_requests_%d_total", i%50),
		"team", "a",
		"job", "api",
		"instance", fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250),
		"namespace", "shop",
		"pod", fmt.Sprintf("api-7d9f8c6b5-%05d", i%20),
		"code", fmt.Sprint(200 + i%5),
		"method", "GET",
	}
}

func benchV2(b *testing.B) []byte {
	v2 := newV2()
	for i := range benchSeries {
		s := v2.series(benchLabels(i)...)
		s.Samples = s.Samples[:0]
		for j := range benchSamples {
			s.Samples = append(s.Samples, writev2.Sample{Value: float64(j), Timestamp: int64(1000 * j)})
		}
		s.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: v2.st.Symbolize("Requests served.")}
	}
	return v2.encode(b)
}

func benchV1(b *testing.B) []byte {
	var req prompb.WriteRequest
	for i := range benchSeries {
		s := ts(benchLabels(i)...)
		s.Samples = s.Samples[:0]
		for j := range benchSamples {
			s.Samples = append(s.Samples, prompb.Sample{Value: float64(j), Timestamp: int64(1000 * j)})
		}
		req.Timeseries = append(req.Timeseries, s)
	}
	data, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkCheckWrite is the decoding and policy decision of one batch,
// decompressed: promgate's work on a write beyond copying bytes.
func BenchmarkCheckWrite(b *testing.B) {
	saved := acceptedSeries
	acceptedSeries = newSeriesCache()
	b.Cleanup(func() { acceptedSeries = saved })
	enf := writeEnforcer(b, `{team="a"}`, `{__name__=~"node_.*", shared="true"}`)
	var sels [][]*labels.Matcher
	for _, s := range []string{`{team="a"}`, `{__name__=~"node_.*", shared="true"}`} {
		m, err := pqlParser.ParseMetricSelector(s)
		if err != nil {
			b.Fatal(err)
		}
		sels = append(sels, m)
	}
	newPolicy := func() *promql.Enforcer {
		e, err := promql.New(sels)
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	lim := DefaultWriteLimits
	for _, bc := range []struct {
		name  string
		raw   []byte
		check func([]byte) error
	}{
		// The same batch again and again: its series are remembered
		// (acceptedSeries), as an agent's are from one batch to the next.
		{"v1", benchV1(b), func(raw []byte) error { return checkWriteV1(raw, enf, lim) }},
		// Series never seen (under a policy of its own each time):
		// decided on and remembered, older ones dropped as the cache
		// fills.
		{"v1-new", benchV1(b), func(raw []byte) error { return checkWriteV1(raw, newPolicy(), lim) }},
		{"v1-whole", benchV1(b), func(raw []byte) error { return refCheckV1(raw, enf, lim) }},
		{"v2", benchV2(b), func(raw []byte) error { return checkWriteV2(raw, enf, lim) }},
		{"v2-new", benchV2(b), func(raw []byte) error { return checkWriteV2(raw, newPolicy(), lim) }},
		// The same decisions over Prometheus' whole decoding of the
		// request, for comparison.
		{"v2-whole", benchV2(b), func(raw []byte) error { return refCheckV2(raw, enf, lim) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.raw)))
			// CPU time (the process', garbage collection included) tells
			// more than wall time on a machine busy with other work.
			cpu0 := processCPU()
			for b.Loop() {
				if err := bc.check(bc.raw); err != nil {
					b.Fatal(err)
				}
			}
			cpu := float64(processCPU()-cpu0) / float64(b.N)
			b.ReportMetric(cpu, "cpu-ns/op")
			b.ReportMetric(cpu/(benchSeries*benchSamples), "cpu-ns/sample")
		})
	}
}

// processCPU is the CPU time the process has used, in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkRemoteWrite is a batch through the whole handler: the body
// read, decompressed and checked, and forwarded to an upstream on a local
// connection that reads it and answers 204 (its work is in the figures).
func BenchmarkRemoteWrite(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/status/buildinfo" {
			io.WriteString(w, `{"status":"success","data":{"version":"3.16.0"}}`)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	up, err := upstream.New(upstream.Options{URL: base}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	api := New(up, Options{})
	enf := writeEnforcer(b, `{team="a"}`, `{__name__=~"node_.*", shared="true"}`)
	for _, bc := range []struct {
		name, contentType string
		raw               []byte
	}{
		{"v1", "application/x-protobuf", benchV1(b)},
		{"v2", v2ContentType, benchV2(b)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := snappy.Encode(nil, bc.raw)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			cpu0 := processCPU()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
				req.Header.Set("Content-Type", bc.contentType)
				req.Header.Set("Content-Encoding", "snappy")
				rec := httptest.NewRecorder()
				api.Handle(rec, req, "/api/v1/write", enf)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			cpu := float64(processCPU()-cpu0) / float64(b.N)
			b.ReportMetric(cpu, "cpu-ns/op")
			b.ReportMetric(cpu/(benchSeries*benchSamples), "cpu-ns/sample")
		})
	}
}
