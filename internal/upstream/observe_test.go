package upstream

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// Every exchange is observed once, with the upstream's status or 0 when
// no answer came, whether proxied (ServeHTTP) or read by promgate (Do).
func TestObserver(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, "answer")
	}))
	defer srv.Close()
	// An address nothing listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name, base, path string
		do               bool
		want             int
	}{
		{"proxied", srv.URL, "/ok", false, 200},
		{"proxied error status", srv.URL, "/down", false, 503},
		{"read by promgate", srv.URL, "/ok", true, 200},
		{"no answer", deadURL, "/ok", false, 0},
		{"no answer, read by promgate", deadURL, "/ok", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, _ := url.Parse(tc.base)
			u, err := New(Options{URL: base}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			var codes []int
			u.SetObserver(func(code int, d time.Duration) {
				if d <= 0 {
					t.Errorf("duration %v", d)
				}
				codes = append(codes, code)
			})
			req := httptest.NewRequest("GET", tc.path, nil)
			if tc.do {
				if resp, err := u.Do(req); err == nil {
					if len(codes) != 0 {
						t.Error("observed before the body was read")
					}
					_, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
			} else {
				u.ServeHTTP(httptest.NewRecorder(), req)
			}
			if len(codes) != 1 || codes[0] != tc.want {
				t.Errorf("observed %v, want [%d]", codes, tc.want)
			}
		})
	}
}
