package upstream

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	commoncfg "github.com/prometheus/common/config"
)

// BenchmarkServeHTTPTLS is BenchmarkServeHTTP's small answer over plain
// HTTP and over TLS, with the upstream's connections counted: dials per
// 1000 requests shows that TLS connections are kept alive (0 after the
// first). "tls1.3/handshake-per-request" has the upstream close every
// connection: each request pays a resumed handshake; the last one adds
// basic auth whose password is in a file.
func BenchmarkServeHTTPTLS(b *testing.B) {
	body := strings.Repeat("x", 3<<10)
	handler := func(close bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if close {
				w.Header().Set("Connection", "close")
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		})
	}
	for _, tc := range []struct {
		name    string
		tls     bool
		version uint16
		close   bool
		auth    bool // basic_auth with a password_file
	}{
		{"plain", false, 0, false, false},
		{"tls1.3", true, tls.VersionTLS13, false, false},
		{"tls1.2", true, tls.VersionTLS12, false, false},
		{"tls1.3/handshake-per-request", true, tls.VersionTLS13, true, false},
		{"tls1.3/basic_auth-password_file", true, tls.VersionTLS13, false, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var srv *httptest.Server
			var dials *atomic.Int64
			var o Options
			if tc.tls {
				var ca string
				srv, dials, ca = tlsServer(b, handler(tc.close), func(c *tls.Config) { c.MinVersion, c.MaxVersion = tc.version, tc.version })
				o.Client = withCA(ca)
				if tc.auth {
					file := filepath.Join(b.TempDir(), "password")
					os.WriteFile(file, []byte("pw"), 0o600)
					o.Client.BasicAuth = &commoncfg.BasicAuth{Username: "promgate", PasswordFile: file}
				}
			} else {
				dials = new(atomic.Int64)
				srv = httptest.NewUnstartedServer(handler(tc.close))
				srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
					if s == http.StateNew {
						dials.Add(1)
					}
				}
				srv.Start()
				b.Cleanup(srv.Close)
			}
			o.URL, _ = url.Parse(srv.URL)
			o.StripHeaders = []string{"Authorization"}
			u, err := New(o, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			n := 0
			for b.Loop() {
				r := httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
				w := httptest.NewRecorder()
				u.ServeHTTP(w, r)
				if w.Code != 200 || w.Body.Len() != len(body) {
					b.Fatalf("status %d, %d bytes", w.Code, w.Body.Len())
				}
				n++
			}
			b.ReportMetric(float64(dials.Load())*1000/float64(n), "dials/1000req")
		})
	}
}
