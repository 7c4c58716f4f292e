package prometheus

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// Benchmarks of promgate's own work on a request (make bench measures it
// against the real servers): canonicalising the parameters, and filtering
// the answers of /api/v1/alerts, /rules and /targets as Prometheus 2.42
// writes them.

// benchAlert is an alert as Prometheus writes it.
func benchAlert(tenant string, g, r, i int) string {
	return fmt.Sprintf(`{"labels":{"alertname":"%sAlert%d_%d","instance":"%s-host-%02d:9100","severity":"warning","tenant":"%s"},"annotations":{"runbook":"https://runbooks.example.com/%s/%d/%d","summary":"Alert %d of group %d of tenant %s on %s-host-%02d:9100"},"state":"firing","activeAt":"2026-11-22T01:43:52.126870489Z","value":"1e+00"}`,
		tenant, g, r, tenant, i, tenant, tenant, g, r, r, g, tenant, tenant, i)
}

// benchRules is /api/v1/rules' data for tenants t0..t(n-1): four groups
// each, of three alerting rules with four alerts, a quiet rule and a
// recording rule (what make bench loads).
func benchRules(tenants int) []byte {
	var groups []string
	for t := range tenants {
		tenant := fmt.Sprintf("t%d", t)
		for g := range 4 {
			var rules []string
			for r := range 3 {
				var alerts []string
				for i := range 4 {
					alerts = append(alerts, benchAlert(tenant, g, r, i))
				}
				rules = append(rules, fmt.Sprintf(`{"state":"firing","name":"%sAlert%d_%d","query":"label_replace(vector(1), \"instance\", \"%s-host-00:9100\", \"\", \"\") or label_replace(vector(1), \"instance\", \"%s-host-01:9100\", \"\", \"\")","duration":0,"keepFiringFor":0,"labels":{"severity":"warning","tenant":"%s"},"annotations":{"runbook":"https://runbooks.example.com","summary":"Alert on {{ $labels.instance }}"},"alerts":[%s],"health":"ok","evaluationTime":0.000335,"lastEvaluation":"2026-11-22T01:44:52.126Z","type":"alerting"}`,
					tenant, g, r, tenant, tenant, tenant, strings.Join(alerts, ",")))
			}
			rules = append(rules, fmt.Sprintf(`{"state":"inactive","name":"Quiet%d","query":"vector(1) < 0","duration":300,"keepFiringFor":0,"labels":{"tenant":"%s"},"annotations":{},"alerts":[],"health":"ok","evaluationTime":0.0001,"lastEvaluation":"2026-11-22T01:44:52.126Z","type":"alerting"}`, g, tenant))
			rules = append(rules, fmt.Sprintf(`{"name":"tenant:up:sum%d","query":"sum(up{tenant=\"%s\"})","labels":{"tenant":"%s"},"health":"ok","evaluationTime":0.0001,"lastEvaluation":"2026-11-22T01:44:52.126Z","type":"recording"}`, g, tenant, tenant))
			groups = append(groups, fmt.Sprintf(`{"name":"%s-group-%d","file":"/etc/prometheus/rules.yml","rules":[%s],"interval":15,"limit":0,"evaluationTime":0.001,"lastEvaluation":"2026-11-22T01:44:52.126Z"}`, tenant, g, strings.Join(rules, ",")))
		}
	}
	return []byte(`{"groups":[` + strings.Join(groups, ",") + `]}`)
}

func benchAlerts(tenants int) []byte {
	var alerts []string
	for t := range tenants {
		for g := range 4 {
			for r := range 3 {
				for i := range 4 {
					alerts = append(alerts, benchAlert(fmt.Sprintf("t%d", t), g, r, i))
				}
			}
		}
	}
	return []byte(`{"alerts":[` + strings.Join(alerts, ",") + `]}`)
}

func benchTargets(tenants, perTenant int) []byte {
	var active, dropped []string
	for t := range tenants {
		for i := range perTenant {
			lbls := fmt.Sprintf(`{"instance":"t%d-host-%02d:9100","job":"node","tenant":"t%d"}`, t, i, t)
			active = append(active, fmt.Sprintf(`{"discoveredLabels":{"__address__":"t%d-host-%02d:9100","__metrics_path__":"/metrics","__scheme__":"http","job":"node","tenant":"t%d"},"labels":%s,"scrapePool":"node","scrapeUrl":"http://t%d-host-%02d:9100/metrics","globalUrl":"http://t%d-host-%02d:9100/metrics","lastError":"","lastScrape":"2026-11-22T01:44:52.126Z","lastScrapeDuration":0.0123,"health":"up","scrapeInterval":"15s","scrapeTimeout":"10s"}`,
				t, i, t, lbls, t, i, t, i))
			dropped = append(dropped, fmt.Sprintf(`{"discoveredLabels":{"__address__":"t%d-host-%02d:9200","job":"other","tenant":"t%d"}}`, t, i, t))
		}
	}
	return []byte(`{"activeTargets":[` + strings.Join(active, ",") + `],"droppedTargets":[` + strings.Join(dropped, ",") + `]}`)
}

func benchFilter(b *testing.B, data []byte, filter func(out, data []byte) ([]byte, error)) {
	b.Helper()
	out, err := filter(nil, data)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(data)), "in-bytes")
	b.ReportMetric(float64(len(out)), "out-bytes")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	buf := make([]byte, 0, len(data))
	for b.Loop() {
		if _, err := filter(buf[:0], data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFilterRules(b *testing.B) {
	e := enforcer(&testing.T{}, `{tenant="t0"}`)
	data := benchRules(4)
	b.Run("bytes", func(b *testing.B) {
		benchFilter(b, data, func(out, d []byte) ([]byte, error) {
			out, _, err := filterRulesData(out, d, e.VisibleFunc, nil)
			return out, err
		})
	})
	b.Run("reference", func(b *testing.B) {
		benchFilter(b, data, func(_, d []byte) ([]byte, error) { return oldRulesData(d, e.Visible) })
	})
}

func BenchmarkFilterAlerts(b *testing.B) {
	e := enforcer(&testing.T{}, `{tenant="t0"}`)
	data := benchAlerts(4)
	b.Run("bytes", func(b *testing.B) {
		benchFilter(b, data, func(out, d []byte) ([]byte, error) {
			out, _, err := filterAlertsData(out, d, e.VisibleFunc)
			return out, err
		})
	})
	b.Run("reference", func(b *testing.B) {
		benchFilter(b, data, func(_, d []byte) ([]byte, error) { return oldAlertsData(d, e.Visible) })
	})
}

func BenchmarkFilterTargets(b *testing.B) {
	e := enforcer(&testing.T{}, `{tenant="t0"}`)
	data := benchTargets(4, 32)
	b.Run("bytes", func(b *testing.B) {
		benchFilter(b, data, func(out, d []byte) ([]byte, error) {
			out, _, err := filterTargetsData(out, d, e.VisibleFunc)
			return out, err
		})
	})
	b.Run("reference", func(b *testing.B) {
		benchFilter(b, data, func(_, d []byte) ([]byte, error) { return oldTargetsData(d, e.Visible) })
	})
}

// BenchmarkCanonicalise is readForm and rebuild: the parameters read once
// from the URL and the body, then the request to send upstream.
func BenchmarkCanonicalise(b *testing.B) {
	q := url.Values{"query": {`sum by (instance) (rate(http_requests_total{handler="/api/v1/query"}[5m]))`},
		"start": {"1699995600"}, "end": {"1699999200"}, "step": {"15"}}.Encode()
	for _, method := range []string{"GET", "POST"} {
		b.Run(method, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r *http.Request
				if method == "GET" {
					r = httptest.NewRequest("GET", "/api/v1/query_range?"+q, nil)
				} else {
					r = httptest.NewRequest("POST", "/api/v1/query_range", strings.NewReader(q))
					r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				r.Header.Set("Accept-Encoding", "gzip")
				vs, err := readForm(r, rangeParams, DefaultMaxBodyBytes)
				if err != nil {
					b.Fatal(err)
				}
				out := rebuild(r, "/api/v1/query_range", vs)
				if out.Method == "POST" {
					_, _ = io.Copy(io.Discard, out.Body)
				}
			}
		})
	}
}

// nullUpstream answers every request with the same body, for benchmarks of
// the whole handler without the network.
type nullUpstream struct{ body []byte }

func (u nullUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(u.body)
}

func (u nullUpstream) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (u nullUpstream) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

// BenchmarkHandle runs API.Handle for a restricted tenant: parameters
// read, query rewritten (the rewrite cached after the first request, as for
// a dashboard refreshing), request rebuilt; the upstream answers at once.
func BenchmarkHandle(b *testing.B) {
	e := enforcer(&testing.T{}, `{tenant="t0"}`)
	small := nullUpstream{[]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`)}
	for _, tc := range []struct {
		name, target string
		up           nullUpstream
	}{
		{"query", "/api/v1/query?query=up&time=1699999200", small},
		{"query_range", "/api/v1/query_range?" + url.Values{"query": {`sum by (instance) (rate(http_requests_total[5m]))`}, "start": {"1699995600"}, "end": {"1699999200"}, "step": {"15"}}.Encode(), small},
		{"series", "/api/v1/series?match[]=http_requests_total&start=1699999000&end=1699999200", small},
		{"rules", "/api/v1/rules", nullUpstream{append(append([]byte(`{"status":"success","data":`), benchRules(4)...), '}')}},
		{"alerts", "/api/v1/alerts", nullUpstream{append(append([]byte(`{"status":"success","data":`), benchAlerts(4)...), '}')}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			api := New(tc.up, Options{})
			path := tc.target
			if i := strings.IndexByte(path, '?'); i >= 0 {
				path = path[:i]
			}
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("GET", tc.target, nil)
				w := httptest.NewRecorder()
				api.Handle(w, r, path, e)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
