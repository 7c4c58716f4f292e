package upstream

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	commoncfg "github.com/prometheus/common/config"
)

// connectProxy is an HTTP proxy that tunnels CONNECT requests carrying
// auth (when set) and counts the tunnels.
func connectProxy(t *testing.T, auth string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var tunnels atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		if auth != "" && r.Header.Get("Proxy-Authorization") != auth {
			w.Header().Set("Proxy-Authenticate", `Basic realm="proxy"`)
			http.Error(w, "", http.StatusProxyAuthRequired)
			return
		}
		dst, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		tunnels.Add(1)
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			dst.Close()
			return
		}
		c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		go func() { io.Copy(dst, brw); dst.Close() }()
		io.Copy(c, dst)
		c.Close()
	}))
	t.Cleanup(srv.Close)
	return srv, &tunnels
}

func proxyConfig(t *testing.T, raw string) commoncfg.ProxyConfig {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return commoncfg.ProxyConfig{ProxyURL: commoncfg.URL{URL: u}}
}

// An upstream behind a proxy is reached through one CONNECT tunnel, kept
// alive like a direct connection, over TLS as over plain HTTP.
func TestProxyConnectTunnel(t *testing.T) {
	proxy, tunnels := connectProxy(t, basicAuth("p", "pw"))
	tlsUp, tlsConns, ca := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls") }), nil)
	plainUp, plainConns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain") }))
	withProxy := strings.Replace(proxy.URL, "//", "//p:pw@", 1)
	for _, tc := range []struct {
		name  string
		url   string
		tls   commoncfg.TLSConfig
		want  string
		conns *atomic.Int64
	}{
		{"https", tlsUp.URL, commoncfg.TLSConfig{CAFile: ca}, "tls", tlsConns},
		{"http", plainUp.URL, commoncfg.TLSConfig{}, "plain", plainConns},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tunnels.Load()
			u := newUpstream(t, tc.url, Options{Client: &commoncfg.HTTPClientConfig{TLSConfig: tc.tls, ProxyConfig: proxyConfig(t, withProxy)}})
			for range 20 {
				if w := serve(u, "/", nil); w.Code != 200 || w.Body.String() != tc.want {
					t.Fatalf("status %d, body %q", w.Code, w.Body)
				}
			}
			if n, c := tunnels.Load()-before, tc.conns.Load(); n != 1 || c != 1 {
				t.Errorf("%d tunnels, %d upstream connections for 20 requests; want 1 and 1", n, c)
			}
		})
	}
	t.Run("proxy refuses", func(t *testing.T) {
		u := newUpstream(t, tlsUp.URL, Options{Client: &commoncfg.HTTPClientConfig{TLSConfig: commoncfg.TLSConfig{CAFile: ca}, ProxyConfig: proxyConfig(t, proxy.URL)}})
		w := serve(u, "/", nil)
		if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "the proxy refused the tunnel to the upstream (407 Proxy Authentication Required)") {
			t.Errorf("status %d, body %s", w.Code, w.Body)
		}
	})
}
