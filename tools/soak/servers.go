package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/promgate/promgate/internal/testenv"
)

// The data: per tenant, numInstances hosts with soak_up and
// soak_requests_total{code} over the hour before testenv.BaseTime; every
// series has team="tN" and an instance "tN-host-NN" (two labels a leak
// would show). Prometheus' rules fire promAlerts alerts per tenant and
// amAlerts more are posted to Alertmanager, all labelled team="tN".
const (
	numTenants     = 8
	connsPerTenant = 8
	numInstances   = 16
	span           = 3600
	step           = 15
	promAlerts     = 2
	amAlerts       = 3
	identityHeader = "X-Soak-User"
)

var codes = []string{"200", "404", "500", "503"}

func instance(tenant string, h int) string { return fmt.Sprintf("%s-host-%02d:9100", tenant, h) }

func dataset() *testenv.Dataset {
	ds := &testenv.Dataset{}
	up := &testenv.Family{Name: "soak_up", Type: "gauge"}
	req := &testenv.Family{Name: "soak_requests", Type: "counter"}
	ds.Families = append(ds.Families, up, req)
	from, to := int64(testenv.BaseTime-span), int64(testenv.BaseTime)
	series := func(f *testenv.Family, lbls map[string]string, v func(t int64) float64) {
		s := &testenv.Series{Labels: lbls}
		for t := from; t <= to; t += step {
			s.Samples = append(s.Samples, testenv.Sample{T: t, V: v(t)})
		}
		f.Series = append(f.Series, s)
	}
	for ti := range numTenants {
		tenant := tenantName(ti)
		for h := range numInstances {
			series(up, map[string]string{"__name__": "soak_up", "team": tenant, "instance": instance(tenant, h)},
				func(int64) float64 { return 1 })
			for ci, code := range codes {
				rate := float64(1 + ti + h + ci)
				series(req, map[string]string{"__name__": "soak_requests_total", "team": tenant, "instance": instance(tenant, h), "code": code},
					func(t int64) float64 { return rate * float64(t-from) })
			}
		}
	}
	return ds
}

func rulesFile() string {
	var b strings.Builder
	b.WriteString("groups:\n")
	for ti := range numTenants {
		tenant := tenantName(ti)
		fmt.Fprintf(&b, "  - name: %s\n    interval: 1s\n    rules:\n", tenant)
		for a := range promAlerts {
			fmt.Fprintf(&b, "      - alert: Soak%d\n        expr: vector(1)\n        labels: {team: %s, instance: %q}\n", a, tenant, instance(tenant, a))
		}
	}
	return b.String()
}

// env is what the soak started.
type env struct {
	dir                 string
	prom, am, gate      *testenv.Process
	internal            string // promgate's internal listener (metrics, pprof)
	promAddr            string
	promCfg, tsdb       string
	gateCfg             string
	validCfg, brokenCfg string
	mu                  sync.Mutex // guards prom across restarts
}

func (e *env) stop() {
	e.gate.Stop()
	e.mu.Lock()
	e.prom.Stop()
	e.mu.Unlock()
	e.am.Stop()
}

func (e *env) setup(promgate string) error {
	dir := e.dir
	om := filepath.Join(dir, "data.om")
	if err := dataset().WriteOpenMetricsFile(om); err != nil {
		return err
	}
	e.tsdb = filepath.Join(dir, "tsdb")
	if err := testenv.Backfill("promtool", om, e.tsdb); err != nil {
		return err
	}
	_ = os.Remove(om)

	amCfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(amCfg, []byte("route: {receiver: 'null', group_by: ['...']}\nreceivers: [{name: 'null'}]\n"), 0o644); err != nil {
		return err
	}
	var err error
	e.am, err = testenv.Start(testenv.Options{Name: "alertmanager", Dir: dir, Args: func(addr string) []string {
		// Alertmanager's default limit on concurrent GETs, max(GOMAXPROCS, 8),
		// answers 503 to 64 clients.
		return testenv.AlertmanagerArgs("prometheus-alertmanager", amCfg, filepath.Join(dir, "am"), addr, "--web.get-concurrency=128")
	}})
	if err != nil {
		return err
	}
	if err := postAlerts(e.am.URL); err != nil {
		return err
	}

	rules := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rules, []byte(rulesFile()), 0o644); err != nil {
		return err
	}
	e.promCfg = filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(e.promCfg, []byte(fmt.Sprintf("global: {evaluation_interval: 1s}\nrule_files: [%q]\n", rules)), 0o644); err != nil {
		return err
	}
	if err := e.startPrometheus(""); err != nil {
		return err
	}
	e.promAddr = e.prom.Addr

	var pol strings.Builder
	for ti := range numTenants {
		t := tenantName(ti)
		fmt.Fprintf(&pol, "  - name: tenant-%s\n    subjects: [\"user:%s\"]\n    selectors: ['{team=\"%s\"}']\n", t, t, t)
	}
	e.validCfg = fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
  alertmanager:
    url: %s
authentication:
  trusted_header:
    name: %s
    trusted_sources: [127.0.0.1/32]
policies:
%s  - name: admins
    subjects: ["user:admin"]
    allow_all: true
`, e.prom.URL, e.am.URL, identityHeader, pol.String())
	// The same with one selector cut short: a reload must refuse it and
	// keep serving the valid one.
	e.brokenCfg = strings.Replace(e.validCfg, `'{team="t3"}'`, `'{team="t3"'`, 1)
	e.gateCfg = filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(e.gateCfg, []byte(e.validCfg), 0o600); err != nil {
		return err
	}
	internalAddr, err := testenv.FreeAddr()
	if err != nil {
		return err
	}
	e.internal = "http://" + internalAddr
	e.gate, err = testenv.Start(testenv.Options{Name: "promgate", Dir: dir, Args: func(addr string) []string {
		return []string{promgate, "--config.file=" + e.gateCfg, "--web.listen-address=" + addr,
			"--web.internal-listen-address=" + internalAddr,
			"--log.level=warn", "--config.auto-reload-interval=0"}
	}})
	if err != nil {
		return err
	}
	return e.waitAlerts()
}

// startPrometheus starts Prometheus on addr (a free port when empty).
func (e *env) startPrometheus(addr string) error {
	p, err := testenv.Start(testenv.Options{Name: "prometheus", Dir: e.dir, Addr: addr, Args: func(addr string) []string {
		return testenv.PrometheusArgs("prometheus", e.promCfg, e.tsdb, addr)
	}})
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.prom = p
	e.mu.Unlock()
	return nil
}

// restartPrometheus stops Prometheus and starts it again on the same
// address and data directory.
func (e *env) restartPrometheus() error {
	e.mu.Lock()
	old := e.prom
	e.mu.Unlock()
	old.Stop()
	var err error
	// The port is free again once the old process has exited; another
	// program may take it meanwhile, hence the retries.
	for attempt := 0; attempt < 5; attempt++ {
		if err = e.startPrometheus(e.promAddr); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// postAlerts sends each tenant's alerts to Alertmanager, ending in a day.
func postAlerts(amURL string) error {
	var list []map[string]any
	ends := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	for ti := range numTenants {
		tenant := tenantName(ti)
		for a := range amAlerts {
			list = append(list, map[string]any{
				"labels":      map[string]string{"alertname": "SoakAM" + strconv.Itoa(a), "team": tenant, "instance": instance(tenant, a)},
				"annotations": map[string]string{"summary": "alert " + strconv.Itoa(a) + " of " + tenant},
				"endsAt":      ends,
			})
		}
	}
	body, _ := json.Marshal(list)
	resp, err := http.Post(amURL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("posting alerts to Alertmanager: status %d", resp.StatusCode)
	}
	return nil
}

// waitAlerts waits until Prometheus' rules fire and Alertmanager holds the
// posted alerts, as the admin sees them through promgate.
func (e *env) waitAlerts() error {
	deadline := time.Now().Add(60 * time.Second)
	c := newClient()
	for {
		var p, a int
		if r := c.get(e.gate.URL+"/api/v1/alerts", "admin"); r.code == 200 {
			var env struct {
				Data struct {
					Alerts []json.RawMessage `json:"alerts"`
				} `json:"data"`
			}
			if json.Unmarshal(r.body, &env) == nil {
				p = len(env.Data.Alerts)
			}
		}
		if r := c.get(e.gate.URL+"/alertmanager/api/v2/alerts", "admin"); r.code == 200 {
			var list []json.RawMessage
			if json.Unmarshal(r.body, &list) == nil {
				a = len(list)
			}
		}
		if p == numTenants*promAlerts && a == numTenants*amAlerts {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 60s: %d alerts in Prometheus, %d in Alertmanager, want %d and %d",
				p, a, numTenants*promAlerts, numTenants*amAlerts)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
