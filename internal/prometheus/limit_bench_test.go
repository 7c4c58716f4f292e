package prometheus

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/promgate/promgate/internal/limits"
	"github.com/promgate/promgate/internal/upstream"
)

// smallAnswer is the small query's answer as a Prometheus 2.42 (which
// does not read limit) gives it, plain and gzipped; gzipped once here, so
// that an upstream's CPU is the same in every case.
func smallAnswer() *memoryUpstream {
	answer := []byte(`{"status":"success","data":{"resultType":"vector","result":[` +
		strings.Repeat(`{"metric":{"__name__":"up","instance":"host-01:9100","job":"node","tenant":"t0"},"value":[1699999200,"1"]},`, 7) +
		`{"metric":{"__name__":"up","instance":"host-08:9100","job":"node","tenant":"t0"},"value":[1699999200,"1"]}]}}`)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(answer)
	_ = zw.Close()
	return &memoryUpstream{answer: answer, zipped: zipped.Bytes()}
}

// benchSeriesLimit runs the small query through api's whole handler with
// and without max_series, plain and gzip; cpu adds the process' CPU per
// request, for an upstream on loopback whose wall time is mostly latency.
func benchSeriesLimit(b *testing.B, api *API, cpu bool) {
	e := enforcer(&testing.T{}, `{tenant="t0"}`)
	for _, tc := range []struct {
		name string
		l    *limits.Limits
		gzip bool
	}{
		{"none", nil, false},
		{"max_series", &limits.Limits{MaxSeries: 100000}, false},
		{"none/gzip", nil, true},
		{"max_series/gzip", &limits.Limits{MaxSeries: 100000}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				r := httptest.NewRequest("GET", "/api/v1/query?query=up&time=1699999200", nil)
				if tc.gzip {
					r.Header.Set("Accept-Encoding", "gzip")
				}
				if tc.l != nil {
					r = r.WithContext(limits.NewContext(r.Context(), tc.l))
				}
				w := httptest.NewRecorder()
				api.Handle(w, r, "/api/v1/query", e)
				if w.Code != 200 || w.Body.Len() < 100 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			if cpu {
				// promgate's and the upstream's, the latter the same in
				// every case.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// BenchmarkSeriesLimit is the small query through the whole handler and a
// real upstream client on loopback, with and without max_series, against
// an upstream that does not read limit (2.42): what counting the answer
// costs on the path make bench measures.
func BenchmarkSeriesLimit(b *testing.B) {
	srv := httptest.NewServer(smallAnswer())
	b.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	up, err := upstream.New(upstream.Options{URL: base}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(up.Close)
	benchSeriesLimit(b, New(up, Options{}), true)
}

// BenchmarkSeriesLimitInMemory is BenchmarkSeriesLimit with an upstream in
// memory: without loopback and the upstream's own CPU, what is left is
// promgate's handler, where counting shows.
func BenchmarkSeriesLimitInMemory(b *testing.B) {
	benchSeriesLimit(b, New(smallAnswer(), Options{}), false)
}

// cpuTime is the CPU the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memoryUpstream answers every query with answer (zipped for clients that
// accept gzip), as a Prometheus 2.42 that does not read limit; in memory,
// or behind an httptest server.
type memoryUpstream struct{ answer, zipped []byte }

func (u *memoryUpstream) body(r *http.Request) (http.Header, []byte) {
	h := http.Header{"Content-Type": {"application/json"}}
	switch {
	case r.URL.Path == "/api/v1/status/buildinfo":
		return h, []byte(`{"status":"success","data":{"version":"2.42.0"}}`)
	case strings.Contains(r.Header.Get("Accept-Encoding"), "gzip"):
		h["Content-Encoding"] = []string{"gzip"}
		return h, u.zipped
	}
	return h, u.answer
}

func (u *memoryUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, body := u.body(r)
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (u *memoryUpstream) Do(r *http.Request) (*http.Response, error) {
	h, body := u.body(r)
	return &http.Response{StatusCode: http.StatusOK, Header: h, ContentLength: int64(len(body)), Body: io.NopCloser(bytes.NewReader(body))}, nil
}

func (u *memoryUpstream) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}
