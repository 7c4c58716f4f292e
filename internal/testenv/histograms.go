package testenv

// Native histograms: series whose samples are histograms with exponential
// (or custom) buckets rather than numbers. OpenMetrics text cannot carry
// them, so promtool cannot backfill them: they are written to a running
// Prometheus 3 with remote write 1.0 (prompb histograms) instead, which
// must accept samples far older than its head (see NativeHistogramConfig).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// HistogramSample is one native histogram sample: an integer histogram (H)
// or a float one (FH); T is in unix seconds.
type HistogramSample struct {
	T  int64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

// NativeHistogramConfig is the part of a Prometheus 3 configuration file a
// server needs to take the native histograms of the dataset by remote
// write after the rest was backfilled: the samples are older than the
// backfilled blocks, out of order for the head.
const NativeHistogramConfig = "storage:\n  tsdb:\n    out_of_order_time_window: 30d\n"

// The native histogram families, and the UTF-8 one added with UTF8Names.
const (
	// NativeLatency is an integer counter histogram, exponential schema 0,
	// one per api target (method GET on even hosts, POST on odd ones),
	// with counter resets.
	NativeLatency = "http_request_latency_seconds"
	// NativeDiskIO is a float gauge histogram, schema 0, one per node
	// target (shared ones among them).
	NativeDiskIO = "node_disk_io_seconds"
	// NativeRequestSize is an integer counter histogram with custom
	// buckets (schema -53), one per api target.
	NativeRequestSize = "http_request_size_bytes"
	// NativeUTF8 is an integer histogram with a dotted name and labels.
	NativeUTF8 = "http.server.request.duration"
)

// zeroThreshold is the width of the zero bucket client libraries use
// (2^-128).
const zeroThreshold = 0x1p-128

// requestSizeBounds are the custom bucket bounds of NativeRequestSize.
var requestSizeBounds = []float64{100, 1000, 10000, 100000}

// addNativeHistograms adds the native histogram families, from a random
// source of their own so that the other series do not change.
func addNativeHistograms(ds *Dataset, utf8 bool) {
	g := &gen{rng: rand.New(rand.NewPCG(20231114, 16)), ds: ds}
	ts := hosts()
	const from, to = StartTime, BaseTime

	g.nativeFamily(NativeLatency)
	for i, t := range ts {
		method := []string{"GET", "POST"}[i%2]
		g.addHistograms(NativeLatency, t.labels("api", "method", method), from, to, g.exponential(0, 0.05+float64(g.rng.IntN(8))*0.05, 250))
	}
	g.nativeFamily(NativeRequestSize)
	for _, t := range ts {
		g.addHistograms(NativeRequestSize, t.labels("api"), from, to, g.custom(requestSizeBounds, 2000))
	}
	g.nativeFamily(NativeDiskIO)
	for _, t := range ts {
		g.addHistograms(NativeDiskIO, t.labels("node", "device", "sda"), from, to, g.gaugeHistogram())
	}
	if !utf8 {
		return
	}
	g.nativeFamily(NativeUTF8)
	for i := range 12 {
		lbls := map[string]string{
			"job": "otel", "instance": fmt.Sprintf("otel-%02d:4317", i),
			"team": []string{"a", "b", "c"}[(i/3)%3], "namespace": namespaces[i%len(namespaces)],
			"service.name": []string{"checkout", "cart", "payment"}[i%3],
		}
		g.addHistograms(NativeUTF8, lbls, from, to, g.exponential(3, 0.2, 0))
	}
}

func (g *gen) nativeFamily(name string) {
	g.family(name, "histogram")
	g.cur.Native = true
}

// addHistograms appends a series of native histogram samples.
func (g *gen) addHistograms(name string, lbls map[string]string, from, to int64, next func() HistogramSample) {
	m := make(map[string]string, len(lbls)+1)
	for k, v := range lbls {
		if v != "" {
			m[k] = v
		}
	}
	m[labels.MetricName] = name
	s := &Series{Labels: m}
	for t := from; t <= to; t += Step {
		h := next()
		h.T = t
		s.Histograms = append(s.Histograms, h)
	}
	g.cur.Series = append(g.cur.Series, s)
}

// observation is a random latency of about scale seconds, a multiple of
// 1/1024 so that sums stay exact; 0 now and then (the zero bucket).
func (g *gen) observation(scale float64) float64 {
	return math.Round(g.rng.ExpFloat64()*scale*1024) / 1024
}

// exponential returns a counter histogram of the given schema: each sample
// adds up to 20 observations; one sample in resetEvery (0: never) starts
// again from nothing.
func (g *gen) exponential(schema int32, scale float64, resetEvery int) func() HistogramSample {
	counts := map[int32]int64{}
	var zero, count uint64
	var sum float64
	first := true
	return func() HistogramSample {
		if !first && resetEvery > 0 && g.rng.IntN(resetEvery) == 0 {
			clear(counts)
			zero, count, sum = 0, 0, 0
		}
		first = false
		for range g.rng.IntN(20) {
			v := g.observation(scale)
			count++
			sum += v
			if v <= zeroThreshold {
				zero++
				continue
			}
			counts[bucketIndex(v, schema)]++
		}
		spans, deltas := spansOf(counts)
		return HistogramSample{H: &histogram.Histogram{
			Schema: schema, ZeroThreshold: zeroThreshold, ZeroCount: zero,
			Count: count, Sum: sum, PositiveSpans: spans, PositiveBuckets: deltas,
		}}
	}
}

// custom returns a counter histogram with custom bucket bounds (the last
// bucket is +Inf), of observations of about scale.
func (g *gen) custom(bounds []float64, scale float64) func() HistogramSample {
	counts := make([]int64, len(bounds)+1)
	var count uint64
	var sum float64
	return func() HistogramSample {
		for range g.rng.IntN(10) {
			v := math.Round(g.rng.ExpFloat64() * scale)
			count++
			sum += v
			i := sort.SearchFloat64s(bounds, v) // the first bound >= v
			counts[i]++
		}
		// One span over every bucket: empty ones are zero deltas.
		deltas := make([]int64, len(counts))
		prev := int64(0)
		for i, c := range counts {
			deltas[i], prev = c-prev, c
		}
		return HistogramSample{H: &histogram.Histogram{
			Schema: histogram.CustomBucketsSchema, Count: count, Sum: sum,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: uint32(len(counts))}}, PositiveBuckets: deltas,
			CustomValues: bounds,
		}}
	}
}

// gaugeHistogram returns a float gauge histogram, schema 0: the
// distribution of the last interval, which goes up and down.
func (g *gen) gaugeHistogram() func() HistogramSample {
	return func() HistogramSample {
		counts := map[int32]float64{}
		var count, sum float64
		for range 1 + g.rng.IntN(12) {
			v := g.observation(0.01)
			w := float64(1+g.rng.IntN(8)) / 4 // a weight: float counts
			count += w
			sum += v * w
			if v <= zeroThreshold {
				v = 1.0 / 1024
			}
			counts[bucketIndex(v, 0)] += w
		}
		idx := make([]int32, 0, len(counts))
		for i := range counts {
			idx = append(idx, i)
		}
		slices.Sort(idx)
		spans := spansFor(idx)
		buckets := make([]float64, len(idx))
		for i, b := range idx {
			buckets[i] = counts[b]
		}
		return HistogramSample{FH: &histogram.FloatHistogram{
			CounterResetHint: histogram.GaugeType, Schema: 0, ZeroThreshold: zeroThreshold,
			Count: count, Sum: sum, PositiveSpans: spans, PositiveBuckets: buckets,
		}}
	}
}

// bucketIndex is the index of the exponential bucket of schema holding v
// > 0: bucket i is (base^(i-1), base^i] with base 2^(2^-schema).
func bucketIndex(v float64, schema int32) int32 {
	per := math.Exp2(float64(schema)) // buckets per power of two
	bound := func(i int32) float64 { return math.Exp2(float64(i) / per) }
	i := int32(math.Ceil(math.Log2(v) * per))
	// Correct the rounding of the logarithm at the boundaries.
	for v > bound(i) {
		i++
	}
	for v <= bound(i-1) {
		i--
	}
	return i
}

// spansOf encodes sparse bucket counts as spans and deltas.
func spansOf(counts map[int32]int64) ([]histogram.Span, []int64) {
	idx := make([]int32, 0, len(counts))
	for i := range counts {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	deltas := make([]int64, len(idx))
	prev := int64(0)
	for i, b := range idx {
		deltas[i], prev = counts[b]-prev, counts[b]
	}
	return spansFor(idx), deltas
}

// spansFor are the spans of the sorted bucket indexes idx.
func spansFor(idx []int32) []histogram.Span {
	var spans []histogram.Span
	for i, b := range idx {
		if i > 0 && b == idx[i-1]+1 {
			spans[len(spans)-1].Length++
			continue
		}
		off := b
		if i > 0 {
			off = b - idx[i-1] - 1
		}
		spans = append(spans, histogram.Span{Offset: off, Length: 1})
	}
	return spans
}

// NativeSeries lists the series of the dataset that hold native histograms.
func (d *Dataset) NativeSeries() []*Series {
	var out []*Series
	for _, f := range d.Families {
		if f.Native {
			out = append(out, f.Series...)
		}
	}
	return out
}

// WriteRequests encodes the native histogram series as remote write 1.0
// requests of at most perRequest series each, every series' samples in
// time order.
func (d *Dataset) WriteRequests(perRequest int) []*prompb.WriteRequest {
	var out []*prompb.WriteRequest
	var cur *prompb.WriteRequest
	for _, s := range d.NativeSeries() {
		if cur == nil || len(cur.Timeseries) == perRequest {
			cur = &prompb.WriteRequest{}
			out = append(out, cur)
		}
		ts := prompb.TimeSeries{}
		for _, n := range sortedNames(s.Labels) {
			ts.Labels = append(ts.Labels, prompb.Label{Name: n, Value: s.Labels[n]})
		}
		for _, h := range s.Histograms {
			if h.FH != nil {
				ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(h.T*1000, h.FH))
			} else {
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(h.T*1000, h.H))
			}
		}
		cur.Timeseries = append(cur.Timeseries, ts)
	}
	return out
}

// RemoteWrite sends the dataset's native histogram series to the remote
// write receiver of the Prometheus at baseURL (remote write 1.0).
func (d *Dataset) RemoteWrite(ctx context.Context, baseURL string) error {
	for _, req := range d.WriteRequests(20) {
		raw, err := req.Marshal()
		if err != nil {
			return err
		}
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
		if err != nil {
			return err
		}
		hr.Header.Set("Content-Type", "application/x-protobuf")
		hr.Header.Set("Content-Encoding", "snappy")
		hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("remote write of native histograms to %s: %d %s", baseURL, resp.StatusCode, msg)
		}
	}
	return nil
}
