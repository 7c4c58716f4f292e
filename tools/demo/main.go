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

	"github.com/promgate/promgate/internal/testenv"
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
	if err := testenv.Generate().WriteOpenMetricsFile(om); err != nil {
		return err
	}
	tsdb := filepath.Join(dir, "tsdb")
	if err := testenv.Backfill("promtool", om, tsdb); err != nil {
		return err
	}

	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte("global: {}\n"), 0o644); err != nil {
		return err
	}
	prom, err := testenv.Start(testenv.Options{Name: "prometheus", Dir: dir, Addr: addr(9090),
		Args: func(a string) []string { return testenv.PrometheusArgs("prometheus", promCfg, tsdb, a) }})
	if err != nil {
		return err
	}
	defer prom.Stop()
	promAddr := prom.Addr

	amCfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(amCfg, []byte(`route: {receiver: default, group_by: [team]}
receivers: [{name: default}]
`), 0o644); err != nil {
		return err
	}
	am, err := testenv.Start(testenv.Options{Name: "alertmanager", Dir: dir, Addr: addr(9093),
		Args: func(a string) []string {
			return testenv.AlertmanagerArgs("prometheus-alertmanager", amCfg, filepath.Join(dir, "am"), a)
		}})
	if err != nil {
		return err
	}
	defer am.Stop()
	amAddr := am.Addr
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
	gate, err := testenv.Start(testenv.Options{Name: "promgate", Dir: dir, Addr: addr(8080), Output: os.Stdout,
		Args: func(a string) []string { return []string{bin, "--config.file=" + cfgFile, "--web.listen-address=" + a} }})
	if err != nil {
		return err
	}
	defer gate.Stop()
	gateAddr := gate.Addr

	at := strconv.Itoa(testenv.BaseTime)
	amtool, err := testenv.Tool("amtool")
	if err != nil {
		amtool = "amtool"
	}
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
  %[6]s --alertmanager.url=%[1]s/alertmanager --http.config.file=/tmp/amtool-bob.yml alert query
  %[6]s --alertmanager.url=%[1]s/alertmanager --http.config.file=/tmp/amtool-bob.yml silence add alertname=DiskFull -c 'looking' -d 1h
  # what promgate made of the query, and who you are
  curl -s -u bob:bob-password '%[1]s/-/whoami'
  # refused: no credentials, another tenant's admin API, a broken query
  curl -s '%[1]s/api/v1/query?query=up'
  curl -s -u alice:alice-password '%[1]s/api/v1/status/config'
  curl -s -u alice:alice-password '%[1]s/api/v1/query?query=sum('

Press Ctrl-C to stop.
`, g, promAddr, cfgFile, at, amAddr, amtool)

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
