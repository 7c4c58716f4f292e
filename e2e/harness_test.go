package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireTool returns the path of an executable that the e2e tests need. A
// missing tool fails the test: CI installs it, so its absence is a broken
// environment, not a reason to skip.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("e2e: %s not found in PATH (install the Debian package prometheus): %v", name, err)
	}
	return p
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// backfill loads an OpenMetrics file into a new TSDB directory with promtool.
func backfill(promtool, omFile, dataDir string) error {
	cmd := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", omFile, dataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("promtool backfill of %s: %v\n%s", omFile, err, out)
	}
	return nil
}

// server is a process started by a test, listening on 127.0.0.1.
type server struct {
	name    string
	url     string // http://127.0.0.1:PORT
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has exited
	waitErr error
}

// log returns the end of the server's output, for failure messages.
func (s *server) log() string {
	b, _ := os.ReadFile(s.logPath)
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// startServer starts bin with the arguments that args returns for a listen
// address and waits until GET /-/ready answers 200. The process is stopped
// (by its PID) when the test ends. A port taken between picking and binding
// is retried with another port. It may be called from any goroutine.
func startServer(t testing.TB, name, dir, bin string, args func(addr string) []string) (*server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := tryStartServer(t, name, dir, bin, args)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("starting %s: %w", name, lastErr)
}

func tryStartServer(t testing.TB, name, dir, bin string, args func(addr string) []string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args(addr)...)
	cmd.Dir = dir
	cmd.SysProcAttr = childProcAttr()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	s := &server{name: name, url: "http://" + addr, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	t.Cleanup(s.stop)

	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited before it was ready (%v); log:\n%s", name, s.waitErr, s.log())
		default:
		}
		resp, err := client.Get(s.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s not ready at %s/-/ready after 90s (last: %v); log:\n%s", name, s.url, err, s.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the process the test started: SIGTERM, then SIGKILL after 10s.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// startPrometheus starts a Prometheus without scrape jobs on a TSDB directory
// filled by backfill. The retention is long so that the blocks, whose samples
// lie in the past, are kept.
func startPrometheus(t testing.TB, prometheus, name, dataDir string) (*server, error) {
	dir := filepath.Dir(dataDir)
	cfg := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		return nil, err
	}
	return startServer(t, name, dir, prometheus, func(addr string) []string {
		return []string{
			"--config.file=" + cfg,
			"--storage.tsdb.path=" + dataDir,
			"--storage.tsdb.retention.time=100y",
			"--web.listen-address=" + addr,
			"--log.level=warn",
		}
	})
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
