package main

// The TLS-upstream case: promgate in front of a Prometheus that serves
// HTTPS with basic auth of its own (--web.config.file), against the same
// query through promgate over plain HTTP and straight to either
// Prometheus. The second Prometheus runs on a copy of the benchmark's
// TSDB, so both answer the same data.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/testenv"
)

var tlsUpstream = flag.Bool("tls-upstream", true, "also measure promgate in front of a Prometheus serving HTTPS with basic auth (the small case)")

const upstreamUser, upstreamPassword = "promgate", "upstream-password-for-the-benchmark"

// tlsEnv is the TLS upstream and the promgate in front of it.
type tlsEnv struct {
	prom, gate *proc
	client     *http.Client // to the TLS Prometheus, CA and password set
	auth       string       // its Authorization header
}

func (t *tlsEnv) stop() {
	t.gate.stop()
	t.prom.stop()
}

// tlsUpstreamCase measures the small case through the four paths and
// prints a table; it runs after the main report.
func (e *env) tlsUpstreamCase(o options, cs []*benchCase) error {
	if !*tlsUpstream || e.gate == nil {
		return nil
	}
	c := limitsCase(cs) // the small query
	if c == nil {
		return nil
	}
	fmt.Println("\nTLS upstream: starting a Prometheus with TLS and basic auth on a copy of the data ...")
	t, err := e.startTLSUpstream(o)
	if t != nil {
		defer t.stop()
	}
	if err != nil {
		return fmt.Errorf("TLS upstream: %w", err)
	}
	targets := []struct {
		target
		gate, prom *proc
	}{
		{target{"direct", e.prom.url + c.directPath, nil}, nil, e.prom},
		{target{"direct TLS", t.prom.url + c.directPath, []string{t.auth}}, nil, t.prom},
		{target{"promgate", e.gate.url + c.gatePath, e.gateHeader}, e.gate, e.prom},
		{target{"promgate TLS", t.gate.url + c.gatePath, e.gateHeader}, t.gate, t.prom},
	}
	// The same answer on every path.
	want := ""
	for _, tg := range targets {
		body, err := fetchTLS(t.client, tg.url, tg.headers)
		if err != nil {
			return fmt.Errorf("TLS upstream, %s: %w", tg.name, err)
		}
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			return fmt.Errorf("TLS upstream, %s: %w", tg.name, err)
		}
		a := canonical(v)
		if want == "" {
			want = a
		} else if a != want {
			return fmt.Errorf("TLS upstream, %s answers other data:\n got %.300s\nwant %.300s", tg.name, a, want)
		}
	}
	w, err := newWrk(e.dir, e.wrkCPU)
	if err != nil {
		return err
	}
	res := map[string][]sample{}
	var gateRequests int64
	var opened float64 // connections promgate opened to the TLS Prometheus under load
	for rep := 0; rep < o.reps; rep++ {
		for k := range targets {
			tg := targets[(k+rep)%len(targets)]
			var gw []int
			if tg.gate != nil {
				gw = []int{tg.gate.pid()}
			}
			up := []int{tg.prom.pid()}
			var s sample
			if len(gw) > 0 {
				s.rssOK = resetPeakRSS(gw[0])
			}
			accepted0, err := acceptedConns(t.client, t.prom.url)
			if err != nil {
				return err
			}
			g0, p0 := cpuTimes(gw), cpuTimes(up)
			l, err := w.run(tg.url, tg.headers, o.conns, o.duration)
			if err != nil {
				return fmt.Errorf("TLS upstream, %s: %w", tg.name, err)
			}
			accepted1, err := acceptedConns(t.client, t.prom.url)
			if err != nil {
				return err
			}
			if l.errors != "" {
				return fmt.Errorf("TLS upstream, %s: errors under load: %s", tg.name, l.errors)
			}
			s.load = l
			s.gateCPU, s.promCPU = cpuTimes(gw)-g0, cpuTimes(up)-p0
			if len(gw) > 0 {
				s.rss, _ = peakRSS(gw[0])
			}
			if tg.name == "promgate TLS" {
				gateRequests += l.requests
				opened += accepted1 - accepted0 - 1 // the count's own connection
			}
			res[tg.name] = append(res[tg.name], s)
		}
	}

	fmt.Printf("\nTLS upstream: case %s (%s), %d repetitions × %s, wrk -c%d; Prometheus with --web.config.file (TLS 1.3, basic auth)\n",
		c.name, c.desc, o.reps, o.duration, o.conns)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\treq/s\tp50\tp99\tvs direct\tproxy CPU/req\tupstream CPU/req\t")
	for _, tg := range targets {
		direct := res["direct"]
		if strings.HasSuffix(tg.name, "TLS") {
			direct = res["direct TLS"]
		}
		s := summarize(res[tg.name], direct)
		proxy := "-"
		if tg.gate != nil {
			proxy = fmt.Sprintf("%.0fµs", s.gateCPU)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.2f\t%s\t%.0fµs\t\n", tg.name, s.rate, fmtDur(s.p50), fmtDur(s.p99), s.ratio, proxy, s.promCPU)
	}
	tw.Flush()
	plain, tlsd := summarize(res["promgate"], nil), summarize(res["promgate TLS"], nil)
	if plain.rate > 0 {
		fmt.Printf("promgate, TLS upstream / plain upstream: %.2f of the requests per second, proxy CPU %.0f against %.0f µs per request\n",
			tlsd.rate/plain.rate, tlsd.gateCPU, plain.gateCPU)
	}
	fmt.Printf("promgate opened %.0f connections to the TLS Prometheus for %d requests under load (%d clients)\n", opened, gateRequests, o.conns)
	return nil
}

func (e *env) startTLSUpstream(o options) (*tlsEnv, error) {
	dir := filepath.Join(e.dir, "tls")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// A copy of the TSDB: a Prometheus locks its own.
	tsdb := filepath.Join(dir, "tsdb")
	if out, err := exec.Command("cp", "-a", filepath.Join(e.dir, "tsdb"), tsdb).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying the TSDB: %v: %s", err, out)
	}
	os.Remove(filepath.Join(tsdb, "lock"))
	caPEM, certPEM, keyPEM, err := testCertificates()
	if err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(upstreamPassword), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	files := map[string]string{
		"ca.pem": caPEM, "prometheus.pem": certPEM, "prometheus.key": keyPEM,
		"password":       upstreamPassword + "\n",
		"web.yml":        fmt.Sprintf("tls_server_config:\n  cert_file: prometheus.pem\n  key_file: prometheus.key\nbasic_auth_users:\n  %s: %s\n", upstreamUser, hash),
		"prometheus.yml": "global:\n  evaluation_interval: 15s\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(caPEM))
	t := &tlsEnv{auth: "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(upstreamUser+":"+upstreamPassword))}
	t.client = &http.Client{Timeout: 30 * time.Second, Transport: authTransport{t.auth, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := testenv.Start(testenv.Options{Name: "prometheus-tls", Dir: dir, Addr: addr, Scheme: "https", Client: t.client,
		Args: func(string) []string {
			return pinned(e.serverCPU, "prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
				"--storage.tsdb.path="+tsdb, "--storage.tsdb.retention.time=100y", "--web.listen-address="+addr,
				"--log.level=warn", "--web.config.file="+filepath.Join(dir, "web.yml"))
		}})
	if err != nil {
		return t, err
	}
	t.prom = &proc{Process: p, url: p.URL}

	// promgate's configuration, its Prometheus upstream over TLS.
	cfg, err := os.ReadFile(filepath.Join(e.dir, "promgate.yml"))
	if err != nil {
		return t, err
	}
	plain := "    url: " + e.prom.url + "\n"
	if !strings.Contains(string(cfg), plain) {
		return t, fmt.Errorf("promgate.yml has no %q", plain)
	}
	withTLS := strings.Replace(string(cfg), plain, fmt.Sprintf("    url: %s\n    tls_config: {ca_file: ca.pem}\n    basic_auth: {username: %s, password_file: password}\n",
		t.prom.url, upstreamUser), 1)
	gateCfg := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(gateCfg, []byte(withTLS), 0o600); err != nil {
		return t, err
	}
	bin := o.gate
	if bin == "" {
		bin = filepath.Join(e.dir, "promgate")
	}
	gateAddr, err := freeAddr()
	if err != nil {
		return t, err
	}
	t.gate, err = start(dir, "promgate-tls", gateAddr, "/-/ready", pinned(e.serverCPU, bin,
		"--config.file="+gateCfg, "--web.listen-address="+gateAddr, "--log.level=warn",
		"--upstream.max-idle-conns="+strconv.Itoa(max(o.conns, 64))))
	return t, err
}

type authTransport struct {
	header string
	next   http.RoundTripper
}

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" && r.Header.Get(identityHeader) == "" {
		r = r.Clone(r.Context())
		name, value, _ := strings.Cut(a.header, ": ")
		r.Header.Set(name, value)
	}
	return a.next.RoundTrip(r)
}

// fetchTLS is the body of a 200 answer.
func fetchTLS(c *http.Client, u string, headers []string) (string, error) {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return "", err
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Set(name, value)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %.300s", resp.StatusCode, b)
	}
	return string(b), nil
}

// acceptedConns is the number of connections Prometheus' web listener has
// accepted.
func acceptedConns(c *http.Client, promURL string) (float64, error) {
	body, err := fetchTLS(c, promURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, `net_conntrack_listener_conn_accepted_total{listener_name="http"} `); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no net_conntrack_listener_conn_accepted_total in Prometheus' metrics")
}

// testCertificates makes a CA and a server certificate for 127.0.0.1.
func testCertificates() (caPEM, certPEM, keyPEM string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "promgate bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "prometheus"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", "", err
	}
	enc := func(typ string, b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})) }
	return enc("CERTIFICATE", caDER), enc("CERTIFICATE", der), enc("EC PRIVATE KEY", kder), nil
}
