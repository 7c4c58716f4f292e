package webconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const testHash = "$2y$10$CLeidEsEtvvnEm4b3lmxoOVi2QlArzONjPlxQr1HYrXBOGCON0CF2"

type pki struct {
	dir    string
	caPEM  []byte
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), caCert: ca, caKey: key}
	p.write(t, "ca.crt", p.caPEM)
	return p
}

func (p *pki) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// leaf issues a server certificate for 127.0.0.1 with the given serial and
// returns its PEM and its key's.
func (p *pki) leaf(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"client.example"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func (p *pki) serverFiles(t *testing.T, serial int64) {
	t.Helper()
	c, k := p.leaf(t, serial)
	p.write(t, "server.crt", c)
	p.write(t, "server.key", k)
}

func TestLoad(t *testing.T) {
	p := newPKI(t)
	p.serverFiles(t, 2)
	for _, tc := range []struct {
		name    string
		file    string
		err     string
		tls     bool
		verify  bool
		users   []string
		files   []string
		limited bool
	}{
		{name: "TLS, client CA, users, headers, rate limit", file: `tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.crt
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
http_server_config:
  http2: false
  headers:
    Strict-Transport-Security: max-age=31536000
rate_limit:
  interval: 1s
  burst: 5
basic_auth_users:
  alice: ` + testHash + `
`, tls: true, verify: true, users: []string{"alice"}, files: []string{"web.yml", "ca.crt"}, limited: true},
		{name: "users only: plain HTTP", file: "basic_auth_users:\n  alice: " + testHash + "\n  bob: " + testHash + "\n",
			users: []string{"alice", "bob"}, files: []string{"web.yml"}},
		{name: "empty file", file: "", files: []string{"web.yml"}},
		{name: "client certificates requested, not verified", file: "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: RequestClientCert\n",
			tls: true, files: []string{"web.yml", "ca.crt"}},
		{name: "inline certificate and key", file: func() string {
			c, k := p.leaf(t, 3)
			indent := func(b []byte) string {
				return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
			}
			return "tls_server_config:\n  cert: |\n" + indent(c) + "\n  key: |\n" + indent(k) + "\n"
		}(), tls: true, files: []string{"web.yml"}},

		{name: "unknown field", file: "tls_server_config:\n  cert_fil: server.crt\n", err: "field cert_fil not found"},
		{name: "bad hash", file: "basic_auth_users:\n  alice: SECRET-not-a-hash\n", err: "hashedSecret too short"},
		{name: "missing key file", file: "tls_server_config:\n  cert_file: server.crt\n  key_file: nope.key\n", err: "nope.key"},
		{name: "client CA without client_auth_type", file: "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n",
			err: "client CA's have been configured without a Client Auth Policy"},
		{name: "header that cannot be set", file: "http_server_config:\n  headers:\n    X-Powered-By: promgate\n", err: `"X-Powered-By" can not be configured`},
		{name: "user name with a colon", file: "basic_auth_users:\n  'a:b': " + testHash + "\n", err: `user name "a:b" must not contain ':'`},
		{name: "negative rate limit", file: "rate_limit:\n  interval: -1s\n", err: "rate_limit: interval and burst must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := p.write(t, "web.yml", []byte(tc.file))
			c, err := Load(path, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Errorf("error shows the hash: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.TLS() != tc.tls || c.VerifiesClientCertificates() != tc.verify || (c.limiter != nil) != tc.limited {
				t.Errorf("TLS %v, verifies %v, limited %v", c.TLS(), c.VerifiesClientCertificates(), c.limiter != nil)
			}
			var users []string
			for u, h := range c.Users {
				users = append(users, u)
				if h != testHash {
					t.Errorf("user %s: hash %q", u, h)
				}
			}
			slices.Sort(users)
			if !slices.Equal(users, tc.users) {
				t.Errorf("users %v, want %v", users, tc.users)
			}
			var files []string
			for _, f := range c.Files() {
				files = append(files, filepath.Base(f))
				if !filepath.IsAbs(f) && filepath.Dir(f) != p.dir {
					t.Errorf("file %s not resolved against the web file's directory", f)
				}
			}
			if !slices.Equal(files, tc.files) {
				t.Errorf("files %v, want %v", files, tc.files)
			}
		})
	}
}

func TestCertLoader(t *testing.T) {
	p := newPKI(t)
	p.serverFiles(t, 10)
	c, err := Load(p.write(t, "web.yml", []byte("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")), nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func() (int64, error) {
		cert, err := c.tls.GetCertificate(nil)
		if err != nil {
			return 0, err
		}
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		return leaf.SerialNumber.Int64(), nil
	}
	first, _ := c.tls.GetCertificate(nil)
	if s, err := get(); s != 10 || err != nil {
		t.Fatalf("serial %d, %v", s, err)
	}
	again, _ := c.tls.GetCertificate(nil)
	if again != first {
		t.Error("unchanged files were parsed again")
	}

	// A renewal writes the certificate, then the key: in between, the old
	// certificate is served.
	newCert, newKey := p.leaf(t, 11)
	p.write(t, "server.crt", newCert)
	if s, err := get(); s != 10 || err != nil {
		t.Errorf("mismatched pair: serial %d, %v; want the old 10", s, err)
	}
	p.write(t, "server.key", newKey)
	if s, err := get(); s != 11 || err != nil {
		t.Errorf("renewed: serial %d, %v; want 11", s, err)
	}
	// Deleted files: the last good certificate.
	os.Remove(filepath.Join(p.dir, "server.key"))
	if s, err := get(); s != 11 || err != nil {
		t.Errorf("deleted key: serial %d, %v; want 11", s, err)
	}
	// Without any good certificate yet, the error is returned.
	l := &certLoader{tc: &c.Web.TLSConfig}
	if _, err := l.get(nil); err == nil {
		t.Error("no error without a certificate")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(time.Second, 2)
	for i, tc := range []struct {
		after time.Duration
		want  bool
	}{
		{0, true}, {0, true}, {0, false},
		{500 * time.Millisecond, false},
		{500 * time.Millisecond, true}, {0, false},
		{10 * time.Second, true}, {0, true}, {0, false}, // the burst caps the savings
	} {
		now = now.Add(tc.after)
		if got := l.allow(now); got != tc.want {
			t.Errorf("step %d: allow = %v", i, got)
		}
	}
	if z := newLimiter(time.Second, 0); !z.allow(now) || z.allow(now) {
		t.Error("a burst of 0 must allow one request per interval")
	}
}

func TestServerWrap(t *testing.T) {
	p := newPKI(t)
	c, err := Load(p.write(t, "web.yml", []byte("http_server_config:\n  headers:\n    X-Frame-Options: deny\nrate_limit:\n  interval: 1h\n  burst: 1\n")), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(c, nil)
	h := s.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	for i, want := range []int{200, 429} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != want || rec.Header().Get("X-Frame-Options") != "deny" {
			t.Errorf("request %d: %d %v", i, rec.Code, rec.Header())
		}
		if want == 429 && (!strings.Contains(rec.Body.String(), `"errorType":"too_many_requests"`) || rec.Header().Get("Retry-After") != "3600") {
			t.Errorf("429: %s %v", rec.Body, rec.Header())
		}
	}
	// Without a web configuration, nothing is added.
	rec := httptest.NewRecorder()
	NewServer(nil, nil).Wrap(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 404 || len(rec.Header()) != 2 {
		t.Errorf("nil config: %d %v", rec.Code, rec.Header())
	}
}

// TestServeTLS serves over a real listener and swaps the configuration:
// new connections get the new certificate and client CA.
func TestServeTLS(t *testing.T) {
	p := newPKI(t)
	p.serverFiles(t, 20)
	web := p.write(t, "web.yml", []byte("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: VerifyClientCertIfGiven\n  client_allowed_sans: [client.example]\n"))
	c, err := Load(web, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(c, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))}
	go s.Serve(srv, ln)
	defer srv.Close()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	dial := func(cfg *tls.Config) (int64, error) {
		cfg.RootCAs = pool
		conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		if err := conn.Handshake(); err != nil {
			return 0, err
		}
		// TLS 1.3 reports a refused client certificate on the first read.
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return 0, err
		}
		if _, err := conn.Read(make([]byte, 1)); err != nil {
			return 0, err
		}
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
	}
	cc, ck := p.leaf(t, 99)
	clientCert, _ := tls.X509KeyPair(cc, ck)
	if serial, err := dial(&tls.Config{Certificates: []tls.Certificate{clientCert}}); err != nil || serial != 20 {
		t.Fatalf("serial %d, %v", serial, err)
	}
	// client_allowed_sans with no client certificate: refused, no panic.
	if _, err := dial(&tls.Config{}); err == nil {
		t.Error("a client without a certificate passed client_allowed_sans")
	}

	// HTTP/2 is negotiated.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}}, ForceAttemptHTTP2: true}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Errorf("protocol %s", body)
	}

	// A new certificate under new paths, applied by Update.
	c2PEM, k2PEM := p.leaf(t, 21)
	p.write(t, "server2.crt", c2PEM)
	p.write(t, "server2.key", k2PEM)
	web2 := p.write(t, "web2.yml", []byte("tls_server_config:\n  cert_file: server2.crt\n  key_file: server2.key\n"))
	c2, err := Load(web2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Compatible(c2); err != nil {
		t.Fatal(err)
	}
	s.Update(c2)
	if serial, err := dial(&tls.Config{}); err != nil || serial != 21 {
		t.Errorf("after Update: serial %d, %v", serial, err)
	}

	plain, _ := Load(p.write(t, "plain.yml", []byte("basic_auth_users: {}\n")), nil)
	if err := s.Compatible(plain); err == nil || !strings.Contains(err.Error(), "needs a restart") {
		t.Errorf("turning TLS off: %v", err)
	}
	if err := s.Compatible(nil); err == nil {
		t.Error("dropping the web configuration of a TLS server was accepted")
	}
	if err := NewServer(plain, nil).Compatible(c2); err == nil || !strings.Contains(err.Error(), "turning TLS on") {
		t.Errorf("turning TLS on: %v", err)
	}
	if err := NewServer(nil, nil).Compatible(plain); err != nil {
		t.Errorf("plain to plain: %v", err)
	}
}

// TestServeBoundsHeaders pins MaxHeaderBytes: a request whose headers
// exceed it is refused with 431 before any handler sees it, one within it
// is served.
func TestServeBoundsHeaders(t *testing.T) {
	s := NewServer(nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))}
	go s.Serve(srv, ln)
	defer srv.Close()
	for _, tc := range []struct {
		size int
		want int
	}{
		{MaxHeaderBytes - 4096, http.StatusOK},
		{MaxHeaderBytes + 8192, http.StatusRequestHeaderFieldsTooLarge}, // net/http allows 4 KiB of slack,
		{700 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
		req.Header.Set("X-Big", strings.Repeat("x", tc.size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d bytes: %v", tc.size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d bytes of headers: status %d, want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
}
