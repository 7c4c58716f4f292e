package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/promgate/promgate/internal/testenv"
)

// basicAuthTransport adds credentials to every request.
type basicAuthTransport struct {
	user, pass string
	next       http.RoundTripper
}

func (b basicAuthTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pass)
	return b.next.RoundTrip(r)
}

// upstreamTLSStack is a Prometheus serving HTTPS with basic auth (its own
// web.yml), and promgates in front of it: one over TLS with the right CA
// and password, one through a plain-HTTP route to the same Prometheus (the
// reference), one with a wrong CA, one with a wrong password.
type upstreamTLSStack struct {
	promURL  string
	direct   *http.Client // to Prometheus, with the CA and the password
	gates    map[string]string
	dir      string
	gateLogs map[string]*server
}

const upstreamPassword = "prom-s3cret"

func startUpstreamTLSStack(t *testing.T) *upstreamTLSStack {
	t.Helper()
	bin := requirePromgate(t)
	prometheus := requireTool(t, "prometheus")
	dir := t.TempDir()
	ca := newTestCA(t, "upstream test CA")
	certPEM, keyPEM, _ := ca.issue(t, serverCertTemplate())
	wrongCA := newTestCA(t, "another CA")
	files := map[string]string{
		"ca.pem":             ca.certPEM,
		"wrong-ca.pem":       wrongCA.certPEM,
		"prometheus.pem":     certPEM,
		"prometheus.key":     keyPEM,
		"prom-password":      upstreamPassword + "\n",
		"wrong-password":     "not-it\n",
		"rules.yml":          liveRules,
		"prometheus-web.yml": "tls_server_config:\n  cert_file: prometheus.pem\n  key_file: prometheus.key\nbasic_auth_users:\n  promgate: " + authHash(t, upstreamPassword, 10) + "\n",
	}
	a := exporter(t, "# HELP app_requests Requests.\n# TYPE app_requests counter\napp_requests_total{path=\"/x\"} 5\n# HELP app_a_only Only team a has it.\n# TYPE app_a_only gauge\napp_a_only 1\n")
	b := exporter(t, "# HELP app_requests Requests.\n# TYPE app_requests counter\napp_requests_total{path=\"/y\"} 7\napp_b_only 1\n")
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	files["prometheus.yml"] = fmt.Sprintf(`global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files: [rules.yml]
scrape_configs:
- job_name: app-a
  static_configs: [{targets: ["%s"], labels: {team: a}}]
- job_name: app-b
  static_configs: [{targets: ["%s"], labels: {team: b}}]
`, host(a), host(b))
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	direct := tlsClient(t, ca.certPEM, nil)
	direct.Transport = basicAuthTransport{"promgate", upstreamPassword, direct.Transport}
	prom, err := startWith(t, testenv.Options{Name: "prometheus-tls", Dir: dir, Scheme: "https", Client: direct, Timeout: 60 * time.Second,
		Args: func(addr string) []string {
			return testenv.PrometheusArgs(prometheus, filepath.Join(dir, "prometheus.yml"), filepath.Join(dir, "data"), addr,
				"--web.config.file="+filepath.Join(dir, "prometheus-web.yml"))
		}})
	if err != nil {
		t.Fatal(err)
	}
	s := &upstreamTLSStack{promURL: prom.url, direct: direct, gates: map[string]string{}, dir: dir, gateLogs: map[string]*server{}}

	// The reference: the same Prometheus over plain HTTP, credentials
	// added by a proxy of the test's.
	target, _ := url.Parse(prom.url)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = direct.Transport
	plain := httptest.NewServer(rp)
	t.Cleanup(plain.Close)

	hash := authHash(t, "pw", 4)
	tlsUpstream := func(ca, password string) string {
		return fmt.Sprintf("url: %s\n    tls_config: {ca_file: %s, min_version: TLS12}\n    basic_auth: {username: promgate, password_file: %s}", prom.url, ca, password)
	}
	for name, upstream := range map[string]string{
		"tls":            tlsUpstream("ca.pem", "prom-password"),
		"plain":          "url: " + plain.URL,
		"wrong-ca":       tlsUpstream("wrong-ca.pem", "prom-password"),
		"wrong-password": tlsUpstream("ca.pem", "wrong-password"),
	} {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		gateURL := fmt.Sprintf("http://127.0.0.1:%d/prometheus", port)
		cfg := fmt.Sprintf(`upstreams:
  prometheus:
    %s
authentication:
  basic_auth_users: {alice: %s, admin: %s}
policies:
  - {name: team-a, subjects: ["user:alice"], selectors: ['{team="a"}']}
  - {name: admins, subjects: ["user:admin"], allow_all: true}
`, upstream, hash, hash)
		cfgFile := filepath.Join(dir, "promgate-"+name+".yml")
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		gate, err := startAt(t, "promgate-"+name, dir, bin, gateURL+"/-/ready", "--config.file="+cfgFile,
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--web.external-url="+gateURL)
		if err != nil {
			t.Fatal(err)
		}
		s.gates[name], s.gateLogs[name] = gateURL, gate
	}

	// Until both teams are scraped twice and the alerts fire.
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := s.get(t, "tls", "admin", "/api/v1/alerts")
		_, scraped := s.get(t, "tls", "admin", "/api/v1/query?query="+url.QueryEscape("count_over_time(up[1m]) >= 2"))
		if code == 200 && strings.Count(string(body), `"state":"firing"`) >= 5 && strings.Count(string(scraped), `"job"`) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts not firing after 60s: %d %s\n%s", code, body, s.gateLogs["tls"].log())
		}
		time.Sleep(500 * time.Millisecond)
	}
	return s
}

// get asks promgate gate as user (password "pw").
func (s *upstreamTLSStack) get(t *testing.T, gate, user, path string) (int, []byte) {
	t.Helper()
	return s.send(t, gate, user, "GET", path, nil, nil)
}

func (s *upstreamTLSStack) send(t *testing.T, gate, user, method, path string, body []byte, header http.Header) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.gates[gate]+path, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	req.SetBasicAuth(user, "pw")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestUpstreamTLS: promgate in front of a Prometheus with TLS and basic
// auth of its own (web.yml) answers every enforced endpoint as it does in
// front of the same Prometheus over plain HTTP; a wrong CA and a wrong
// password are 502s that say so, at once.
func TestUpstreamTLS(t *testing.T) {
	s := startUpstreamTLSStack(t)
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	start := strconv.FormatInt(now-60, 10)
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	remoteRead, _ := (&prompb.ReadRequest{Queries: []*prompb.Query{{
		StartTimestampMs: (now - 60) * 1000, EndTimestampMs: now * 1000,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}},
	}}}).Marshal()
	readHeader := http.Header{
		"Content-Type": {"application/x-protobuf"}, "Content-Encoding": {"snappy"},
		"X-Prometheus-Remote-Read-Version": {"0.1.0"},
	}
	for _, ep := range []struct {
		name, method, path string
		body               []byte
		header             http.Header
		// want is in a restricted user's answer, nowhere is not.
		want, nowhere string
	}{
		{"query", "GET", "/api/v1/query?" + q("query", "up", "time", ts), nil, nil, `"team":"a"`, `"team":"b"`},
		{"query POST", "POST", "/api/v1/query", []byte(q("query", "sum by (team) (app_requests_total)", "time", ts)),
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, `"team":"a"`, `"team":"b"`},
		{"query_range", "GET", "/api/v1/query_range?" + q("query", "up", "start", start, "end", ts, "step", "5"), nil, nil, `"team":"a"`, `"team":"b"`},
		{"series", "GET", "/api/v1/series?" + q("match[]", "up", "start", start, "end", ts), nil, nil, `"team":"a"`, `"team":"b"`},
		{"labels", "GET", "/api/v1/labels?" + q("start", start, "end", ts), nil, nil, `"team"`, ``},
		{"label values", "GET", "/api/v1/label/__name__/values?" + q("start", start, "end", ts), nil, nil, `app_a_only`, `app_b_only`},
		{"federate", "GET", "/federate?" + q("match[]", `{__name__=~"app_.*"}`), nil, nil, `app_a_only`, `app_b_only`},
		{"remote read", "POST", "/api/v1/read", snappy.Encode(nil, remoteRead), readHeader, `app-a`, `app-b`},
		{"rules", "GET", "/api/v1/rules", nil, nil, `TeamAStatic`, `TeamBStatic`},
		{"alerts", "GET", "/api/v1/alerts", nil, nil, `TeamAStatic`, `TeamBStatic`},
		{"targets", "GET", "/api/v1/targets", nil, nil, `app-a`, `app-b`},
		{"metadata", "GET", "/api/v1/metadata", nil, nil, `app_a_only`, ``},
	} {
		t.Run(ep.name, func(t *testing.T) {
			for _, user := range []string{"alice", "admin"} {
				// Rules are evaluated and targets scraped every 2 s:
				// the two answers are compared until they are taken
				// between the same two evaluations.
				var viaTLS, viaPlain []byte
				var codeTLS, codePlain int
				for attempt := 0; attempt < 10; attempt++ {
					codeTLS, viaTLS = s.send(t, "tls", user, ep.method, ep.path, ep.body, ep.header)
					codePlain, viaPlain = s.send(t, "plain", user, ep.method, ep.path, ep.body, ep.header)
					if codeTLS == codePlain && bytes.Equal(viaTLS, viaPlain) {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				if codeTLS != 200 || !bytes.Equal(viaTLS, viaPlain) {
					t.Fatalf("%s: over TLS %d %.300s\nover plain HTTP %d %.300s", user, codeTLS, viaTLS, codePlain, viaPlain)
				}
				text := string(viaTLS)
				if ep.name == "remote read" {
					text = remoteReadText(t, viaTLS)
				}
				if !strings.Contains(text, ep.want) {
					t.Errorf("%s: answer lacks %s: %.300s", user, ep.want, text)
				}
				if user == "alice" && ep.nowhere != "" && strings.Contains(text, ep.nowhere) {
					t.Errorf("alice sees %s: %.300s", ep.nowhere, text)
				}
			}
		})
	}

	t.Run("connections kept alive", func(t *testing.T) {
		before := s.accepted(t)
		for range 100 {
			if code, body := s.get(t, "tls", "alice", "/api/v1/query?"+q("query", "up", "time", ts)); code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
		}
		t.Logf("Prometheus accepted %v connections for 100 queries through promgate", s.accepted(t)-before)
		// The reading of the counter may open a connection of its own.
		if opened := s.accepted(t) - before; opened > 2 {
			t.Errorf("Prometheus accepted %v connections for 100 sequential queries through promgate", opened)
		}
	})
	t.Run("wrong CA", func(t *testing.T) {
		begin := time.Now()
		code, body := s.get(t, "wrong-ca", "alice", "/api/v1/query?"+q("query", "up"))
		if code != http.StatusBadGateway || !strings.Contains(string(body), "signed by an unknown authority") || time.Since(begin) > 10*time.Second {
			t.Errorf("status %d after %s: %s", code, time.Since(begin), body)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		code, body := s.get(t, "wrong-password", "alice", "/api/v1/query?"+q("query", "up"))
		if code != http.StatusBadGateway || !strings.Contains(string(body), "refused promgate's credentials (401 Unauthorized; check basic_auth)") {
			t.Errorf("status %d: %s", code, body)
		}
	})
	t.Run("the client's Authorization does not reach Prometheus", func(t *testing.T) {
		// promgate's own credentials are Prometheus'; alice's basic auth
		// is promgate's. Prometheus accepting the request proves promgate
		// replaced it (alice's would be refused).
		code, _ := s.get(t, "tls", "alice", "/api/v1/query?"+q("query", "up"))
		req, _ := http.NewRequest("GET", s.promURL+"/api/v1/query?query=up", nil)
		req.SetBasicAuth("alice", "pw")
		resp, err := tlsClient(t, readFile(t, filepath.Join(s.dir, "ca.pem")), nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if code != 200 || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("via promgate %d, alice's own credentials at Prometheus %d; want 200 and 401", code, resp.StatusCode)
		}
	})
}

// accepted is the number of connections Prometheus' web listener has
// accepted.
func (s *upstreamTLSStack) accepted(t *testing.T) float64 {
	t.Helper()
	resp, err := s.direct.Get(s.promURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, `net_conntrack_listener_conn_accepted_total{listener_name="http"} `); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no accepted connections counter in Prometheus' metrics")
	return 0
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// remoteReadText is a remote read answer as text, for substring checks.
func remoteReadText(t *testing.T, body []byte) string {
	t.Helper()
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatalf("remote read answer: %v", err)
	}
	var rr prompb.ReadResponse
	if err := rr.Unmarshal(raw); err != nil {
		t.Fatalf("remote read answer: %v", err)
	}
	var out []string
	for _, res := range rr.Results {
		for _, ts := range res.Timeseries {
			out = append(out, rrLabels(ts.Labels))
		}
	}
	out = append(out, fmt.Sprint(len(out), " series"))
	return strings.Join(out, "\n")
}
