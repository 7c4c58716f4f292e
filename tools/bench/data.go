package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/promgate/promgate/internal/testenv"
)

// The benchmark's data: tenants t0..t3, each with the same shape of
// series, over span seconds ending at testenv.BaseTime, one sample every step.
// Per tenant:
//
//	up                        32 series (the small instant query)
//	node_cpu_seconds_total  2048 series (the large instant answer, the
//	                                    heavy aggregation)
//	http_requests_total      512 series (the series listing, the range query)
//	node_load1, node_memory_MemAvailable_bytes  64 series
//
// 2656 series per tenant, 10624 in all.
const (
	numTenants   = 4
	numInstances = 32
	span         = 90 * 60
	step         = 30
	queryTime    = testenv.BaseTime
)

func tenantName(i int) string { return "t" + strconv.Itoa(i) }

var (
	cpuModes = []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"}
	handlers = []string{"/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels"}
	codes    = []string{"200", "400", "422", "503"}
)

// dataset builds the series. Values are deterministic functions of the
// series' index and the time; counters only grow.
func dataset() *testenv.Dataset {
	ds := &testenv.Dataset{}
	from, to := int64(testenv.BaseTime-span), int64(testenv.BaseTime)
	fam := func(name, typ string) *testenv.Family {
		f := &testenv.Family{Name: name, Type: typ}
		ds.Families = append(ds.Families, f)
		return f
	}
	n := 0
	add := func(f *testenv.Family, name string, lbls map[string]string, value func(i int, t int64) float64) {
		m := map[string]string{"__name__": name}
		for k, v := range lbls {
			m[k] = v
		}
		s := &testenv.Series{Labels: m}
		idx := n
		n++
		for t := from; t <= to; t += step {
			s.Samples = append(s.Samples, testenv.Sample{T: t, V: value(idx, t)})
		}
		f.Series = append(f.Series, s)
	}
	counter := func(i int, t int64) float64 {
		// 1..16 per second, different per series.
		rate := float64(1 + i%16)
		return float64(i%1000) + rate*float64(t-from)
	}
	gauge := func(i int, t int64) float64 {
		return float64(i%97) + float64((t/step+int64(i))%13)/4
	}
	inst := func(tenant string, h int) string { return fmt.Sprintf("%s-host-%02d:9100", tenant, h) }

	up := fam("up", "gauge")
	cpu := fam("node_cpu_seconds", "counter")
	load := fam("node_load1", "gauge")
	mem := fam("node_memory_MemAvailable_bytes", "gauge")
	httpReq := fam("http_requests", "counter")
	for ti := range numTenants {
		tenant := tenantName(ti)
		for h := range numInstances {
			base := map[string]string{"tenant": tenant, "job": "node", "instance": inst(tenant, h)}
			add(up, "up", base, func(int, int64) float64 { return 1 })
			add(load, "node_load1", base, gauge)
			add(mem, "node_memory_MemAvailable_bytes", base, func(i int, t int64) float64 { return 1<<30 + 4096*gauge(i, t) })
			for c := range 8 {
				for _, mode := range cpuModes {
					add(cpu, "node_cpu_seconds_total", with(base, "cpu", strconv.Itoa(c), "mode", mode), counter)
				}
			}
			api := with(base, "job", "api")
			for _, hd := range handlers {
				for _, code := range codes {
					add(httpReq, "http_requests_total", with(api, "handler", hd, "code", code), counter)
				}
			}
		}
	}
	return ds
}

func with(base map[string]string, kv ...string) map[string]string {
	m := make(map[string]string, len(base)+len(kv)/2)
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// Alerting and recording rules, per tenant: groups of five rules, three
// alerting rules that always fire with four alerts each, one that never
// fires, one recording rule. Prometheus evaluates them at the current time,
// where the backfilled data is long gone, so the firing ones do not read
// series.
const (
	groupsPerTenant = 4
	alertsPerRule   = 4
)

func rulesFile() string {
	var b strings.Builder
	b.WriteString("groups:\n")
	for ti := range numTenants {
		tenant := tenantName(ti)
		for g := range groupsPerTenant {
			fmt.Fprintf(&b, "  - name: %s-group-%d\n    interval: 15s\n    rules:\n", tenant, g)
			for r := range 3 {
				var terms []string
				for k := range alertsPerRule {
					terms = append(terms, fmt.Sprintf(`label_replace(vector(1), "instance", "%s-host-%02d:9100", "", "")`, tenant, k))
				}
				fmt.Fprintf(&b, "      - alert: %sAlert%d_%d\n        expr: %s\n", strings.ToUpper(tenant), g, r, strings.Join(terms, " or "))
				fmt.Fprintf(&b, "        labels: {tenant: %s, severity: %s}\n", tenant, []string{"warning", "critical", "info"}[r])
				fmt.Fprintf(&b, "        annotations: {summary: 'Alert %d of group %d of tenant %s on {{ $labels.instance }}', runbook: 'https://runbooks.example.com/%s/%d/%d'}\n", r, g, tenant, tenant, g, r)
			}
			fmt.Fprintf(&b, "      - alert: %sQuiet%d\n        expr: vector(1) < 0\n        for: 5m\n        labels: {tenant: %s}\n", strings.ToUpper(tenant), g, tenant)
			fmt.Fprintf(&b, "      - record: tenant:up:sum%d\n        expr: sum(up{tenant=\"%s\"})\n        labels: {tenant: %s}\n", g, tenant, tenant)
		}
	}
	return b.String()
}

// firingAlerts is the number of alerts the rules make, of all tenants.
const firingAlerts = numTenants * groupsPerTenant * 3 * alertsPerRule

// makeTSDB writes the data as OpenMetrics and backfills it into dir/tsdb
// with promtool.
func makeTSDB(promtool, dir string) (string, error) {
	om := filepath.Join(dir, "data.om")
	if err := dataset().WriteOpenMetricsFile(om); err != nil {
		return "", err
	}
	tsdb := filepath.Join(dir, "tsdb")
	if err := testenv.Backfill(promtool, om, tsdb); err != nil {
		return "", err
	}
	_ = os.Remove(om)
	return tsdb, nil
}
