package testenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options describe a server to start on 127.0.0.1.
type Options struct {
	// Name names the server in messages and its log, Dir/Name.log.
	Name string
	// Dir is the working directory of the process.
	Dir string
	// Args returns the command line (program first) that listens on addr.
	// It may write files that name the address (nginx' configuration).
	Args func(addr string) []string
	// Addr is the listen address; empty picks a free port, retried with
	// another when taken between picking and binding.
	Addr string
	// Scheme of URL: "http" (the default) or "https".
	Scheme string
	// ReadyPath is asked until it answers 200; "/-/ready" by default.
	ReadyPath string
	// Client asks ReadyPath; a plain client with a 2 s timeout by default.
	Client *http.Client
	// Timeout bounds the wait for readiness; 90 s by default.
	Timeout time.Duration
	// Output, when set, receives the process' output instead of the log.
	Output io.Writer
}

// Process is a server started by Start. Stop ends it.
type Process struct {
	Name    string
	Addr    string // 127.0.0.1:PORT
	URL     string // http://127.0.0.1:PORT
	Cmd     *exec.Cmd
	LogPath string

	exited  chan struct{} // closed when the process has exited
	waitErr error
}

// handedOut holds every port FreePort has returned in this process. The
// kernel may give a port it just gave again once the probe closes it, and
// two servers started side by side on the same port do not both fail: the
// loser exits, but the winner answers its readiness probe, so a test would
// talk to the wrong server (a Thanos Query to another stack's sidecar).
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a port on 127.0.0.1 that was free a moment ago and that
// it has not returned before in this process.
func FreePort() (int, error) {
	for attempt := 0; attempt < 100; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		handedOut.Lock()
		taken := handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, errors.New("free port: the kernel keeps offering ports already handed out")
}

// FreeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// Start starts the server and waits until it is ready. Every process runs
// in its own process group (Ctrl-C reaches only the program that started
// it, which stops it in order) and, on Linux, is killed when that program
// dies without stopping it.
func Start(o Options) (*Process, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := tryStart(o)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if o.Addr != "" || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("starting %s: %w", o.Name, lastErr)
}

func tryStart(o Options) (*Process, error) {
	addr := o.Addr
	if addr == "" {
		var err error
		if addr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	argv := o.Args(addr)
	if len(argv) == 0 {
		return nil, errors.New("empty command line")
	}
	logPath := filepath.Join(o.Dir, o.Name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = o.Dir
	cmd.SysProcAttr = procAttr()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if o.Output != nil {
		cmd.Stdout, cmd.Stderr = o.Output, o.Output
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	scheme := o.Scheme
	if scheme == "" {
		scheme = "http"
	}
	p := &Process{Name: o.Name, Addr: addr, URL: scheme + "://" + addr, Cmd: cmd, LogPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	if err := p.WaitReady(o); err != nil {
		p.Stop()
		return nil, err
	}
	// A server that lost its port exits, while the one that holds it may
	// have answered the readiness probe; its log says why (and whether
	// Start may retry).
	if err := p.Alive(); err != nil {
		return nil, err
	}
	return p, nil
}

// WaitReady waits until o.ReadyPath answers 200, as Start does; a test
// that restarts a server's work (a reload) may wait again.
func (p *Process) WaitReady(o Options) error {
	ready := o.ReadyPath
	if ready == "" {
		ready = "/-/ready"
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready (%v); log:\n%s", p.Name, p.waitErr, p.Log())
		default:
		}
		resp, err := client.Get(p.URL + ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s%s after %s (last: %v); log:\n%s", p.Name, p.URL, ready, timeout, err, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PID is the process' ID.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Alive returns an error, with the end of the log, when the process has
// exited.
func (p *Process) Alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); log:\n%s", p.Name, p.waitErr, p.Log())
	default:
		return nil
	}
}

// Log returns the end of the process' output, for failure messages.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// Stop ends the process and its process group (nginx' workers, say):
// SIGTERM, then SIGKILL after 10 s. It may be called more than once, and
// on a nil Process.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	signalGroup(p.Cmd.Process, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		signalGroup(p.Cmd.Process, syscall.SIGKILL)
		<-p.exited
	}
}

// Backfill loads an OpenMetrics file into a new TSDB directory with
// promtool.
func Backfill(promtool, omFile, dataDir string) error {
	cmd := exec.Command(resolve(promtool), "tsdb", "create-blocks-from", "openmetrics", omFile, dataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("promtool backfill of %s: %v\n%s", omFile, err, out)
	}
	return nil
}

// PrometheusArgs is the command line of a Prometheus without scrape jobs
// listening on addr, on the TSDB in dataDir (filled by Backfill, or empty).
// The retention is long so that backfilled blocks, whose samples lie in
// the past, are kept.
func PrometheusArgs(bin, configFile, dataDir, addr string, flags ...string) []string {
	return append([]string{resolve(bin),
		"--config.file=" + configFile,
		"--storage.tsdb.path=" + dataDir,
		"--storage.tsdb.retention.time=100y",
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}, flags...)
}

// AlertmanagerArgs is the command line of a single Alertmanager (no
// cluster) listening on addr, its state in storageDir.
func AlertmanagerArgs(bin, configFile, storageDir, addr string, flags ...string) []string {
	return append([]string{resolve(bin),
		"--config.file=" + configFile,
		"--storage.path=" + storageDir,
		"--web.listen-address=" + addr,
		"--cluster.listen-address=",
		"--log.level=warn",
	}, flags...)
}
