package upstream

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// Benchmarks of one proxied request against an upstream on loopback, the
// upstream's own work included (make bench measures promgate's share on
// real servers). "reverseproxy" is httputil.ReverseProxy over an
// http.Transport with compression off, which this package used before.

func benchUpstream(b *testing.B, body string) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body) // chunked above 2 KiB, as Prometheus' answers
	}))
	b.Cleanup(srv.Close)
	return srv
}

func BenchmarkServeHTTP(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"3KiB", 3 << 10}, {"320KiB", 320 << 10}} {
		srv := benchUpstream(b, strings.Repeat("x", size.n))
		base, _ := url.Parse(srv.URL)
		u, err := New(Options{URL: base, StripHeaders: []string{"Authorization"}}, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		rp := &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(base); pr.SetXForwarded() },
			Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64},
		}
		for _, h := range []struct {
			name string
			h    http.Handler
		}{{"pool", u}, {"reverseproxy", rp}} {
			b.Run(size.name+"/"+h.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				for b.Loop() {
					r := httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
					r.Header.Set("Authorization", "Basic x")
					w := httptest.NewRecorder()
					h.h.ServeHTTP(w, r)
					if w.Code != 200 || w.Body.Len() != size.n {
						b.Fatalf("status %d, %d bytes", w.Code, w.Body.Len())
					}
				}
			})
		}
	}
}

func BenchmarkDo(b *testing.B) {
	srv := benchUpstream(b, strings.Repeat("x", 100<<10))
	base, _ := url.Parse(srv.URL)
	u, err := New(Options{URL: base}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	buf := make([]byte, 32<<10)
	for b.Loop() {
		resp, err := u.Do(httptest.NewRequest("GET", "/api/v1/rules", nil))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, resp.Body, buf); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
