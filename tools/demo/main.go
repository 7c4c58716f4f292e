// Command demo runs promgate in front of a real Prometheus holding two
// hours of multi-tenant data, with two users, and prints commands to try.
// It stops everything it started on Ctrl-C (or after -duration).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/e2e"
)

func main() {
	duration := flag.Duration("duration", 0, "stop after this long (0: wait for Ctrl-C)")
	flag.Parse()
	if err := run(*duration); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration) error {
	dir, err := os.MkdirTemp("", "promgate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Println("generating two hours of data for teams a, b and c ...")
	om := filepath.Join(dir, "data.om")
	if err := e2e.Generate().WriteOpenMetricsFile(om); err != nil {
		return err
	}
	tsdb := filepath.Join(dir, "tsdb")
	if out, err := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", om, tsdb).CombinedOutput(); err != nil {
		return fmt.Errorf("promtool: %v\n%s", err, out)
	}

	promAddr := addr(9090)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("global: {}\n"), 0o644); err != nil {
		return err
	}
	prom := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+tsdb, "--storage.tsdb.retention.time=100y",
		"--web.listen-address="+promAddr)
	prom.Stdout, prom.Stderr = logFile(dir, "prometheus.log"), logFile(dir, "prometheus.log")
	if err := prom.Start(); err != nil {
		return fmt.Errorf("starting prometheus: %w", err)
	}
	defer stop(prom)
	if err := waitReady("http://" + promAddr + "/-/ready"); err != nil {
		return err
	}

	amAddr := addr(9093)
	amCfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(amCfg, []byte(`route: {receiver: default, group_by: [team]}
receivers: [{name: default}]
`), 0o644); err != nil {
		return err
	}
	am := exec.Command("prometheus-alertmanager", "--config.file="+amCfg, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")
	am.Stdout, am.Stderr = logFile(dir, "alertmanager.log"), logFile(dir, "alertmanager.log")
	if err := am.Start(); err != nil {
		return fmt.Errorf("starting alertmanager: %w", err)
	}
	defer stop(am)
	if err := waitReady("http://" + amAddr + "/-/ready"); err != nil {
		return err
	}
	alerts := `[{"labels":{"alertname":"HighLatency","team":"a","severity":"warning"}},
{"labels":{"alertname":"DiskFull","team":"b","severity":"critical"}},
{"labels":{"alertname":"NodeDown","team":"c","severity":"critical"}}]`
	postAlerts := func() error {
		resp, err := http.Post("http://"+amAddr+"/api/v2/alerts", "application/json", strings.NewReader(alerts))
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	if err := postAlerts(); err != nil {
		return err
	}
	// Alerts resolve after 5 minutes unless sent again, as Prometheus does.
	go func() {
		for range time.Tick(time.Minute) {
			_ = postAlerts()
		}
	}()

	users := map[string]string{"alice": "alice-password", "bob": "bob-password", "admin": "admin-password"}
	hashes := map[string]string{}
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.DefaultCost)
		if err != nil {
			return err
		}
		hashes[u] = string(h)
	}
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: http://%s
  alertmanager:
    url: http://%s
authentication:
  basic_auth_users:
    alice: %s
    bob: %s
    admin: %s
policies:
  - name: team-a
    subjects: ["user:alice"]
    selectors: ['{team="a"}']
  - name: team-b
    subjects: ["user:bob"]
    selectors: ['{team="b"}', '{__name__=~"node_.*", shared="true"}']
  - name: admins
    subjects: ["user:admin"]
    allow_all: true
`, promAddr, amAddr, hashes["alice"], hashes["bob"], hashes["admin"])
	cfgFile := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return err
	}

	bin := filepath.Join(dir, "promgate")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/promgate").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	gateAddr := addr(8080)
	gate := exec.Command(bin, "--config.file="+cfgFile, "--web.listen-address="+gateAddr)
	gate.Stdout, gate.Stderr = os.Stdout, os.Stderr
	if err := gate.Start(); err != nil {
		return err
	}
	defer stop(gate)
	if err := waitReady("http://" + gateAddr + "/-/ready"); err != nil {
		return err
	}

	at := strconv.Itoa(e2e.BaseTime)
	g := "http://" + gateAddr
	fmt.Printf(`
promgate is running on %[1]s in front of Prometheus on http://%[2]s
and Alertmanager on http://%[5]s (served at %[1]s/alertmanager)
config: %[3]s
The data ends at %[4]s (unix time), so queries pass time=%[4]s.

  # alice sees only team a; bob sees team b and the shared node_ metrics
  curl -s -u alice:alice-password '%[1]s/api/v1/query' --data-urlencode 'query=count by (team) (up)' -d time=%[4]s
  curl -s -u bob:bob-password '%[1]s/api/v1/query' --data-urlencode 'query=count by (team) (up)' -d time=%[4]s
  curl -s -u admin:admin-password '%[1]s/api/v1/query' --data-urlencode 'query=count by (team) (up)' -d time=%[4]s
  curl -s -u bob:bob-password '%[1]s/api/v1/label/team/values'
  curl -s -u alice:alice-password '%[1]s/api/v1/series' --data-urlencode 'match[]=up'
  # Alertmanager: each sees only their alerts and silences
  curl -s -u alice:alice-password '%[1]s/alertmanager/api/v2/alerts'
  printf 'basic_auth: {username: bob, password: bob-password}\n' > /tmp/amtool-bob.yml
  amtool --alertmanager.url=%[1]s/alertmanager --http.config.file=/tmp/amtool-bob.yml alert query
  amtool --alertmanager.url=%[1]s/alertmanager --http.config.file=/tmp/amtool-bob.yml silence add alertname=DiskFull -c 'looking' -d 1h
  # what promgate made of the query, and who you are
  curl -s -u bob:bob-password '%[1]s/-/whoami'
  # refused: no credentials, another tenant's admin API, a broken query
  curl -s '%[1]s/api/v1/query?query=up'
  curl -s -u alice:alice-password '%[1]s/api/v1/status/config'
  curl -s -u alice:alice-password '%[1]s/api/v1/query?query=sum('

Press Ctrl-C to stop.
`, g, promAddr, cfgFile, at, amAddr)

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if duration > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, duration)
		defer c()
	}
	<-ctx.Done()
	fmt.Println("stopping")
	return nil
}

// addr returns 127.0.0.1:port if it is free, else another free port.
func addr(port int) string {
	a := "127.0.0.1:" + strconv.Itoa(port)
	if l, err := net.Listen("tcp", a); err == nil {
		l.Close()
		return a
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return a
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after 60s", url)
}

func stop(c *exec.Cmd) {
	if c.Process == nil {
		return
	}
	_ = c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.Process.Kill()
	}
}

func logFile(dir, name string) *os.File {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil
	}
	return f
}
