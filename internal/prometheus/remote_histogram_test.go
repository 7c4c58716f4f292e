package prometheus

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Native histograms through remote read: the series of a sampled answer
// keep their histogram samples (integer and float), those of a streamed
// one their histogram and float histogram chunks, in order, whether the
// answer passes through or is merged from several selectors' answers and
// framed anew.

// histogramSeries are native histogram series: float samples (a series
// may change type), integer and float histograms.
func histogramSeries() []prompb.TimeSeries {
	h := func(i int64) *histogram.Histogram {
		return &histogram.Histogram{Schema: 1, ZeroThreshold: 0x1p-128, ZeroCount: uint64(i), Count: uint64(3 + i), Sum: 1.5 * float64(i),
			PositiveSpans: []histogram.Span{{Offset: -1, Length: 2}}, PositiveBuckets: []int64{1, 1}}
	}
	fh := func(i int64) *histogram.FloatHistogram {
		return &histogram.FloatHistogram{CounterResetHint: histogram.GaugeType, Schema: 0, ZeroThreshold: 0x1p-128, Count: 2.5 + float64(i), Sum: 0.25,
			PositiveSpans: []histogram.Span{{Offset: 2, Length: 1}}, PositiveBuckets: []float64{2.5 + float64(i)}}
	}
	var out []prompb.TimeSeries
	for _, team := range []string{"a", "b", "c"} {
		lat := ts("__name__", "latency_seconds", "team", team)
		lat.Samples = []prompb.Sample{{Timestamp: 500, Value: 7}}
		for i := int64(1); i <= 3; i++ {
			lat.Histograms = append(lat.Histograms, prompb.FromIntHistogram(1000*i, h(i)))
		}
		disk := ts("__name__", "node_disk_seconds", "shared", "true", "team", team)
		disk.Samples = nil
		for i := int64(1); i <= 3; i++ {
			disk.Histograms = append(disk.Histograms, prompb.FromFloatHistogram(1000*i, fh(i)))
		}
		out = append(out, lat, disk)
	}
	return out
}

// histogramChunks encodes a series' samples as Prometheus streams them:
// an XOR chunk of its floats, then one chunk of its histograms (integer or
// float).
func histogramChunks(t *testing.T, s *prompb.TimeSeries) []prompb.Chunk {
	var out []prompb.Chunk
	if len(s.Samples) > 0 {
		c := chunkenc.NewXORChunk()
		app, _ := c.Appender()
		for _, smp := range s.Samples {
			app.Append(0, smp.Timestamp, smp.Value)
		}
		out = append(out, prompb.Chunk{MinTimeMs: s.Samples[0].Timestamp, MaxTimeMs: s.Samples[len(s.Samples)-1].Timestamp, Type: prompb.Chunk_XOR, Data: c.Bytes()})
	}
	if len(s.Histograms) == 0 {
		return out
	}
	var c chunkenc.Chunk
	typ := prompb.Chunk_HISTOGRAM
	if s.Histograms[0].IsFloatHistogram() {
		c, typ = chunkenc.NewFloatHistogramChunk(), prompb.Chunk_FLOAT_HISTOGRAM
	} else {
		c = chunkenc.NewHistogramChunk()
	}
	app, _ := c.Appender()
	for _, h := range s.Histograms {
		var err error
		if h.IsFloatHistogram() {
			_, _, app, err = app.AppendFloatHistogram(nil, 0, h.Timestamp, h.ToFloatHistogram(), false)
		} else {
			_, _, app, err = app.AppendHistogram(nil, 0, h.Timestamp, h.ToIntHistogram(), false)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return append(out, prompb.Chunk{MinTimeMs: s.Histograms[0].Timestamp, MaxTimeMs: s.Histograms[len(s.Histograms)-1].Timestamp, Type: typ, Data: c.Bytes()})
}

// histogramUpstream answers remote read from histogramSeries: sampled, or
// each series' chunks one per frame.
type histogramUpstream struct {
	t      *testing.T
	series []prompb.TimeSeries
}

func (u *histogramUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	raw, _ := snappy.Decode(nil, body)
	var req prompb.ReadRequest
	if err := req.Unmarshal(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var results []*prompb.QueryResult
	for _, q := range req.Queries {
		ms, _ := fromLabelMatchers(q.Matchers)
		res := &prompb.QueryResult{}
		for i := range u.series {
			if matchesSeries(ms, u.series[i].Labels) {
				res.Timeseries = append(res.Timeseries, &u.series[i])
			}
		}
		results = append(results, res)
	}
	if req.AcceptedResponseTypes[0] == prompb.ReadRequest_SAMPLES {
		data, _ := (&prompb.ReadResponse{Results: results}).Marshal()
		w.Header().Set("Content-Type", protoContentType)
		w.Header().Set("Content-Encoding", "snappy")
		w.Write(snappy.Encode(nil, data))
		return
	}
	w.Header().Set("Content-Type", streamedContentType)
	for qi, res := range results {
		for _, s := range res.Timeseries {
			for _, c := range histogramChunks(u.t, s) {
				data, _ := (&prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{{Labels: s.Labels, Chunks: []prompb.Chunk{c}}}, QueryIndex: int64(qi)}).Marshal()
				writeFrame(w, data)
			}
		}
	}
}

func (u *histogramUpstream) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (u *histogramUpstream) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

// decodeHistogramRead renders an answer's series with every sample:
// floats and histograms of a sampled answer, or the samples of every chunk
// of a streamed one, histograms as float histograms in both.
func decodeHistogramRead(t *testing.T, rec *httptest.ResponseRecorder) []string {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var out []string
	render := func(lbls []prompb.Label, samples []string) {
		out = append(out, fmt.Sprintf("%s %v", seriesLabels(lbls), samples))
	}
	if rec.Header().Get("Content-Type") != streamedContentType {
		raw, err := snappy.Decode(nil, rec.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		var rr prompb.ReadResponse
		if err := rr.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		for _, s := range rr.Results[0].Timeseries {
			var samples []string
			for _, smp := range s.Samples {
				samples = append(samples, fmt.Sprintf("%d=%v", smp.Timestamp, smp.Value))
			}
			for _, h := range s.Histograms {
				fh := h.ToFloatHistogram()
				if !h.IsFloatHistogram() {
					fh = h.ToIntHistogram().ToFloat(nil)
				}
				fh.CounterResetHint = 0
				samples = append(samples, fmt.Sprintf("%d=%s", h.Timestamp, fh))
			}
			render(s.Labels, samples)
		}
		return out
	}
	fr := newFrameReader(rec.Body, maxUpstreamFrame)
	var lastID string
	var prev []string
	for {
		data, err := fr.next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var f prompb.ChunkedReadResponse
		if err := f.Unmarshal(data); err != nil {
			t.Fatal(err)
		}
		for _, cs := range f.ChunkedSeries {
			var samples []string
			for _, c := range cs.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Type), c.Data)
				if err != nil {
					t.Fatalf("chunk of type %v: %v", c.Type, err)
				}
				it := chk.Iterator(nil)
				for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
					if vt == chunkenc.ValFloat {
						ts, v := it.At()
						samples = append(samples, fmt.Sprintf("%d=%v", ts, v))
						continue
					}
					ts, fh := it.AtFloatHistogram(nil)
					fh.CounterResetHint = 0
					samples = append(samples, fmt.Sprintf("%d=%s", ts, fh))
				}
			}
			// A series continued in the next frame is one entry.
			if id := seriesLabels(cs.Labels).String(); id == lastID {
				prev = append(prev, samples...)
				out[len(out)-1] = fmt.Sprintf("%s %v", id, prev)
				continue
			} else {
				lastID, prev = id, samples
			}
			render(cs.Labels, samples)
		}
	}
}

func TestRemoteReadHistograms(t *testing.T) {
	series := histogramSeries()
	// What each policy's answer must be: its series, every sample.
	expect := func(keep ...int) []string {
		rec := httptest.NewRecorder()
		var kept []*prompb.TimeSeries
		for _, i := range keep {
			kept = append(kept, &series[i])
		}
		data, _ := (&prompb.ReadResponse{Results: []*prompb.QueryResult{{Timeseries: kept}}}).Marshal()
		rec.Header().Set("Content-Type", protoContentType)
		rec.Write(snappy.Encode(nil, data))
		out := decodeHistogramRead(t, rec)
		for _, s := range out {
			if !strings.Contains(s, "{count:") {
				t.Fatalf("expected series without histograms: %s", s)
			}
		}
		return out
	}
	query := &prompb.Query{StartTimestampMs: 0, EndTimestampMs: 5000, Matchers: []*prompb.LabelMatcher{reMatcher("__name__", ".+")}}
	// series: latency a, disk a, latency b, disk b, latency c, disk c;
	// sorted by labels, latency_seconds before node_disk_seconds.
	for _, tc := range []struct {
		name      string
		selectors []string
		want      []string
	}{
		{"one selector", []string{`{team="a"}`}, expect(0, 1)},
		{"two selectors, merged", []string{`{team="b"}`, `{__name__=~"node_.*", shared="true"}`}, expect(2, 1, 3, 5)},
	} {
		for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
			t.Run(fmt.Sprintf("%s %v", tc.name, rt), func(t *testing.T) {
				up := &histogramUpstream{t: t, series: series}
				api := New(up, Options{})
				req := &prompb.ReadRequest{Queries: []*prompb.Query{query}, AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt}}
				rec := httptest.NewRecorder()
				api.Handle(rec, remotePost("/api/v1/read", encodeRead(t, req)), "/api/v1/read", enforcer(t, tc.selectors...))
				got := decodeHistogramRead(t, rec)
				if !slices.Equal(got, tc.want) {
					t.Errorf("answer:\n%s\nwant:\n%s", join(got), join(tc.want))
				}
			})
		}
	}
}

// A series of large histogram chunks is framed anew in frames of about
// maxFrameBytes, each chunk whole and of its type, in order.
func TestSeriesFramesHistogramChunks(t *testing.T) {
	types := []prompb.Chunk_Encoding{prompb.Chunk_XOR, prompb.Chunk_HISTOGRAM, prompb.Chunk_FLOAT_HISTOGRAM, prompb.Chunk_HISTOGRAM, prompb.Chunk_FLOAT_HISTOGRAM}
	s := &prompb.ChunkedSeries{Labels: []prompb.Label{{Name: "__name__", Value: "h"}}}
	for i, typ := range types {
		data := make([]byte, 450<<10)
		data[0] = byte(i)
		s.Chunks = append(s.Chunks, prompb.Chunk{MinTimeMs: int64(i), MaxTimeMs: int64(i), Type: typ, Data: data})
	}
	frames := seriesFrames(s, 0)
	if len(frames) < 2 {
		t.Fatalf("%d frames for %d chunks of 450 KiB", len(frames), len(types))
	}
	var got []prompb.Chunk_Encoding
	for _, f := range frames {
		data, err := f.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > maxFrameBytes+(450<<10) {
			t.Errorf("frame of %d bytes", len(data))
		}
		for _, c := range f.ChunkedSeries[0].Chunks {
			if int(c.Data[0]) != len(got) || len(c.Data) != 450<<10 {
				t.Fatalf("chunk %d out of order or cut", len(got))
			}
			got = append(got, c.Type)
		}
	}
	if !slices.Equal(got, types) {
		t.Errorf("chunk types %v, want %v", got, types)
	}
}

func join(ss []string) string {
	out := ""
	for _, s := range ss {
		out += "  " + s + "\n"
	}
	return out
}
