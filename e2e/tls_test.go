package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/testenv"
)

// This file holds the TLS end-to-end test and the helpers the other
// authentication tests (jwt, reload, brute force, throughput) share.

// authWriteFile writes a test file.
func authWriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// authHash is a bcrypt hash of password at the given cost.
func authHash(t testing.TB, password string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// authEventually retries check until it returns nil or timeout passes.
func authEventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// teamsVia runs count by (team) (up) at the data's time through promgate
// with client and returns the status, the teams in the answer, and the
// response.
func teamsVia(client *http.Client, base string, decorate func(*http.Request)) (int, []string, *http.Response, []byte, error) {
	q := url.Values{"query": {"count by (team) (up)"}, "time": {"1700000000"}}
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/query?"+q.Encode(), nil)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	if decorate != nil {
		decorate(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, resp, nil, err
	}
	var parsed struct {
		Data struct {
			Result []struct{ Metric map[string]string }
		}
	}
	var teams []string
	if json.Unmarshal(body, &parsed) == nil {
		for _, r := range parsed.Data.Result {
			teams = append(teams, r.Metric["team"])
		}
	}
	slices.Sort(teams)
	return resp.StatusCode, teams, resp, body, nil
}

// expectTeams checks a teamsVia answer.
func expectTeams(t *testing.T, what string, client *http.Client, base string, decorate func(*http.Request), wantCode int, wantTeams ...string) {
	t.Helper()
	code, teams, _, body, err := teamsVia(client, base, decorate)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if code != wantCode || !slices.Equal(teams, wantTeams) {
		t.Errorf("%s: status %d teams %v, want %d %v; body %s", what, code, teams, wantCode, wantTeams, truncate(string(body), 300))
	}
}

// errorEnvelope checks that body is Prometheus' JSON error envelope with
// the given errorType.
func errorEnvelope(body []byte, errorType string) error {
	var e struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("not a JSON envelope: %s", body)
	}
	if e.Status != "error" || e.ErrorType != errorType || e.Error == "" {
		return fmt.Errorf("envelope %s, want errorType %s", body, errorType)
	}
	return nil
}

// metricValue reads one unlabelled sample of promgate's /metrics.
func metricValue(client *http.Client, base, name string) (string, error) {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s not in /metrics", name)
}

// testCA is a certificate authority made by the test.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM string
}

var serialCounter = big.NewInt(time.Now().UnixNano())

func nextSerial() *big.Int {
	serialCounter = new(big.Int).Add(serialCounter, big.NewInt(1))
	return new(big.Int).Set(serialCounter)
}

func newTestCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue signs a leaf certificate from tmpl (subject, SANs, usage) and
// returns its PEM, its key's PEM and its serial number.
func (ca *testCA) issue(t testing.TB, tmpl *x509.Certificate) (certPEM, keyPEM string, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = nextSerial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), tmpl.SerialNumber
}

func serverCertTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: "promgate"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

func clientCertTemplate(cn string, ous ...string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, OrganizationalUnit: ous},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// tlsClient trusts the CA in caPEM and presents cert, if given.
func tlsClient(t testing.TB, caPEM string, cert *tls.Certificate) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatal("bad CA PEM")
	}
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableCompression: true}}
}

// startGateTLS starts promgate serving HTTPS and waits until /-/ready
// answers 200 over TLS with client. The process is stopped at the end of
// the test.
func startGateTLS(t *testing.T, name, dir string, client *http.Client, args func(addr string) []string) *server {
	t.Helper()
	bin := requirePromgate(t)
	s, err := startWith(t, testenv.Options{Name: name, Dir: dir, Scheme: "https", Client: client, Timeout: 60 * time.Second,
		Args: func(addr string) []string { return append([]string{bin}, args(addr)...) }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// curlTeams runs count by (team) (up) with curl and returns its HTTP status
// and the teams; err is curl's failure (a refused handshake, for example).
func curlTeams(curl, base string, args ...string) (int, []string, string, error) {
	q := url.Values{"query": {"count by (team) (up)"}, "time": {"1700000000"}}
	full := append([]string{"-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code} %{http_version}"}, args...)
	full = append(full, base+"/api/v1/query?"+q.Encode())
	out, err := exec.Command(curl, full...).CombinedOutput()
	if err != nil {
		return 0, nil, string(out), fmt.Errorf("curl: %v: %s", err, out)
	}
	text := strings.TrimSpace(string(out))
	i := strings.LastIndexByte(text, '\n')
	var code int
	var version string
	fmt.Sscanf(text[i+1:], "%d %s", &code, &version)
	var parsed struct {
		Data struct {
			Result []struct{ Metric map[string]string }
		}
	}
	var teams []string
	if json.Unmarshal([]byte(text[:max(i, 0)]), &parsed) == nil {
		for _, r := range parsed.Data.Result {
			teams = append(teams, r.Metric["team"])
		}
	}
	slices.Sort(teams)
	return code, teams, version, nil
}

// TestTLS serves promgate over HTTPS from a web configuration file in
// Prometheus' format, with certificates made here: basic auth users of the
// web file, client certificates naming users and groups, curl and promtool
// as clients, plain HTTP refused, a replaced certificate served without a
// restart, and a client certificate from an unknown CA refused.
func TestTLS(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	curl := requireTool(t, "curl")
	promtool := requireTool(t, "promtool")
	prom := startSmallPrometheus(t)
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }

	serverCA := newTestCA(t, "promgate test server CA")
	clientCA := newTestCA(t, "promgate test client CA")
	rogueCA := newTestCA(t, "rogue CA")
	authWriteFile(t, path("ca.crt"), serverCA.certPEM)
	authWriteFile(t, path("clients-ca.crt"), clientCA.certPEM)
	srvCert, srvKey, firstSerial := serverCA.issue(t, serverCertTemplate())
	authWriteFile(t, path("server.crt"), srvCert)
	authWriteFile(t, path("server.key"), srvKey)
	for _, c := range []struct {
		file string
		ca   *testCA
		cn   string
		ous  []string
	}{
		{"alice", clientCA, "alice", []string{"team-a"}},
		{"nobody", clientCA, "nobody", nil},
		{"rogue-root", rogueCA, "root", nil}, // names the admin, from the wrong CA
	} {
		cp, kp, _ := c.ca.issue(t, clientCertTemplate(c.cn, c.ous...))
		authWriteFile(t, path(c.file+".crt"), cp)
		authWriteFile(t, path(c.file+".key"), kp)
	}

	webYML := fmt.Sprintf(`tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: clients-ca.crt
  client_auth_type: VerifyClientCertIfGiven
  min_version: TLS12
http_server_config:
  headers:
    X-Content-Type-Options: nosniff
basic_auth_users:
  carol: %s
`, authHash(t, "carol-pw", bcrypt.MinCost))
	authWriteFile(t, path("web.yml"), webYML)
	gateYML := fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  client_certificate:
    user_from: cn
    groups_from: ou
policies:
  - name: team-a
    subjects: ["group:team-a"]
    selectors: ['{team="a"}']
  - name: carol
    subjects: ["user:carol"]
    selectors: ['{team="b"}']
  - name: admins
    subjects: ["user:root"]
    allow_all: true
`, prom.url)
	authWriteFile(t, path("promgate.yml"), gateYML)

	// promgate check config with the web file, and check web-config, as
	// promtool check web-config.
	for _, args := range [][]string{
		{"check", "config", path("promgate.yml"), path("web.yml")},
		{"check", "config", "--web.config.file=" + path("web.yml"), path("promgate.yml")},
		{"check", "web-config", path("web.yml")},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil || !strings.Contains(string(out), "web.yml SUCCESS") {
			t.Fatalf("promgate %v: %v\n%s", args, err, out)
		}
	}
	// A user in both files is an error; so is a client_certificate mapping
	// with a web file that does not verify client certificates.
	authWriteFile(t, path("dup.yml"), strings.Replace(gateYML, "authentication:\n", fmt.Sprintf("authentication:\n  basic_auth_users:\n    carol: %s\n", authHash(t, "x", bcrypt.MinCost)), 1))
	authWriteFile(t, path("web-noca.yml"), "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
	authWriteFile(t, path("web-bad.yml"), "tls_server_config:\n  cert_file: server.crt\n  key_file: missing.key\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "config", path("dup.yml"), path("web.yml")}, `line 6: basic_auth_users: user "carol" is also defined in ` + path("web.yml")},
		{[]string{"check", "config", path("promgate.yml"), path("web-noca.yml")}, "client_certificate needs a web configuration file"},
		{[]string{"check", "config", path("promgate.yml")}, "client_certificate needs a web configuration file"},
		{[]string{"check", "web-config", path("web-bad.yml")}, "missing.key"},
	} {
		out, err := exec.Command(bin, tc.args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
			t.Errorf("promgate %v: want exit 1 with %q, got %v:\n%s", tc.args, tc.want, err, out)
		}
	}

	trustServer := tlsClient(t, serverCA.certPEM, nil)
	gate := startGateTLS(t, "promgate-tls", dir, trustServer, func(addr string) []string {
		return []string{"--config.file=" + path("promgate.yml"), "--web.config.file=" + path("web.yml"),
			"--web.listen-address=" + addr, "--config.auto-reload-interval=200ms"}
	})

	t.Run("curl with basic auth of a web.yml user, over HTTP/2", func(t *testing.T) {
		code, teams, version, err := curlTeams(curl, gate.url, "--cacert", path("ca.crt"), "-u", "carol:carol-pw", "--http2")
		if err != nil || code != 200 || !slices.Equal(teams, []string{"b"}) || version != "2" {
			t.Errorf("status %d teams %v HTTP/%s, want 200 [b] HTTP/2: %v", code, teams, version, err)
		}
		code, _, _, err = curlTeams(curl, gate.url, "--cacert", path("ca.crt"), "-u", "carol:wrong")
		if err != nil || code != 401 {
			t.Errorf("wrong password: status %d, %v; want 401", code, err)
		}
		code, _, _, err = curlTeams(curl, gate.url, "--cacert", path("ca.crt"))
		if err != nil || code != 401 {
			t.Errorf("no credentials: status %d, %v; want 401", code, err)
		}
		// The web file's headers are served.
		_, _, resp, _, err := teamsVia(trustServer, gate.url, func(r *http.Request) { r.SetBasicAuth("carol", "carol-pw") })
		if err != nil || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers of http_server_config not served: %v %v", err, resp)
		}
	})

	t.Run("curl with a client certificate naming the user and its group", func(t *testing.T) {
		code, teams, _, err := curlTeams(curl, gate.url, "--cacert", path("ca.crt"), "--cert", path("alice.crt"), "--key", path("alice.key"))
		if err != nil || code != 200 || !slices.Equal(teams, []string{"a"}) {
			t.Errorf("alice's certificate: status %d teams %v, want 200 [a]: %v", code, teams, err)
		}
		// The certificate wins over basic credentials sent along: the
		// order is fixed, the certificate first.
		code, teams, _, err = curlTeams(curl, gate.url, "--cacert", path("ca.crt"), "--cert", path("alice.crt"), "--key", path("alice.key"), "-u", "carol:carol-pw")
		if err != nil || code != 200 || !slices.Equal(teams, []string{"a"}) {
			t.Errorf("certificate and password: status %d teams %v, want 200 [a]: %v", code, teams, err)
		}
		out, err := exec.Command(curl, "-sS", "--cacert", path("ca.crt"), "--cert", path("alice.crt"), "--key", path("alice.key"), gate.url+"/-/whoami").CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"user":"alice"`) || !strings.Contains(string(out), `"method":"certificate"`) || !strings.Contains(string(out), `"groups":["team-a"]`) {
			t.Errorf("whoami: %v %s", err, out)
		}
		// A verified certificate of a user no policy names: 403, not a
		// fall-through to anything else.
		code, _, _, err = curlTeams(curl, gate.url, "--cacert", path("ca.crt"), "--cert", path("nobody.crt"), "--key", path("nobody.key"), "-u", "carol:carol-pw")
		if err != nil || code != 403 {
			t.Errorf("nobody's certificate: status %d, %v; want 403", code, err)
		}
	})

	t.Run("client certificate from an untrusted CA is refused", func(t *testing.T) {
		code, teams, _, err := curlTeams(curl, gate.url, "--cacert", path("ca.crt"), "--cert", path("rogue-root.crt"), "--key", path("rogue-root.key"))
		if err == nil {
			t.Errorf("curl with the rogue certificate succeeded: status %d teams %v", code, teams)
		} else {
			t.Logf("curl with the rogue certificate: %v", err)
		}
		rogue, err := tls.LoadX509KeyPair(path("rogue-root.crt"), path("rogue-root.key"))
		if err != nil {
			t.Fatal(err)
		}
		// Go's client would not send a certificate the server's list of
		// acceptable CAs excludes; force it, as an attacker would.
		client := tlsClient(t, serverCA.certPEM, nil)
		client.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &rogue, nil
		}
		if code, _, _, _, err := teamsVia(client, gate.url, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Go client with the rogue certificate: status %d, err %v; want a refused handshake", code, err)
		}
		// promgate says why it refused the handshakes.
		authEventually(t, 5*time.Second, "the refusal is logged", func() error {
			if !strings.Contains(gate.log(), "certificate signed by unknown authority") {
				return fmt.Errorf("log:\n%s", gate.log())
			}
			return nil
		})
	})

	t.Run("promtool query over HTTPS", func(t *testing.T) {
		u := strings.Replace(gate.url, "https://", "https://carol:carol-pw@", 1)
		cmd := exec.Command(promtool, "query", "instant", "--time=1700000000", u, "count by (team) (up)")
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+path("ca.crt"))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), `{team="b"} => 1`) || strings.Contains(string(out), `team="a"`) {
			t.Errorf("promtool: %v\n%s", err, out)
		}
		// Without the CA, promtool refuses the certificate.
		cmd = exec.Command(promtool, "query", "instant", "--time=1700000000", u, "up")
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+path("clients-ca.crt"))
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("promtool trusted a certificate of an unknown CA:\n%s", out)
		}
	})

	t.Run("plain HTTP to the TLS port fails", func(t *testing.T) {
		plain := strings.Replace(gate.url, "https://", "http://", 1)
		resp, err := http.Get(plain + "/api/v1/query?query=up")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTP request to an HTTPS server") {
				t.Errorf("plain HTTP: status %d %s", resp.StatusCode, body)
			}
		}
		out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-u", "carol:carol-pw", plain+"/api/v1/query?query=up").CombinedOutput()
		if err == nil && string(out) == "200" {
			t.Errorf("curl over plain HTTP got 200")
		}
	})

	t.Run("a replaced certificate is served without restart", func(t *testing.T) {
		serialOf := func(pool *x509.CertPool) (*big.Int, error) {
			conn, err := tls.Dial("tcp", strings.TrimPrefix(gate.url, "https://"), &tls.Config{RootCAs: pool})
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(serverCA.certPEM))
		if s, err := serialOf(pool); err != nil || s.Cmp(firstSerial) != 0 {
			t.Fatalf("serving serial %v (%v), want %v", s, err, firstSerial)
		}
		// Renewed by another CA, so that only the new certificate can
		// satisfy a client trusting that CA alone. The certificate is
		// written before its key: in between, the files do not match and
		// the old certificate keeps being served.
		newCA := newTestCA(t, "renewed server CA")
		authWriteFile(t, path("ca2.crt"), newCA.certPEM)
		cp, kp, newSerial := newCA.issue(t, serverCertTemplate())
		authWriteFile(t, path("server.crt"), cp)
		if s, err := serialOf(pool); err != nil || s.Cmp(firstSerial) != 0 {
			t.Errorf("with a mismatched pair on disk: serial %v (%v), want the old %v", s, err, firstSerial)
		}
		authWriteFile(t, path("server.key"), kp)
		pool2 := x509.NewCertPool()
		pool2.AppendCertsFromPEM([]byte(newCA.certPEM))
		authEventually(t, 5*time.Second, "new certificate served", func() error {
			s, err := serialOf(pool2)
			if err != nil {
				return err
			}
			if s.Cmp(newSerial) != 0 {
				return fmt.Errorf("serial %v", s)
			}
			return nil
		})
		code, teams, _, err := curlTeams(curl, gate.url, "--cacert", path("ca2.crt"), "-u", "carol:carol-pw")
		if err != nil || code != 200 || !slices.Equal(teams, []string{"b"}) {
			t.Errorf("curl trusting the new CA: status %d teams %v: %v", code, teams, err)
		}
		if gate.Cmd.ProcessState != nil {
			t.Error("promgate restarted")
		}
	})
}
