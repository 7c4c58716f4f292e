package prometheus

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/promgate/promgate/internal/apierror"
)

// otlpResource is one resource of a test export: its attributes and its
// metrics.
type otlpResource struct {
	attrs   map[string]string
	metrics []otlpMetric
}

// otlpMetric is one metric with one data point.
type otlpMetric struct {
	name, unit string
	kind       string // gauge, counter, delta, histogram, summary
	attrs      map[string]string
}

func otlpExport(rs ...otlpResource) pmetric.Metrics {
	md := pmetric.NewMetrics()
	now := pcommon.NewTimestampFromTime(time.Unix(1_700_000_000, 0))
	for _, r := range rs {
		rm := md.ResourceMetrics().AppendEmpty()
		for k, v := range r.attrs {
			rm.Resource().Attributes().PutStr(k, v)
		}
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName("test-lib")
		for _, m := range r.metrics {
			om := sm.Metrics().AppendEmpty()
			om.SetName(m.name)
			om.SetUnit(m.unit)
			var attrs pcommon.Map
			switch m.kind {
			case "gauge":
				dp := om.SetEmptyGauge().DataPoints().AppendEmpty()
				dp.SetTimestamp(now)
				dp.SetDoubleValue(1)
				attrs = dp.Attributes()
			case "counter", "delta":
				s := om.SetEmptySum()
				s.SetIsMonotonic(true)
				s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
				if m.kind == "delta" {
					s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
				}
				dp := s.DataPoints().AppendEmpty()
				dp.SetTimestamp(now)
				dp.SetIntValue(3)
				attrs = dp.Attributes()
			case "histogram":
				h := om.SetEmptyHistogram()
				h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
				dp := h.DataPoints().AppendEmpty()
				dp.SetTimestamp(now)
				dp.SetCount(2)
				dp.SetSum(1.5)
				dp.ExplicitBounds().FromRaw([]float64{1})
				dp.BucketCounts().FromRaw([]uint64{1, 1})
				attrs = dp.Attributes()
			case "summary":
				dp := om.SetEmptySummary().DataPoints().AppendEmpty()
				dp.SetTimestamp(now)
				dp.SetCount(1)
				dp.SetSum(1)
				attrs = dp.Attributes()
			default:
				panic(m.kind)
			}
			for k, v := range m.attrs {
				attrs.PutStr(k, v)
			}
		}
	}
	return md
}

func otlpProto(t testing.TB, md pmetric.Metrics) []byte {
	t.Helper()
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func otlpJSON(t testing.TB, md pmetric.Metrics) []byte {
	t.Helper()
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// statusConfig is the data of /api/v1/status/config for an otlp: block.
func statusConfig(otlpYAML string) string {
	y := "global:\n  scrape_interval: 1m\n"
	if otlpYAML != "" {
		y += "otlp:\n" + otlpYAML
	}
	b, _ := json.Marshal(map[string]string{"yaml": y})
	return string(b)
}

func statusFlags(features string) string {
	b, _ := json.Marshal(map[string]string{"enable-feature": features, "web.enable-otlp-receiver": "true"})
	return string(b)
}

func translation(t *testing.T, otlpYAML, features string) *otlpTranslation {
	t.Helper()
	tr, err := parseOTLPSettings([]byte(statusConfig(otlpYAML)), []byte(statusFlags(features)))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestParseOTLPSettings(t *testing.T) {
	for _, tc := range []struct {
		name, otlp, features string
		check                func(t *testing.T, tr *otlpTranslation)
	}{
		{name: "defaults", check: func(t *testing.T, tr *otlpTranslation) {
			s := tr.settings
			if !s.AddMetricSuffixes || s.AllowUTF8 || s.ConvertHistogramsToNHCB || s.PromoteScopeMetadata || s.AllowDeltaTemporality || s.EnableTypeAndUnitLabels || tr.convertDelta {
				t.Errorf("settings %+v, want Prometheus' defaults (underscore escaping with suffixes)", s)
			}
		}},
		{name: "UTF-8 kept", otlp: "  translation_strategy: NoUTF8EscapingWithSuffixes\n", check: func(t *testing.T, tr *otlpTranslation) {
			if !tr.settings.AllowUTF8 || !tr.settings.AddMetricSuffixes {
				t.Errorf("settings %+v", tr.settings)
			}
		}},
		{name: "no translation", otlp: "  translation_strategy: NoTranslation\n", check: func(t *testing.T, tr *otlpTranslation) {
			if !tr.settings.AllowUTF8 || tr.settings.AddMetricSuffixes {
				t.Errorf("settings %+v", tr.settings)
			}
		}},
		{name: "every setting", otlp: "  translation_strategy: UnderscoreEscapingWithoutSuffixes\n  promote_all_resource_attributes: true\n  ignore_resource_attributes: [secret]\n" +
			"  keep_identifying_resource_attributes: true\n  convert_histograms_to_nhcb: true\n  promote_scope_metadata: true\n" +
			"  label_name_underscore_sanitization: true\n  label_name_preserve_multiple_underscores: true\n",
			check: func(t *testing.T, tr *otlpTranslation) {
				s := tr.settings
				if s.AddMetricSuffixes || s.AllowUTF8 || !s.KeepIdentifyingResourceAttributes || !s.ConvertHistogramsToNHCB || !s.PromoteScopeMetadata ||
					!s.LabelNameUnderscoreSanitization || !s.LabelNamePreserveMultipleUnderscores || !tr.cfg.PromoteAllResourceAttributes ||
					len(tr.cfg.IgnoreResourceAttributes) != 1 {
					t.Errorf("settings %+v (%+v)", s, tr.cfg)
				}
			}},
		{name: "feature flags", features: "otlp-deltatocumulative,type-and-unit-labels", check: func(t *testing.T, tr *otlpTranslation) {
			if !tr.convertDelta || !tr.settings.EnableTypeAndUnitLabels || tr.settings.AllowDeltaTemporality {
				t.Errorf("convertDelta %v, settings %+v", tr.convertDelta, tr.settings)
			}
		}},
		{name: "native delta", features: "exemplar-storage,otlp-native-delta-ingestion", check: func(t *testing.T, tr *otlpTranslation) {
			if tr.convertDelta || !tr.settings.AllowDeltaTemporality {
				t.Errorf("convertDelta %v, settings %+v", tr.convertDelta, tr.settings)
			}
		}},
		// Prometheus splits on commas only: " type-and-unit-labels" is
		// a feature it does not know.
		{name: "feature names as Prometheus reads them", features: "exemplar-storage, type-and-unit-labels", check: func(t *testing.T, tr *otlpTranslation) {
			if tr.settings.EnableTypeAndUnitLabels {
				t.Errorf("settings %+v", tr.settings)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, translation(t, tc.otlp, tc.features)) })
	}
	for _, bad := range [][2]string{
		{`{"yaml": "otlp: ["}`, statusFlags("")},
		{statusConfig("  translation_strategy: Bogus\n  promote_all_resource_attributes: true\n  promote_resource_attributes: [a]\n"), statusFlags("")},
		{`[]`, statusFlags("")},
		{statusConfig(""), `"x"`},
	} {
		if _, err := parseOTLPSettings([]byte(bad[0]), []byte(bad[1])); err == nil {
			t.Errorf("%s %s: no error", bad[0], bad[1])
		}
	}
}

func statusOf(err error) int {
	var ae *apierror.Error
	if errors.As(err, &ae) {
		return ae.Status()
	}
	return -1
}

func TestCheckOTLP(t *testing.T) {
	svc := func(name string, more ...string) map[string]string {
		m := map[string]string{"service.name": name}
		for i := 0; i+1 < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		return m
	}
	requests := otlpMetric{name: "http.server.requests", kind: "counter", attrs: map[string]string{"http.method": "GET"}}
	duration := otlpMetric{name: "http.server.request.duration", unit: "s", kind: "histogram"}
	for _, tc := range []struct {
		name           string
		otlp, features string
		policy         []string
		lim            WriteLimits
		md             pmetric.Metrics
		status         int    // 0: allowed
		want           string // in the error
	}{
		{name: "job from service.name", policy: []string{`{job="app-a"}`},
			md: otlpExport(otlpResource{svc("app-a"), []otlpMetric{requests, duration}})},
		{name: "another tenant's service", policy: []string{`{job="app-a"}`},
			md:     otlpExport(otlpResource{svc("app-b"), []otlpMetric{requests}}),
			status: 403, want: `job="app-b"`},
		{name: "one resource of two outside", policy: []string{`{job="app-a"}`},
			md:     otlpExport(otlpResource{svc("app-a"), []otlpMetric{requests}}, otlpResource{svc("app-b"), []otlpMetric{duration}}),
			status: 403, want: `job="app-b"`},
		{name: "job from service.namespace and service.name", policy: []string{`{job="team-a/app"}`},
			md: otlpExport(otlpResource{svc("app", "service.namespace", "team-a"), []otlpMetric{requests}})},
		{name: "job is not service.name alone when a namespace is set", policy: []string{`{job="app"}`},
			md:     otlpExport(otlpResource{svc("app", "service.namespace", "team-b"), []otlpMetric{requests}}),
			status: 403, want: `job="team-b/app"`},
		{name: "instance from service.instance.id", policy: []string{`{job="app-a", instance="i-1"}`},
			md: otlpExport(otlpResource{svc("app-a", "service.instance.id", "i-1"), []otlpMetric{requests}})},
		{name: "instance of another", policy: []string{`{job="app-a", instance="i-1"}`},
			md:     otlpExport(otlpResource{svc("app-a", "service.instance.id", "i-2"), []otlpMetric{requests}}),
			status: 403, want: `instance="i-2"`},
		// The policy is on a resource attribute: it is a label only when
		// the upstream promotes it.
		{name: "promoted resource attribute", otlp: "  promote_resource_attributes: [team]\n", policy: []string{`{team="a"}`},
			md: otlpExport(otlpResource{svc("app", "team", "a"), []otlpMetric{requests, duration}})},
		{name: "resource attribute not promoted", policy: []string{`{team="a"}`},
			md:     otlpExport(otlpResource{svc("app", "team", "a"), []otlpMetric{requests}}),
			status: 403, want: `http_server_requests_total`},
		{name: "all promoted", otlp: "  promote_all_resource_attributes: true\n", policy: []string{`{team="a"}`},
			md: otlpExport(otlpResource{svc("app", "team", "a"), []otlpMetric{requests}})},
		{name: "all promoted but the one ignored", otlp: "  promote_all_resource_attributes: true\n  ignore_resource_attributes: [team]\n", policy: []string{`{team="a"}`},
			md:     otlpExport(otlpResource{svc("app", "team", "a"), []otlpMetric{requests}}),
			status: 403, want: `http_server_requests_total`},
		{name: "a data point's own attribute", policy: []string{`{job="app", team="a"}`},
			md: otlpExport(otlpResource{svc("app"), []otlpMetric{{name: "x", kind: "gauge", attrs: map[string]string{"team": "a"}}}})},
		// A resource attribute other than the service's makes target_info,
		// which has no team label.
		{name: "target_info", policy: []string{`{job="app", team="a"}`},
			md:     otlpExport(otlpResource{svc("app", "host.name", "h1"), []otlpMetric{{name: "x", kind: "gauge", attrs: map[string]string{"team": "a"}}}}),
			status: 403, want: `{__name__="target_info", host_name="h1", job="app"}`},
		{name: "target_info allowed", policy: []string{`{job="app"}`},
			md: otlpExport(otlpResource{svc("app", "host.name", "h1"), []otlpMetric{{name: "x", kind: "gauge"}}})},
		// Metric names as the upstream's translation strategy makes them.
		{name: "escaped names with suffixes", policy: []string{`{__name__=~"http_server_.*|target_info"}`},
			md: otlpExport(otlpResource{svc("app"), []otlpMetric{requests, duration}})},
		{name: "escaped name with a unit suffix", policy: []string{`{__name__=~"http_server_request_duration_(bucket|sum|count)|target_info"}`},
			md:     otlpExport(otlpResource{svc("app"), []otlpMetric{duration}}),
			status: 403, want: `http_server_request_duration_seconds_`},
		{name: "UTF-8 names kept", otlp: "  translation_strategy: NoUTF8EscapingWithSuffixes\n", policy: []string{`{__name__=~"http_server_.*|target_info"}`},
			md:     otlpExport(otlpResource{svc("app"), []otlpMetric{requests}}),
			status: 403, want: `http.server.requests_total`},
		{name: "no translation", otlp: "  translation_strategy: NoTranslation\n", policy: []string{`{__name__=~"http[.]server[.]requests|target_info"}`},
			md: otlpExport(otlpResource{svc("app"), []otlpMetric{requests}})},
		{name: "native histograms from classic", otlp: "  convert_histograms_to_nhcb: true\n", policy: []string{`{__name__!~".*_bucket"}`},
			md: otlpExport(otlpResource{svc("app"), []otlpMetric{duration}})},
		{name: "classic histogram buckets", policy: []string{`{__name__!~".*_bucket"}`},
			md:     otlpExport(otlpResource{svc("app"), []otlpMetric{duration}}),
			status: 403, want: `_bucket`},
		{name: "scope labels promoted", otlp: "  promote_scope_metadata: true\n", policy: []string{`{otel_scope_name="test-lib"}`, `{__name__="target_info"}`},
			md: otlpExport(otlpResource{svc("app"), []otlpMetric{requests}})},
		{name: "scope labels not promoted", policy: []string{`{otel_scope_name="test-lib"}`, `{__name__="target_info"}`},
			md:     otlpExport(otlpResource{svc("app"), []otlpMetric{requests}}),
			status: 403, want: `http_server_requests_total`},
		{name: "type and unit labels", features: "type-and-unit-labels", policy: []string{`{__type__="counter"}`, `{__name__="target_info"}`},
			md: otlpExport(otlpResource{svc("app"), []otlpMetric{requests}})},
		// Deltas: refused by the upstream without a feature, and then by
		// promgate; checked as cumulative when the upstream converts them.
		{name: "delta refused by the upstream", policy: []string{`{job="app"}`},
			md:     otlpExport(otlpResource{svc("app"), []otlpMetric{{name: "d", kind: "delta"}}}),
			status: 400, want: "temporality"},
		{name: "delta converted", features: "otlp-deltatocumulative", policy: []string{`{job="app"}`},
			md: otlpExport(otlpResource{svc("app"), []otlpMetric{{name: "d", kind: "delta"}}})},
		{name: "delta converted, outside", features: "otlp-deltatocumulative", policy: []string{`{job="app"}`},
			md:     otlpExport(otlpResource{svc("other"), []otlpMetric{{name: "d", kind: "delta"}}}),
			status: 403, want: `d_total`},
		{name: "native delta, outside", features: "otlp-native-delta-ingestion", policy: []string{`{job="app"}`},
			md:     otlpExport(otlpResource{svc("other"), []otlpMetric{{name: "d", kind: "delta"}}}),
			status: 403, want: `job="other"`},
		// Limits, on the translated series.
		{name: "series per request", policy: []string{`{job="app"}`}, lim: WriteLimits{MaxSeries: 4},
			md:     otlpExport(otlpResource{svc("app"), []otlpMetric{requests, duration}}), // 1 + 4 (two buckets, sum, count)
			status: 413, want: "more than 4 series"},
		{name: "series per request, at the limit", policy: []string{`{job="app"}`}, lim: WriteLimits{MaxSeries: 5},
			md: otlpExport(otlpResource{svc("app"), []otlpMetric{requests, duration}})},
		{name: "labels per series", policy: []string{`{job="app"}`}, lim: WriteLimits{MaxLabelsPerSeries: 2},
			md:     otlpExport(otlpResource{svc("app"), []otlpMetric{requests}}), // __name__, job, http_method
			status: 400, want: "3 labels, more than 2"},
		{name: "labels per series, at the limit", policy: []string{`{job="app"}`}, lim: WriteLimits{MaxLabelsPerSeries: 3},
			md: otlpExport(otlpResource{svc("app"), []otlpMetric{requests}})},
		{name: "label value length", policy: []string{`{job=~"app.*"}`}, lim: WriteLimits{MaxLabelValueLength: 19},
			md:     otlpExport(otlpResource{svc("app-with-a-long-name"), []otlpMetric{{name: "g", kind: "gauge"}}}),
			status: 400, want: `label "job"`},
		{name: "label name length", policy: []string{`{job="app"}`}, lim: WriteLimits{MaxLabelNameLength: 12},
			md:     otlpExport(otlpResource{svc("app"), []otlpMetric{{name: "g", kind: "gauge", attrs: map[string]string{"a.very.long.attribute": "x"}}}}),
			status: 400, want: "label name of 21 bytes"},
		{name: "summary", policy: []string{`{job="app"}`},
			md: otlpExport(otlpResource{svc("app"), []otlpMetric{{name: "rpc.latency", unit: "ms", kind: "summary"}}})},
		// target_info spans a client-chosen time range: checked in a few
		// steps, not one per 2.5 minutes since 1970.
		{name: "target_info over centuries", policy: []string{`{job="app"}`}, md: func() pmetric.Metrics {
			md := otlpExport(otlpResource{svc("app", "host.name", "h1"), []otlpMetric{{name: "g", kind: "gauge"}, {name: "h", kind: "gauge"}}})
			ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
			ms.At(0).Gauge().DataPoints().At(0).SetTimestamp(1)
			ms.At(1).Gauge().DataPoints().At(0).SetTimestamp(1<<63 - 1)
			return md
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := translation(t, tc.otlp, tc.features)
			err := checkOTLP(context.Background(), tc.md, tr, enforcer(t, tc.policy...), tc.lim.withDefaults())
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if statusOf(err) != tc.status || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v (status %d), want status %d mentioning %s", err, statusOf(err), tc.status, tc.want)
			}
		})
	}
}

// otlpUpstream answers what promgate asks a Prometheus 3.16 with the given
// otlp: block and features, and 200 on the OTLP receiver.
func otlpUpstream(version, otlpYAML, features string) *paths {
	return &paths{answers: map[string]string{
		"/api/v1/status/buildinfo": success(`{"version":"` + version + `"}`),
		"/api/v1/status/config":    success(statusConfig(otlpYAML)),
		"/api/v1/status/flags":     success(statusFlags(features)),
		otlpPath:                   "",
	}}
}

func (u *paths) count(path string) int {
	n := 0
	for _, p := range u.asked {
		if p == path {
			n++
		}
	}
	return n
}

// otlpReceiver is an upstream that keeps what the OTLP receiver was sent.
type otlpReceiver struct {
	*paths
	body   []byte
	header http.Header
}

func (u *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == otlpPath {
		u.body, _ = io.ReadAll(r.Body)
		u.header = r.Header.Clone()
	}
	u.paths.ServeHTTP(w, r)
}

func (u *otlpReceiver) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func postOTLP(api *API, pol []string, t *testing.T, body []byte, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", otlpPath, bytes.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	api.Handle(rec, req, otlpPath, enforcer(t, pol...))
	return rec
}

func TestOTLPWrite(t *testing.T) {
	allowed := otlpExport(otlpResource{map[string]string{"service.name": "app-a"}, []otlpMetric{{name: "requests", kind: "counter"}}})
	other := otlpExport(otlpResource{map[string]string{"service.name": "app-b"}, []otlpMetric{{name: "requests", kind: "counter"}}})
	pol := []string{`{job="app-a"}`}
	pb, js := otlpProto(t, allowed), otlpJSON(t, allowed)
	for _, tc := range []struct {
		name    string
		version string
		body    []byte
		header  []string
		status  int
		want    string // in the error
		sent    []byte // what reaches the receiver (nil: nothing)
		sentEnc string // its Content-Encoding
	}{
		{name: "protobuf", body: pb, header: []string{"Content-Type", otlpProtoType}, status: 200, sent: pb},
		{name: "JSON", body: js, header: []string{"Content-Type", otlpJSONType}, status: 200, sent: js},
		{name: "gzip, forwarded compressed", body: gzipped(t, pb), header: []string{"Content-Type", otlpProtoType, "Content-Encoding", "gzip"},
			status: 200, sent: gzipped(t, pb), sentEnc: "gzip"},
		{name: "identity, the header dropped", body: pb, header: []string{"Content-Type", otlpProtoType, "Content-Encoding", "identity"}, status: 200, sent: pb},
		{name: "another tenant's service", body: otlpProto(t, other), header: []string{"Content-Type", otlpProtoType}, status: 403, want: `job="app-b"`},
		{name: "another tenant's service, JSON and gzip", body: gzipped(t, otlpJSON(t, other)), header: []string{"Content-Type", otlpJSONType, "Content-Encoding", "gzip"},
			status: 403, want: `job="app-b"`},
		{name: "Prometheus 2", version: "2.53.0", body: pb, header: []string{"Content-Type", otlpProtoType}, status: 403, want: "upstream is 2.53"},
		{name: "Prometheus 3.15", version: "3.15.1", body: pb, header: []string{"Content-Type", otlpProtoType}, status: 403, want: "need a Prometheus 3.16"},
		{name: "Prometheus 3.17", version: "3.17.0", body: pb, header: []string{"Content-Type", otlpProtoType}, status: 403, want: "upstream is 3.17"},
		{name: "Prometheus 3.16.2", version: "3.16.2", body: pb, header: []string{"Content-Type", otlpProtoType}, status: 200, sent: pb},
		{name: "Prometheus built without a version", version: "", body: pb, header: []string{"Content-Type", otlpProtoType}, status: 403, want: "without a version"},
		{name: "no Content-Type", body: pb, status: 415, want: "Content-Type"},
		{name: "Content-Type with parameters", body: js, header: []string{"Content-Type", "application/json; charset=utf-8"}, status: 415, want: "application/json"},
		{name: "two Content-Types", body: pb, header: []string{"Content-Type", otlpProtoType, "Content-Type", otlpJSONType}, status: 415, want: "Content-Type"},
		{name: "snappy", body: pb, header: []string{"Content-Type", otlpProtoType, "Content-Encoding", "snappy"}, status: 415, want: "Content-Encoding"},
		{name: "two encodings", body: pb, header: []string{"Content-Type", otlpProtoType, "Content-Encoding", "gzip", "Content-Encoding", "gzip"}, status: 415, want: "Content-Encoding"},
		{name: "not gzip", body: pb, header: []string{"Content-Type", otlpProtoType, "Content-Encoding", "gzip"}, status: 400, want: "gzip"},
		{name: "truncated gzip", body: gzipped(t, pb)[:20], header: []string{"Content-Type", otlpProtoType, "Content-Encoding", "gzip"}, status: 400, want: "gzip"},
		{name: "malformed protobuf", body: []byte("\x0a\xff\xff\xff"), header: []string{"Content-Type", otlpProtoType}, status: 400, want: "invalid OTLP"},
		{name: "malformed JSON", body: []byte(`{"resourceMetrics": [`), header: []string{"Content-Type", otlpJSONType}, status: 400, want: "invalid OTLP"},
		{name: "protobuf sent as JSON", body: pb, header: []string{"Content-Type", otlpJSONType}, status: 400, want: "invalid OTLP"},
		{name: "empty export", body: nil, header: []string{"Content-Type", otlpProtoType}, status: 200, sent: []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version := "3.16.0"
			if tc.version != "" || strings.Contains(tc.name, "without a version") {
				version = tc.version
			}
			up := &otlpReceiver{paths: otlpUpstream(version, "", "")}
			if version == "" {
				up.answers["/api/v1/features"] = success(`{}`)
			}
			rec := postOTLP(New(up, Options{}), pol, t, tc.body, tc.header...)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.sent == nil {
				var env struct{ Status, Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Status != "error" || !strings.Contains(env.Error, tc.want) {
					t.Errorf("answer %s, want an error envelope mentioning %q", rec.Body, tc.want)
				}
				if n := up.count(otlpPath); n != 0 {
					t.Errorf("the refused request reached the receiver")
				}
				return
			}
			if up.count(otlpPath) != 1 || !bytes.Equal(up.body, tc.sent) {
				t.Fatalf("receiver got %d requests, body %q, want %q", up.count(otlpPath), up.body, tc.sent)
			}
			if got := up.header.Get("Content-Encoding"); got != tc.sentEnc {
				t.Errorf("forwarded Content-Encoding %q, want %q", got, tc.sentEnc)
			}
		})
	}
}

// The upstream's settings decide, and are read once for a while.
func TestOTLPWriteUpstreamSettings(t *testing.T) {
	md := otlpExport(otlpResource{map[string]string{"service.name": "app", "team": "a"}, []otlpMetric{{name: "requests", kind: "counter"}}})
	pb := otlpProto(t, md)
	pol := []string{`{team="a"}`}

	up := &otlpReceiver{paths: otlpUpstream("3.16.0", "  promote_resource_attributes: [team]\n", "")}
	api := New(up, Options{})
	for range 3 {
		if rec := postOTLP(api, pol, t, pb, "Content-Type", otlpProtoType); rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	if n := up.count("/api/v1/status/config"); n != 1 {
		t.Errorf("config read %d times for three requests, want once", n)
	}
	// The upstream's configuration changes (a reload dropping the
	// promotion): followed once the settings are older than their TTL.
	up.answers["/api/v1/status/config"] = success(statusConfig(""))
	api.otlp.fetched = time.Now().Add(-otlpSettingsTTL - time.Second)
	if rec := postOTLP(api, pol, t, pb, "Content-Type", otlpProtoType); rec.Code != 403 {
		t.Fatalf("after the upstream's change: status %d: %s", rec.Code, rec.Body)
	}
	if n := up.count("/api/v1/status/config"); n != 2 {
		t.Errorf("config read %d times, want twice", n)
	}
	// The upstream is upgraded to a minor whose translation promgate
	// does not carry: followed as well.
	up.answers["/api/v1/status/buildinfo"] = success(`{"version":"3.17.0"}`)
	md2 := otlpExport(otlpResource{map[string]string{"service.name": "app", "team": "a"}, []otlpMetric{{name: "requests", kind: "counter", attrs: map[string]string{"team": "a"}}}})
	api.otlp.fetched = time.Now().Add(-otlpSettingsTTL - time.Second)
	if rec := postOTLP(api, pol, t, otlpProto(t, md2), "Content-Type", otlpProtoType); rec.Code != 403 || !strings.Contains(rec.Body.String(), "upstream is 3.17.0") {
		t.Fatalf("after an upgrade: status %d: %s", rec.Code, rec.Body)
	}

	// Without the promotion, team is no label of the series.
	up = &otlpReceiver{paths: otlpUpstream("3.16.0", "", "")}
	if rec := postOTLP(New(up, Options{}), pol, t, pb, "Content-Type", otlpProtoType); rec.Code != 403 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}

	// An upstream that does not tell: nothing passes.
	for _, missing := range []string{"/api/v1/status/config", "/api/v1/status/flags", "/api/v1/status/buildinfo"} {
		up = &otlpReceiver{paths: otlpUpstream("3.16.0", "  promote_resource_attributes: [team]\n", "")}
		delete(up.answers, missing)
		rec := postOTLP(New(up, Options{}), pol, t, pb, "Content-Type", otlpProtoType)
		if rec.Code != 503 || up.count(otlpPath) != 0 {
			t.Errorf("without %s: status %d (%s), receiver asked %d times", missing, rec.Code, rec.Body, up.count(otlpPath))
		}
	}
}

func TestReadOTLPBodyLimits(t *testing.T) {
	lim := WriteLimits{MaxBodyBytes: 1 << 10, MaxDecodedBytes: 4 << 10}.withDefaults()
	for _, tc := range []struct {
		name   string
		body   []byte
		gzip   bool
		status int
	}{
		{"plain at the decoded limit", make([]byte, 1<<10), false, 0},
		{"plain over the body limit", make([]byte, 1<<10+1), false, 413},
		{"gzip within both", gzipped(t, make([]byte, 4<<10)), true, 0},
		{"gzip inflating past the decoded limit", gzipped(t, make([]byte, 4<<10+1)), true, 413},
		{"gzip over the body limit", gzipped(t, randomBytes(2<<10)), true, 413},
		{"two gzip members read as one", append(gzipped(t, make([]byte, 3<<10)), gzipped(t, make([]byte, 2<<10))...), true, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", otlpPath, bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", otlpProtoType)
			if tc.gzip {
				req.Header.Set("Content-Encoding", "gzip")
			}
			_, err := readOTLPBody(req, lim)
			if got := statusOf(err); (tc.status == 0 && err != nil) || (tc.status != 0 && got != tc.status) {
				t.Fatalf("error %v (status %d), want status %d", err, got, tc.status)
			}
		})
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// A gzip bomb is refused having inflated no more than the limit: reading
// 64 MiB of zeros (64 KiB sent) with a 1 MiB limit allocates a few MiB.
func TestOTLPGzipBomb(t *testing.T) {
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 64 {
		zw.Write(zeros)
	}
	zw.Close()
	lim := WriteLimits{MaxDecodedBytes: 1 << 20}.withDefaults()
	req := httptest.NewRequest("POST", otlpPath, bytes.NewReader(bomb.Bytes()))
	req.Header.Set("Content-Type", otlpProtoType)
	req.Header.Set("Content-Encoding", "gzip")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readOTLPBody(req, lim)
	runtime.ReadMemStats(&after)
	if statusOf(err) != 413 {
		t.Fatalf("error %v, want 413", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("allocated %d bytes refusing the bomb", alloc)
	}
}
