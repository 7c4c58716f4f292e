package upstream

import (
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// BenchmarkBalanced is a small query through an upstream of one server
// and through one of two servers (the same, twice under two names): the
// cost of choosing a server and counting its requests.
func BenchmarkBalanced(b *testing.B) {
	const size = 3 << 10
	srv := benchUpstream(b, strings.Repeat("x", size))
	one, _ := url.Parse(srv.URL)
	other, _ := url.Parse(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"one", Options{URL: one}},
		{"two", Options{Backends: []*url.URL{one, other}}},
	} {
		u, err := New(tc.o, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				u.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/query?query=up", nil))
				if w.Code != 200 || w.Body.Len() != size {
					b.Fatalf("status %d, %d bytes", w.Code, w.Body.Len())
				}
			}
		})
		u.Close()
	}
}
