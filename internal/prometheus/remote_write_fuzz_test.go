package prometheus

import (
	"errors"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// The write decoders meet bodies from anyone with a write credential. The
// fuzz targets hold them to three things: no panic; every refusal is an
// envelope error of 400, 403 or 413; and an accepted request holds no
// series outside the policy, as Prometheus' own decoding (the upstream's)
// reads it.

var fuzzWriteLimits = WriteLimits{MaxSeries: 50, MaxLabelsPerSeries: 10, MaxLabelNameLength: 40, MaxLabelValueLength: 40}.withDefaults()

func fuzzWriteSeeds(f *testing.F) {
	b := newV2()
	s := b.series("__name__", "up", "team", "a")
	s.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: b.st.Symbolize("help")}
	h := b.series("team", "a", "__name__", "rpc_seconds")
	h.Samples, h.Histograms = nil, []writev2.Histogram{intHistogram(1000), floatHistogram(2000)}
	h.Exemplars = []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", "abc"), Value: 1, Timestamp: 1000}}
	f.Add(b.encode(f))
	b = newV2()
	b.series("__name__", "up", "team", "b")
	f.Add(b.encode(f))
	v1 := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("__name__", "up", "team", "a")},
		Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE}}}
	data, _ := v1.Marshal()
	f.Add(data)
	f.Add([]byte{})
}

// checkRefusal fails unless err is nil or an envelope error of a status a
// write is refused with.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var e *apierror.Error
	if !errors.As(err, &e) {
		t.Fatalf("untyped error %v", err)
	}
	switch e.Status() {
	case 400, 403, 413:
	default:
		t.Fatalf("status %d: %v", e.Status(), err)
	}
}

// refCheckV2 is checkWriteV2 over the whole decoding of the request by
// Prometheus' generated code, the reference of its own reading.
func refCheckV2(raw []byte, enf *promql.Enforcer, lim WriteLimits) error {
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil {
		return apierror.New(apierror.BadData, "invalid remote write 2.0 request: %v", err)
	}
	if len(req.XXX_unrecognized) > 0 {
		return apierror.New(apierror.BadData, "unknown fields")
	}
	if n := len(req.Timeseries); n > lim.MaxSeries {
		return apierror.New(apierror.TooLarge, "remote write request has %d series, more than %d", n, lim.MaxSeries)
	}
	d := &v2Decoder{b: labels.NewScratchBuilder(0), eb: labels.NewScratchBuilder(0), uncached: true}
	for i := range req.Timeseries {
		if err := d.check(i, &req.Timeseries[i], req.Symbols, enf, lim); err != nil {
			return err
		}
	}
	return nil
}

func FuzzWriteV2(f *testing.F) {
	fuzzWriteSeeds(f)
	enf := writeEnforcer(f, `{team="a"}`)
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := checkWriteV2(raw, enf, fuzzWriteLimits)
		checkRefusal(t, err)
		// Decoded again (the pooled decoder reused): the same answer.
		if again := checkWriteV2(raw, enf, fuzzWriteLimits); (again == nil) != (err == nil) {
			t.Fatalf("second decoding: %v, first: %v", again, err)
		}
		// The same answer as the whole decoding's.
		if ref := refCheckV2(raw, enf, fuzzWriteLimits); (ref == nil) != (err == nil) {
			t.Fatalf("promgate: %v; over the whole decoding: %v", err, ref)
		}
		var req writev2.Request
		if uerr := req.Unmarshal(raw); uerr != nil {
			if err == nil {
				t.Fatalf("Prometheus cannot decode it (%v), promgate accepted it", uerr)
			}
			return
		}
		if err != nil {
			return
		}
		if len(req.XXX_unrecognized) > 0 {
			t.Fatal("unknown fields accepted")
		}
		b := labels.NewScratchBuilder(0)
		for _, ts := range req.Timeseries {
			ls, lerr := ts.ToLabels(&b, req.Symbols)
			if lerr != nil {
				t.Fatalf("accepted a series Prometheus cannot resolve: %v", lerr)
			}
			if _, dup := ls.HasDuplicateLabelNames(); dup || !enf.Allows(ls) {
				t.Fatalf("accepted series %s", ls)
			}
			if _, merr := ts.ToMetadata(req.Symbols); merr != nil {
				t.Fatalf("accepted metadata Prometheus cannot resolve: %v", merr)
			}
		}
	})
}

// refCheckV1 is checkWriteV1 over the whole decoding of the request by
// Prometheus' generated code, the reference of its own reading.
func refCheckV1(raw []byte, enf *promql.Enforcer, lim WriteLimits) error {
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return apierror.New(apierror.BadData, "invalid remote write request: %v", err)
	}
	if len(req.XXX_unrecognized) > 0 {
		return apierror.New(apierror.BadData, "unknown fields")
	}
	if n := len(req.Timeseries); n > lim.MaxSeries {
		return apierror.New(apierror.TooLarge, "too many series")
	}
	b, eb := labels.NewScratchBuilder(0), labels.NewScratchBuilder(0)
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		if refUnknownV1(ts) {
			return apierror.New(apierror.BadData, "unknown fields")
		}
		b.Reset()
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		b.Sort()
		ls := b.Labels()
		if err := checkSeries(ls, enf, lim); err != nil {
			return err
		}
		for _, e := range ts.Exemplars {
			eb.Reset()
			for _, l := range e.Labels {
				eb.Add(l.Name, l.Value)
			}
			eb.Sort()
			if err := checkExemplarLabels(eb.Labels(), ls, lim); err != nil {
				return err
			}
		}
	}
	for _, md := range req.Metadata {
		if len(md.XXX_unrecognized) > 0 {
			return apierror.New(apierror.BadData, "unknown fields")
		}
		if !allowsFamily(enf, md.MetricFamilyName) {
			return apierror.New(apierror.Forbidden, "metadata outside")
		}
	}
	return nil
}

// refUnknownV1 reports whether a decoded series, or anything in it, has
// fields 1.0 does not define.
func refUnknownV1(ts *prompb.TimeSeries) bool {
	if len(ts.XXX_unrecognized) > 0 {
		return true
	}
	for _, l := range ts.Labels {
		if len(l.XXX_unrecognized) > 0 {
			return true
		}
	}
	for _, s := range ts.Samples {
		if len(s.XXX_unrecognized) > 0 {
			return true
		}
	}
	for _, e := range ts.Exemplars {
		if len(e.XXX_unrecognized) > 0 {
			return true
		}
		for _, l := range e.Labels {
			if len(l.XXX_unrecognized) > 0 {
				return true
			}
		}
	}
	for _, h := range ts.Histograms {
		if len(h.XXX_unrecognized) > 0 || unknownSpans(h.PositiveSpans) || unknownSpans(h.NegativeSpans) {
			return true
		}
	}
	return false
}

func FuzzWriteV1(f *testing.F) {
	fuzzWriteSeeds(f)
	enf := writeEnforcer(f, `{team="a"}`)
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := checkWriteV1(raw, enf, fuzzWriteLimits)
		checkRefusal(t, err)
		if again := checkWriteV1(raw, enf, fuzzWriteLimits); (again == nil) != (err == nil) {
			t.Fatalf("second decoding: %v, first: %v", again, err)
		}
		// The same answer as the whole decoding's.
		if ref := refCheckV1(raw, enf, fuzzWriteLimits); (ref == nil) != (err == nil) {
			t.Fatalf("promgate: %v; over the whole decoding: %v", err, ref)
		}
		var req prompb.WriteRequest
		if uerr := req.Unmarshal(raw); uerr != nil {
			if err == nil {
				t.Fatalf("Prometheus cannot decode it (%v), promgate accepted it", uerr)
			}
			return
		}
		if err != nil {
			return
		}
		b := labels.NewScratchBuilder(0)
		for _, ts := range req.Timeseries {
			ls := ts.ToLabels(&b, nil)
			if _, dup := ls.HasDuplicateLabelNames(); dup || !enf.Allows(ls) {
				t.Fatalf("accepted series %s", ls)
			}
		}
	})
}
