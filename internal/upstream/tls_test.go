package upstream

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// tlsServer is an https upstream counting its connections; ca is a file
// holding its certificate.
func tlsServer(t testing.TB, h http.Handler, configure func(*tls.Config)) (srv *httptest.Server, conns *atomic.Int64, ca string) {
	t.Helper()
	conns = new(atomic.Int64)
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.TLS = &tls.Config{}
	if configure != nil {
		configure(srv.TLS)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, conns, ca
}

func withCA(ca string) *commoncfg.HTTPClientConfig {
	return &commoncfg.HTTPClientConfig{TLSConfig: commoncfg.TLSConfig{CAFile: ca}}
}

func serve(u http.Handler, path string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	u.ServeHTTP(w, r)
	return w
}

// TLS connections are kept alive and reused like plain ones, under both
// TLS versions (1.3 sends session tickets after the handshake).
func TestTLSConnectionsReused(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			srv, conns, ca := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, r.URL.Path)
			}), func(c *tls.Config) { c.MinVersion, c.MaxVersion = version, version })
			u := newUpstream(t, srv.URL, Options{Client: withCA(ca)})
			for i := range 50 {
				if w := serve(u, "/q", nil); w.Code != 200 || w.Body.String() != "/q" {
					t.Fatalf("request %d: status %d, body %q", i, w.Code, w.Body)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("%d connections for 50 sequential requests, want 1", n)
			}
		})
	}
}

// A new connection resumes the session of an earlier one.
func TestTLSSessionResumed(t *testing.T) {
	var mu sync.Mutex
	var resumed []bool
	srv, conns, ca := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumed = append(resumed, r.TLS.DidResume)
		mu.Unlock()
		w.Header().Set("Connection", "close") // every request dials
	}), nil)
	u := newUpstream(t, srv.URL, Options{Client: withCA(ca)})
	for range 3 {
		if w := serve(u, "/", nil); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
	}
	if conns.Load() != 3 || len(resumed) != 3 || resumed[0] || !resumed[1] || !resumed[2] {
		t.Errorf("%d connections, resumed %v; want 3, [false true true]", conns.Load(), resumed)
	}
}

// peeked reports whether the socket under an idle TLS connection holds
// bytes, as the plain connections' check sees it.
func peeked(c *conn) bool {
	plain := &conn{nc: c.tls.transport.Conn, raw: c.tls.transport.raw, br: bufio.NewReader(strings.NewReader(""))}
	return !alive(plain)
}

// A TLS 1.3 server that asks for a client certificate sends its session
// ticket only after the client's Finished, so that it can arrive while the
// connection is idle: bytes on the socket that are no answer. The
// connection stays usable; the ticket is read into the session cache.
func TestTLSTicketWhileIdle(t *testing.T) {
	srv, _, ca := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), func(c *tls.Config) { c.ClientAuth = tls.RequestClientCert; c.MinVersion = tls.VersionTLS13 })
	u := newUpstream(t, srv.URL, Options{Client: withCA(ca)})
	c, err := u.dialer.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The server's handshake ends on reading the client's Finished; its
	// ticket follows.
	deadline := time.Now().Add(5 * time.Second)
	for !peeked(c) {
		if time.Now().After(deadline) {
			t.Fatal("no session ticket arrived")
		}
		time.Sleep(time.Millisecond)
	}
	u.pool.put(c)
	if got := u.pool.get(); got != c {
		t.Fatalf("the connection holding a session ticket was not reused")
	}
	if peeked(c) {
		t.Errorf("the ticket is still unread")
	}
	u.pool.put(c)
	if w := serve(u, "/", nil); w.Code != 200 || w.Body.String() != "ok" {
		t.Fatalf("status %d, body %q", w.Code, w.Body)
	}
	if u.IdleConns() != 1 {
		t.Errorf("%d idle connections, want 1 (the first one, reused)", u.IdleConns())
	}
}

// rawTLSUpstream answers every request "ok" on connections it counts;
// extra, if set, is written after the answer, unasked: in the answer's
// record (sameRecord) or in a record of its own. written is signalled
// once the extra bytes are sent.
func rawTLSUpstream(t *testing.T, extra string, sameRecord bool) (url, ca string, conns *atomic.Int64, written chan struct{}) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS() // for its certificate
	cert := srv.TLS.Certificates[0]
	srv.Close()
	ca = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}), 0o600)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int64)
	written = make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					answer := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
					if extra != "" && sameRecord {
						c.Write([]byte(answer + extra))
					} else {
						c.Write([]byte(answer))
						if extra != "" {
							time.Sleep(10 * time.Millisecond) // the answer is read first
							c.Write([]byte(extra))
						}
					}
					if extra != "" {
						written <- struct{}{}
					}
				}
			}()
		}
	}()
	return "https://" + ln.Addr().String(), ca, conns, written
}

// Bytes that arrive after an answer over TLS (a late 408, another answer)
// are never read as the next request's answer: the connection is closed.
func TestTLSUnsolicitedBytesClose(t *testing.T) {
	const evil = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
	for _, tc := range []struct {
		name       string
		sameRecord bool
	}{{"own record", false}, {"answer's record", true}} {
		t.Run(tc.name, func(t *testing.T) {
			base, ca, conns, written := rawTLSUpstream(t, evil, tc.sameRecord)
			u := newUpstream(t, base, Options{Client: withCA(ca)})
			for i := range 3 {
				if w := serve(u, "/", nil); w.Code != 200 || w.Body.String() != "ok" {
					t.Fatalf("request %d: status %d, body %q", i, w.Code, w.Body)
				}
				<-written
				time.Sleep(5 * time.Millisecond) // on loopback, delivered by now
			}
			if n := conns.Load(); n != 3 {
				t.Errorf("%d connections for 3 requests each followed by unsolicited bytes, want 3", n)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		base, ca, conns, _ := rawTLSUpstream(t, "", false)
		u := newUpstream(t, base, Options{Client: withCA(ca)})
		for range 3 {
			if w := serve(u, "/", nil); w.Body.String() != "ok" {
				t.Fatalf("body %q", w.Body)
			}
		}
		if n := conns.Load(); n != 1 {
			t.Errorf("%d connections, want 1", n)
		}
	})
}

// A closed TLS connection (close_notify, then the end of the stream) is
// not reused: the sweeper or the next request sees it.
func TestTLSClosedByUpstream(t *testing.T) {
	srv, conns, ca := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), nil)
	u := newUpstream(t, srv.URL, Options{Client: withCA(ca)})
	serve(u, "/", nil)
	srv.CloseClientConnections()
	deadline := time.Now().Add(5 * time.Second)
	for u.pool.idle[0].tls != nil && !peeked(u.pool.idle[0]) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if c := u.pool.get(); c != nil {
		t.Fatal("a connection the upstream closed was reused")
	}
	if w := serve(u, "/", nil); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if conns.Load() != 2 {
		t.Errorf("%d connections, want 2", conns.Load())
	}
}

// A failed handshake is a 502 that names the reason, not the address.
func TestTLSHandshakeErrors(t *testing.T) {
	tlsSrv, _, ca := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), nil)
	needsCert, _, needsCertCA := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		func(c *tls.Config) { c.ClientAuth = tls.RequireAnyClientCert })
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(plain.Close)
	for _, tc := range []struct {
		name   string
		url    string
		client *commoncfg.HTTPClientConfig
		want   string
	}{
		{"unknown authority", tlsSrv.URL, nil, "signed by an unknown authority"},
		{"wrong name", tlsSrv.URL, &commoncfg.HTTPClientConfig{TLSConfig: commoncfg.TLSConfig{CAFile: ca, ServerName: "prometheus.internal"}}, "not valid for its host name"},
		{"not TLS", strings.Replace(plain.URL, "http:", "https:", 1), nil, "does not speak TLS"},
		{"client certificate required", needsCert.URL, withCA(needsCertCA), "refused the TLS connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t, tc.url, Options{Client: tc.client})
			w := serve(u, "/api/v1/query", nil)
			var env struct{ Status, ErrorType, Error string }
			json.Unmarshal(w.Body.Bytes(), &env)
			if w.Code != http.StatusBadGateway || !strings.Contains(env.Error, tc.want) || strings.Contains(env.Error, "127.0.0.1") {
				t.Errorf("status %d, error %q; want 502 naming %q without the address", w.Code, env.Error, tc.want)
			}
		})
	}
}

// A rewritten CA file is used by the next connection.
func TestTLSCAFileReloaded(t *testing.T) {
	srv, _, ca := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
	}), nil)
	good, _ := os.ReadFile(ca)
	if err := os.WriteFile(ca, selfSignedPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	u := newUpstream(t, srv.URL, Options{Client: withCA(ca)})
	if w := serve(u, "/", nil); w.Code != http.StatusBadGateway {
		t.Fatalf("status %d with a CA that does not verify the server, want 502", w.Code)
	}
	os.WriteFile(ca, good, 0o600)
	os.Chtimes(ca, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if w := serve(u, "/", nil); w.Code != 200 {
		t.Fatalf("status %d after the CA file was fixed, want 200", w.Code)
	}
}

// selfSignedPEM is a CA certificate that signed nothing here.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "another CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// holdingRelay passes TCP connections on to target. Once hold is called,
// the first connection passes only the next few bytes from the upstream and
// keeps the rest: part of a TLS record arrives, as from a far upstream
// still sending.
func holdingRelay(t *testing.T, target string) (addr string, hold func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var open []net.Conn
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		close(done)
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			c.Close()
		}
	})
	var held atomic.Bool
	first := true
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, up)
			mu.Unlock()
			holds := first
			first = false
			go io.Copy(up, c)
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := up.Read(buf)
					if n > 0 && holds && held.Load() {
						c.Write(buf[:min(n, 10)]) // a header and 5 bytes
						<-done                    // the rest never comes
						return
					}
					if n > 0 {
						c.Write(buf[:n])
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() { held.Store(true) }
}

// Part of a record after an answer (the start of bytes the upstream sent
// unasked, the rest on its way) closes the connection: reused, the next
// request would read the rest as its answer, or wait for it.
func TestTLSPartialRecordCloses(t *testing.T) {
	base, ca, conns, written := rawTLSUpstream(t, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate", false)
	target := strings.TrimPrefix(base, "https://")
	addr, hold := holdingRelay(t, target)
	u := newUpstream(t, "https://"+addr, Options{Client: &commoncfg.HTTPClientConfig{TLSConfig: commoncfg.TLSConfig{CAFile: ca, ServerName: "127.0.0.1"}}, Timeout: 5 * time.Second})
	if w := serve(u, "/", nil); w.Code != 200 || w.Body.String() != "ok" {
		t.Fatalf("status %d, body %q", w.Code, w.Body)
	}
	hold()
	<-written
	deadline := time.Now().Add(5 * time.Second)
	for !peeked(u.pool.idle[0]) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if w := serve(u, "/", nil); w.Code != 200 || w.Body.String() != "ok" {
		t.Fatalf("after part of a late record: status %d, body %q", w.Code, w.Body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}
