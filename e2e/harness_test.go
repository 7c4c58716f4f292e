package e2e

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/promgate/promgate/internal/testenv"
)

// requireTool returns the path of an executable that the e2e tests need:
// for the servers (prometheus, promtool, prometheus-alertmanager, amtool),
// those of the generation under test (testenv.UpstreamsDirEnv). A missing
// tool fails the test: CI installs it, so its absence is a broken
// environment, not a reason to skip.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := testenv.Tool(name)
	if err != nil {
		t.Fatalf("e2e: %s not found (Debian's packages are installed by scripts/install-deps.sh, the current servers built by scripts/build-upstreams.sh): %v", name, err)
	}
	return p
}

// prometheusVersion is the version of the Prometheus under test.
func prometheusVersion(t testing.TB) testenv.Version {
	t.Helper()
	v, err := testenv.VersionOf(requireTool(t, "prometheus"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// alertmanagerVersion is the version of the Alertmanager under test.
func alertmanagerVersion(t testing.TB) testenv.Version {
	t.Helper()
	v, err := testenv.VersionOf(requireTool(t, "prometheus-alertmanager"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// onlyPrometheus2 skips a test that only makes sense on Prometheus 2.x.
func onlyPrometheus2(t testing.TB, why string) {
	t.Helper()
	if v := prometheusVersion(t); v.Major >= 3 {
		t.Skipf("Prometheus %s: %s", v, why)
	}
}

// onlyPrometheus3 skips a test that only makes sense on Prometheus 3.x.
func onlyPrometheus3(t testing.TB, why string) {
	t.Helper()
	if v := prometheusVersion(t); v.Major < 3 {
		t.Skipf("Prometheus %s: %s", v, why)
	}
}

// The data and the server processes are shared with tools/bench, tools/soak
// and tools/demo (internal/testenv); these names keep the tests' vocabulary.
type (
	Dataset  = testenv.Dataset
	Selector = testenv.Selector
)

const (
	BaseTime  = testenv.BaseTime
	StartTime = testenv.StartTime
)

var (
	Generate       = testenv.Generate
	ParseSelectors = testenv.ParseSelectors
	labelsKey      = testenv.LabelsKey
	freePort       = testenv.FreePort
	backfill       = testenv.Backfill
)

// server is a process started by a test, listening on 127.0.0.1; url is its
// base URL (http://127.0.0.1:PORT).
type server struct {
	*testenv.Process
	url string
}

// log returns the end of the server's output, for failure messages.
func (s *server) log() string { return s.Log() }

// stop ends the process; the end of the test does it too.
func (s *server) stop() { s.Stop() }

// startServer starts bin with the arguments that args returns for a listen
// address and waits until GET /-/ready answers 200 (testenv.Start). The
// process is stopped when the test ends. It may be called from any
// goroutine.
func startServer(t testing.TB, name, dir, bin string, args func(addr string) []string) (*server, error) {
	return startWith(t, testenv.Options{Name: name, Dir: dir, Args: func(addr string) []string {
		return append([]string{bin}, args(addr)...)
	}})
}

// startWith is startServer with every option of testenv.Start.
func startWith(t testing.TB, o testenv.Options) (*server, error) {
	p, err := testenv.Start(o)
	if err != nil {
		return nil, err
	}
	t.Cleanup(p.Stop)
	return &server{Process: p, url: p.URL}, nil
}

// startPrometheus starts a Prometheus without scrape jobs on a TSDB directory
// filled by backfill.
func startPrometheus(t testing.TB, prometheus, name, dataDir string) (*server, error) {
	dir := filepath.Dir(dataDir)
	cfg := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		return nil, err
	}
	return startWith(t, testenv.Options{Name: name, Dir: dir, Args: func(addr string) []string {
		return testenv.PrometheusArgs(prometheus, cfg, dataDir, addr)
	}})
}

// endpoint is an HTTP API base URL, with basic-auth credentials when user is
// set.
type endpoint struct {
	name       string
	url        string
	user, pass string
}

// response is one HTTP answer, or the transport error that replaced it.
type response struct {
	code int
	body []byte
	err  error
}

// httpClient keeps connections alive across the many queries of a run. It
// does not ask for compressed answers; gzipClient does (Accept-Encoding: gzip,
// decompressed transparently), to exercise both paths of a server.
var (
	httpClient = &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true},
	}
	gzipClient = &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16},
	}
)

// call sends a GET (params in the URL) or a POST (params as a form).
func (e endpoint) call(ctx context.Context, method, path string, params url.Values) response {
	return e.callWith(ctx, httpClient, method, path, params)
}

// callWith is call with a chosen client (httpClient or gzipClient).
func (e endpoint) callWith(ctx context.Context, client *http.Client, method, path string, params url.Values) response {
	q := params.Encode()
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequestWithContext(ctx, method, e.url+path, bytes.NewBufferString(q))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		u := e.url + path
		if q != "" {
			u += "?" + q
		}
		req, err = http.NewRequestWithContext(ctx, method, u, nil)
	}
	if err != nil {
		return response{err: err}
	}
	if e.user != "" {
		req.SetBasicAuth(e.user, e.pass)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return response{code: resp.StatusCode, err: err}
	}
	return response{code: resp.StatusCode, body: buf.Bytes()}
}
