package prometheus

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	prw "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// otlpFuzzSettings are the upstream settings the fuzzer picks from.
var otlpFuzzSettings = [][2]string{
	{"", ""},
	{"  translation_strategy: NoUTF8EscapingWithSuffixes\n  promote_all_resource_attributes: true\n  ignore_resource_attributes: [secret]\n", "type-and-unit-labels"},
	{"  translation_strategy: NoTranslation\n  promote_resource_attributes: [team]\n  convert_histograms_to_nhcb: true\n  promote_scope_metadata: true\n", "otlp-deltatocumulative"},
	{"  translation_strategy: UnderscoreEscapingWithoutSuffixes\n  keep_identifying_resource_attributes: true\n  label_name_underscore_sanitization: true\n", "otlp-native-delta-ingestion"},
}

// seriesRecorder keeps every series the translator makes.
type seriesRecorder struct{ series []labels.Labels }

func (r *seriesRecorder) Append(_ storage.SeriesRef, ls labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	r.series = append(r.series, ls)
	return 0, nil
}
func (*seriesRecorder) Commit() error   { return nil }
func (*seriesRecorder) Rollback() error { return nil }

// FuzzOTLP: reading, decoding, translating and checking an OTLP body never
// panics, refuses with 400, 403 or 413 only, and what it accepts
// translates, all of it, into series the policy allows within the limits.
func FuzzOTLP(f *testing.F) {
	md := otlpExport(
		otlpResource{map[string]string{"service.name": "app-a", "host.name": "h", "team": "a"}, []otlpMetric{
			{name: "http.server.requests", kind: "counter", attrs: map[string]string{"http.method": "GET"}},
			{name: "http.server.request.duration", unit: "s", kind: "histogram"},
			{name: "d", kind: "delta"},
		}},
		otlpResource{map[string]string{"service.name": "app-b"}, []otlpMetric{{name: "rpc.latency", unit: "ms", kind: "summary"}}},
	)
	f.Add(otlpProto(f, md), false, false, uint8(0))
	f.Add(otlpJSON(f, md), true, false, uint8(1))
	f.Add(gzipped(f, otlpProto(f, md)), false, true, uint8(2))
	f.Add(gzipped(f, otlpJSON(f, md)), true, true, uint8(3))
	ok := otlpExport(otlpResource{map[string]string{"service.name": "app-a", "host.name": "h"}, []otlpMetric{
		{name: "http.server.requests", kind: "counter", attrs: map[string]string{"http.method": "GET"}},
		{name: "http.server.request.duration", unit: "s", kind: "histogram"},
		{name: "g", kind: "gauge"},
	}})
	for mode := range uint8(4) {
		f.Add(otlpProto(f, ok), false, false, mode)
		f.Add(otlpJSON(f, ok), true, false, mode)
	}

	lim := WriteLimits{MaxDecodedBytes: 1 << 20, MaxSeries: 50, MaxLabelsPerSeries: 12, MaxLabelNameLength: 40, MaxLabelValueLength: 64}.withDefaults()
	var trs []*otlpTranslation
	for _, s := range otlpFuzzSettings {
		tr, err := parseOTLPSettings([]byte(statusConfig(s[0])), []byte(statusFlags(s[1])))
		if err != nil {
			f.Fatal(err)
		}
		trs = append(trs, tr)
	}
	f.Fuzz(func(t *testing.T, body []byte, json, gz bool, mode uint8) {
		enf := enforcer(t, `{job="app-a"}`, `{team="a", __name__!="target_info"}`)
		raw := body
		if gz {
			var err error
			if raw, err = decodeGzip(body, lim.MaxDecodedBytes); err != nil {
				if s := statusOf(err); s != 400 && s != 413 {
					t.Fatalf("gzip: status %d: %v", s, err)
				}
				return
			}
		}
		md, err := decodeOTLP(raw, json)
		if err != nil {
			if s := statusOf(err); s != 400 {
				t.Fatalf("decode: status %d: %v", s, err)
			}
			return
		}
		tr := trs[int(mode)%len(trs)]
		err = checkOTLP(context.Background(), md, tr, enf, lim)
		if err != nil {
			if s := statusOf(err); s != 400 && s != 403 && s != 413 {
				t.Fatalf("check: status %d: %v", s, err)
			}
			return
		}
		// Accepted: the series the upstream would write, translated anew
		// (checkOTLP may have changed md only as the upstream would).
		rec := &seriesRecorder{}
		if _, err := prw.NewPrometheusConverter(rec).FromMetrics(context.Background(), md, tr.settings); err != nil {
			t.Fatalf("accepted, yet the translation fails: %v", err)
		}
		seen := map[string]bool{}
		for _, ls := range rec.series {
			seen[ls.String()] = true
			if !enf.Allows(ls) {
				t.Fatalf("accepted a series outside the policy: %s", ls)
			}
			if ls.Len() > lim.MaxLabelsPerSeries {
				t.Fatalf("accepted a series of %d labels", ls.Len())
			}
			ls.Range(func(l labels.Label) {
				if len(l.Name) > lim.MaxLabelNameLength || len(l.Value) > lim.MaxLabelValueLength {
					t.Fatalf("accepted a label over the limits: %q=%q", l.Name, l.Value)
				}
			})
		}
		if len(seen) > lim.MaxSeries {
			t.Fatalf("accepted %d series", len(seen))
		}
	})
}

// BenchmarkOTLPCheck: decoding, translating and checking a realistic
// export (500 series, 2,000 samples: counters with 3 attributes, and
// histograms of 10 buckets, each bucket a series) as protobuf.
func BenchmarkOTLPCheck(b *testing.B) {
	var metrics []otlpMetric
	// 300 counter series + 20 histograms (10 bucket series with +Inf, sum,
	// count: 13 series each, 260) ≈ 560 series.
	for i := range 300 {
		metrics = append(metrics, otlpMetric{name: "bench.requests", kind: "counter",
			attrs: map[string]string{"route": "/r" + string(rune('a'+i%26)), "code": string(rune('0' + i/26%10)), "method": "GET" + string(rune('a'+i/260))}})
	}
	md := otlpExport(otlpResource{map[string]string{"service.name": "app-a", "service.instance.id": "i-1", "host.name": "h"}, metrics})
	hs := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := range 20 {
		m := hs.AppendEmpty()
		m.SetName("bench.duration")
		m.SetUnit("s")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := h.DataPoints().AppendEmpty()
		dp.SetTimestamp(md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints().At(0).Timestamp())
		dp.Attributes().PutStr("route", "/h"+string(rune('a'+i)))
		dp.ExplicitBounds().FromRaw([]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5})
		dp.BucketCounts().FromRaw([]uint64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
		dp.SetCount(10)
		dp.SetSum(3)
	}
	body := otlpProto(b, md)
	tr, err := parseOTLPSettings([]byte(statusConfig("")), []byte(statusFlags("")))
	if err != nil {
		b.Fatal(err)
	}
	enf := enforcer(&testing.T{}, `{job="app-a"}`)
	lim := WriteLimits{}.withDefaults()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		md, err := decodeOTLP(body, false)
		if err != nil {
			b.Fatal(err)
		}
		if err := checkOTLP(context.Background(), md, tr, enf, lim); err != nil {
			b.Fatal(err)
		}
	}
}
