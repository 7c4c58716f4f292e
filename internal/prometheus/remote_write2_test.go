package prometheus

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// writeUpstream stands in for a Prometheus receiving remote writes: it
// records the writes, answers them as Prometheus 3 answers 2.0 (204 and
// the X-Prometheus-Remote-Write-*-Written headers), and its build
// information with version.
type writeUpstream struct {
	version string
	writes  []*http.Request
	bodies  [][]byte
	probes  int
}

func (u *writeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api/v1/status/buildinfo" {
		u.probes++
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"success","data":{"version":"`+u.version+`"}}`)
		return
	}
	if r.URL.Path != "/api/v1/write" {
		u.probes++
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"success","data":[]}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	u.writes = append(u.writes, r)
	u.bodies = append(u.bodies, body)
	if strings.Contains(r.Header.Get("Content-Type"), writeV2Message) {
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", "3")
		w.Header().Set("X-Prometheus-Remote-Write-Histograms-Written", "2")
		w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", "1")
	}
	w.WriteHeader(http.StatusNoContent)
}

func (u *writeUpstream) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (u *writeUpstream) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

// v2Builder builds 2.0 requests: series whose labels are given in any
// order, symbolized in that order.
type v2Builder struct {
	st  writev2.SymbolsTable
	req writev2.Request
}

func newV2() *v2Builder { return &v2Builder{st: writev2.NewSymbolTable()} }

func (b *v2Builder) refs(lbls ...string) []uint32 {
	var out []uint32
	for _, s := range lbls {
		out = append(out, b.st.Symbolize(s))
	}
	return out
}

// series adds a series with one sample and returns it for more.
func (b *v2Builder) series(lbls ...string) *writev2.TimeSeries {
	b.req.Timeseries = append(b.req.Timeseries, writev2.TimeSeries{
		LabelsRefs: b.refs(lbls...),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: 1000}},
	})
	return &b.req.Timeseries[len(b.req.Timeseries)-1]
}

func (b *v2Builder) encode(t testing.TB) []byte {
	t.Helper()
	b.req.Symbols = b.st.Symbols()
	data, err := b.req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// intHistogram and floatHistogram are native histograms as a Prometheus
// agent sends them.
func intHistogram(ts int64) writev2.Histogram {
	return writev2.Histogram{
		Count: &writev2.Histogram_CountInt{CountInt: 5}, Sum: 12.5, Schema: 3, ZeroThreshold: 1e-128,
		ZeroCount:     &writev2.Histogram_ZeroCountInt{ZeroCountInt: 1},
		PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{2, 0},
		NegativeSpans: []writev2.BucketSpan{{Offset: 1, Length: 1}}, NegativeDeltas: []int64{2},
		Timestamp: ts,
	}
}

func floatHistogram(ts int64) writev2.Histogram {
	return writev2.Histogram{
		Count: &writev2.Histogram_CountFloat{CountFloat: 4.5}, Sum: 9, Schema: 0,
		ZeroCount:     &writev2.Histogram_ZeroCountFloat{ZeroCountFloat: 0.5},
		PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveCounts: []float64{2, 2},
		Timestamp: ts, ResetHint: writev2.Histogram_RESET_HINT_GAUGE,
	}
}

const v2ContentType = "application/x-protobuf;proto=io.prometheus.write.v2.Request"

func postV2(body []byte, headers ...string) *http.Request {
	h := append([]string{"Content-Type", v2ContentType, "Content-Encoding", "snappy",
		"X-Prometheus-Remote-Write-Version", "2.0.0", "User-Agent", "Prometheus/3.16.0"}, headers...)
	return remotePost("/api/v1/write", body, h...)
}

func TestRemoteWriteV2(t *testing.T) {
	selectors := []string{`{team="a"}`, `{__name__=~"node_.*", shared="true"}`}
	for _, tc := range []struct {
		name   string
		build  func(b *v2Builder)
		limits WriteLimits
		status int
		want   string // in the error
	}{
		{name: "every series allowed, with histograms, exemplars and metadata", status: 204, build: func(b *v2Builder) {
			s := b.series("__name__", "up", "team", "a")
			s.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: b.st.Symbolize("help"), UnitRef: b.st.Symbolize("seconds")}
			h := b.series("__name__", "rpc_seconds", "team", "a")
			h.Samples = nil
			h.Histograms = []writev2.Histogram{intHistogram(1000), intHistogram(2000)}
			h.Exemplars = []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", "abc"), Value: 0.3, Timestamp: 1000}}
			f := b.series("__name__", "node_load_hist", "shared", "true", "team", "b")
			f.Samples = nil
			f.Histograms = []writev2.Histogram{floatHistogram(1000)}
		}},
		{name: "labels in any order", status: 204, build: func(b *v2Builder) { b.series("team", "a", "__name__", "up") }},
		{name: "exemplar labels are not series labels", status: 204, build: func(b *v2Builder) {
			s := b.series("__name__", "up", "team", "a")
			s.Exemplars = []writev2.Exemplar{{LabelsRefs: b.refs("team", "b"), Value: 1, Timestamp: 1000}}
		}},
		{name: "no series", status: 204, build: func(b *v2Builder) {}},
		{name: "one series outside refuses all", status: 403, want: `series {__name__="up", team="b"} is outside the policy`, build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a")
			b.series("__name__", "up", "team", "b")
		}},
		{name: "a histogram series outside", status: 403, want: `{__name__="rpc_seconds", team="c"}`, build: func(b *v2Builder) {
			h := b.series("__name__", "rpc_seconds", "team", "c")
			h.Samples, h.Histograms = nil, []writev2.Histogram{floatHistogram(1000)}
		}},
		{name: "no labels", status: 403, want: `series {} is outside`, build: func(b *v2Builder) { b.series() }},
		{name: "duplicate label name", status: 400, want: `label "team" more than once`, build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a", "team", "b")
		}},
		{name: "label ref out of the table", status: 400, want: "outside of the symbols table", build: func(b *v2Builder) {
			s := b.series("__name__", "up", "team", "a")
			s.LabelsRefs[3] = 99
		}},
		{name: "odd number of refs", status: 400, want: "odd number of references", build: func(b *v2Builder) {
			s := b.series("__name__", "up", "team", "a")
			s.LabelsRefs = append(s.LabelsRefs, 0)
		}},
		{name: "help ref out of the table", status: 400, want: "help_ref 77", build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a").Metadata.HelpRef = 77
		}},
		{name: "exemplar ref out of the table", status: 400, want: "an exemplar of series", build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a").Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{0, 500}}}
		}},
		{name: "unknown request field", status: 400, want: "does not define", build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a")
			b.req.XXX_unrecognized = []byte{0x0a, 0} // field 1 (1.0's timeseries), empty
		}},
		{name: "unknown series field", status: 400, want: "does not define", build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a").XXX_unrecognized = []byte{0x32, 0}
		}},
		{name: "unknown sample field", status: 400, want: "does not define", build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a").Samples[0].XXX_unrecognized = []byte{0x40, 1}
		}},
		{name: "unknown histogram span field", status: 400, want: "does not define", build: func(b *v2Builder) {
			h := intHistogram(1)
			h.PositiveSpans[0].XXX_unrecognized = []byte{0x18, 1}
			b.series("__name__", "up", "team", "a").Histograms = []writev2.Histogram{h}
		}},
		{name: "too many series", status: 413, limits: WriteLimits{MaxSeries: 2}, want: "3 series, more than 2", build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a", "i", "1")
			b.series("__name__", "up", "team", "a", "i", "2")
			b.series("__name__", "up", "team", "a", "i", "3")
		}},
		{name: "too many labels", status: 400, limits: WriteLimits{MaxLabelsPerSeries: 3}, want: "4 labels, more than 3", build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a", "x", "1", "y", "2")
		}},
		{name: "label name too long", status: 400, limits: WriteLimits{MaxLabelNameLength: 10}, want: "label name of 11 bytes", build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a", "abcdefghijk", "1")
		}},
		{name: "label value too long", status: 400, limits: WriteLimits{MaxLabelValueLength: 10}, want: `value of label "x" of 100 bytes`, build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a", "x", strings.Repeat("v", 100))
		}},
		{name: "exemplar label value too long", status: 400, limits: WriteLimits{MaxLabelValueLength: 10}, want: "an exemplar of series", build: func(b *v2Builder) {
			b.series("__name__", "up", "team", "a").Exemplars = []writev2.Exemplar{{LabelsRefs: b.refs("trace_id", strings.Repeat("f", 32))}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newV2()
			tc.build(b)
			body := snappy.Encode(nil, b.encode(t))
			up := &writeUpstream{version: "3.16.0"}
			api := New(up, Options{Write: tc.limits})
			req := postV2(body)
			rec := httptest.NewRecorder()
			api.Handle(rec, req, "/api/v1/write", enforcer(t, selectors...))
			if tc.status >= 400 {
				if msg := errorEnvelope(t, rec, tc.status); !strings.Contains(msg, tc.want) {
					t.Errorf("error %q does not mention %q", msg, tc.want)
				}
				if len(up.writes) != 0 || up.probes != 0 {
					t.Error("a refused write reached the upstream")
				}
				return
			}
			if rec.Code != tc.status {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if len(up.writes) != 1 {
				t.Fatalf("%d upstream writes, want 1", len(up.writes))
			}
			if !bytes.Equal(up.bodies[0], body) {
				t.Error("the forwarded body is not the one sent")
			}
			for _, k := range []string{"Content-Type", "Content-Encoding", "X-Prometheus-Remote-Write-Version", "User-Agent"} {
				if got := up.writes[0].Header.Get(k); got != req.Header.Get(k) {
					t.Errorf("header %s forwarded as %q, sent %q", k, got, req.Header.Get(k))
				}
			}
			for k, v := range map[string]string{"Samples": "3", "Histograms": "2", "Exemplars": "1"} {
				if got := rec.Header().Get("X-Prometheus-Remote-Write-" + k + "-Written"); got != v {
					t.Errorf("X-Prometheus-Remote-Write-%s-Written answered %q, the upstream said %q", k, got, v)
				}
			}
		})
	}
}

func TestRemoteWriteV2Upstreams(t *testing.T) {
	b := newV2()
	b.series("__name__", "up", "team", "a")
	body := snappy.Encode(nil, b.encode(t))
	for _, tc := range []struct {
		version string
		status  int
	}{
		{"3.16.0", 204},
		{"3.0.0", 204},
		{"", 204}, // built without a version: asked on
		// 2.x reads any body as 1.0: the 2.0 request would be answered
		// 204 and nothing written.
		{"2.42.0", 415},
		{"2.55.1", 415},
	} {
		t.Run(tc.version, func(t *testing.T) {
			up := &writeUpstream{version: tc.version}
			api := New(up, Options{})
			rec := httptest.NewRecorder()
			api.Handle(rec, postV2(body), "/api/v1/write", enforcer(t, `{team="a"}`))
			if tc.status == 415 {
				if msg := errorEnvelope(t, rec, 415); !strings.Contains(msg, "only accepts prometheus.WriteRequest") {
					t.Errorf("error %q does not name the accepted message", msg)
				}
				if len(up.writes) != 0 {
					t.Error("the 2.0 request reached a 2.x upstream")
				}
				return
			}
			if rec.Code != tc.status || len(up.writes) != 1 {
				t.Errorf("status %d, %d writes: %s", rec.Code, len(up.writes), rec.Body)
			}
		})
	}
	// 1.0 reaches 2.x without a question.
	up := &writeUpstream{version: "2.42.0"}
	rec := httptest.NewRecorder()
	v1 := encodeWrite(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("__name__", "up", "team", "a")}})
	New(up, Options{}).Handle(rec, remotePost("/api/v1/write", v1), "/api/v1/write", enforcer(t, `{team="a"}`))
	if rec.Code != 204 || len(up.writes) != 1 || up.probes != 0 {
		t.Errorf("1.0 to 2.x: status %d, %d writes, %d probes", rec.Code, len(up.writes), up.probes)
	}
}

func TestRemoteWriteV1Limits(t *testing.T) {
	long := strings.Repeat("x", 20)
	withExemplar := ts("__name__", "up", "team", "a")
	withExemplar.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: long}}, Value: 1, Timestamp: 1}}
	unknownSample := ts("__name__", "up", "team", "a")
	unknownSample.Samples[0].XXX_unrecognized = []byte{0x20, 1}
	lim := WriteLimits{MaxSeries: 2, MaxLabelsPerSeries: 3, MaxLabelNameLength: 10, MaxLabelValueLength: 10}
	for _, tc := range []struct {
		name   string
		series []prompb.TimeSeries
		status int
		want   string
	}{
		{"within", []prompb.TimeSeries{ts("__name__", "up", "team", "a")}, 204, ""},
		{"too many series", []prompb.TimeSeries{ts("__name__", "up", "team", "a"), ts("__name__", "up", "team", "a"), ts("__name__", "up", "team", "a")}, 413, "3 series, more than 2"},
		{"too many labels", []prompb.TimeSeries{ts("__name__", "up", "team", "a", "b", "c", "d", "e")}, 400, "4 labels, more than 3"},
		{"name too long", []prompb.TimeSeries{ts("__name__", "up", "team", "a", long, "c")}, 400, "label name of 20 bytes"},
		{"value too long", []prompb.TimeSeries{ts("__name__", "up", "team", "a", "x", long)}, 400, `value of label "x" of 20 bytes`},
		{"exemplar value too long", []prompb.TimeSeries{withExemplar}, 400, "an exemplar of series"},
		{"unknown sample field", []prompb.TimeSeries{unknownSample}, 400, "does not define"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &writeUpstream{}
			rec := httptest.NewRecorder()
			body := encodeWrite(t, &prompb.WriteRequest{Timeseries: tc.series})
			New(up, Options{Write: lim}).Handle(rec, remotePost("/api/v1/write", body), "/api/v1/write", enforcer(t, `{team="a"}`))
			if tc.status != 204 {
				if msg := errorEnvelope(t, rec, tc.status); !strings.Contains(msg, tc.want) {
					t.Errorf("error %q does not mention %q", msg, tc.want)
				}
				if len(up.writes) != 0 {
					t.Error("a refused write reached the upstream")
				}
				return
			}
			if rec.Code != 204 || len(up.writes) != 1 {
				t.Errorf("status %d, %d writes", rec.Code, len(up.writes))
			}
		})
	}
}

// snappyHeader is a snappy block that announces n decoded bytes and holds
// nothing else.
func snappyHeader(n uint64) []byte {
	var b [binary.MaxVarintLen64]byte
	return b[:binary.PutUvarint(b[:], n)]
}

func gzipOf(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func TestReadWriteBody(t *testing.T) {
	lim := WriteLimits{MaxBodyBytes: 1000, MaxDecodedBytes: 5000}.withDefaults()
	payload := bytes.Repeat([]byte("promgate "), 100) // 900 bytes
	// Bombs: 1 MiB of zeros, compressed to a few KiB and less.
	bomb := snappy.Encode(nil, make([]byte, 1<<20))
	gzBomb := gzipOf(t, make([]byte, 1<<20))
	for _, tc := range []struct {
		name     string
		encoding []string // Content-Encoding values
		body     []byte
		accepted []string
		status   int // 0: read
		want     []byte
	}{
		{"snappy", []string{"snappy"}, snappy.Encode(nil, payload), []string{"snappy"}, 0, payload},
		{"snappy by default", nil, snappy.Encode(nil, payload), []string{"snappy"}, 0, payload},
		{"gzip", []string{"gzip"}, gzipOf(t, payload), []string{"gzip", "identity"}, 0, payload},
		{"identity", []string{"identity"}, payload, []string{"gzip", "identity"}, 0, payload},
		{"gzip refused where snappy is expected", []string{"gzip"}, gzipOf(t, payload), []string{"snappy"}, 415, nil},
		{"case matters", []string{"Snappy"}, snappy.Encode(nil, payload), []string{"snappy"}, 415, nil},
		{"two encodings", []string{"snappy", "snappy"}, snappy.Encode(nil, payload), []string{"snappy"}, 415, nil},
		{"sent too large", []string{"identity"}, make([]byte, 1001), []string{"identity"}, 413, nil},
		{"snappy bomb", []string{"snappy"}, bomb, []string{"snappy"}, 413, nil},
		{"snappy header announcing 2 GiB", []string{"snappy"}, snappyHeader(1 << 31), []string{"snappy"}, 413, nil},
		{"snappy header announcing 1 TiB (not snappy)", []string{"snappy"}, snappyHeader(1 << 40), []string{"snappy"}, 400, nil},
		{"snappy header lying small", []string{"snappy"}, append(snappyHeader(3), 0x08, 'a', 'b', 'c', 'd'), []string{"snappy"}, 400, nil},
		{"gzip bomb", []string{"gzip"}, gzBomb, []string{"gzip"}, 413, nil},
		{"not snappy", []string{"snappy"}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, []string{"snappy"}, 400, nil},
		{"not gzip", []string{"gzip"}, payload, []string{"gzip"}, 400, nil},
		{"truncated gzip", []string{"gzip"}, gzipOf(t, payload)[:30], []string{"gzip"}, 400, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := remotePost("/api/v1/write", tc.body)
			r.Header.Del("Content-Encoding")
			for _, e := range tc.encoding {
				r.Header.Add("Content-Encoding", e)
			}
			dflt := tc.accepted[0]
			sent, raw, err := readWriteBody(r, lim, dflt, tc.accepted...)
			if tc.status == 0 {
				if err != nil || !bytes.Equal(raw, tc.want) || !bytes.Equal(sent, tc.body) {
					t.Fatalf("got %d bytes, %v", len(raw), err)
				}
				return
			}
			var e interface{ Status() int }
			if !errorsAs(err, &e) || e.Status() != tc.status {
				t.Fatalf("got %v, want status %d", err, tc.status)
			}
		})
	}
	// The bounds hold while reading a body of unknown length.
	r := remotePost("/api/v1/write", nil)
	r.Body = io.NopCloser(io.LimitReader(zeros{}, 2000))
	r.ContentLength = -1
	if _, _, err := readWriteBody(r, lim, "identity", "identity"); err == nil || !strings.Contains(err.Error(), "larger than 1000") {
		t.Errorf("chunked body: got %v", err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// TestRemoteWriteV2TypeAndUnit: a Prometheus with the type-and-unit-labels
// feature stores a series with its metadata's type and unit as labels;
// promgate decides on the series both as sent and as stored so.
func TestRemoteWriteV2TypeAndUnit(t *testing.T) {
	enf := enforcer(t, `{team="a", __type__!="counter"}`)
	for _, tc := range []struct {
		name   string
		build  func(b *v2Builder)
		status int
	}{
		{"no metadata", func(b *v2Builder) { b.series("__name__", "up", "team", "a") }, 204},
		{"a gauge", func(b *v2Builder) {
			b.series("__name__", "up", "team", "a").Metadata.Type = writev2.Metadata_METRIC_TYPE_GAUGE
		}, 204},
		{"a counter, stored with __type__=counter", func(b *v2Builder) {
			b.series("__name__", "up", "team", "a").Metadata.Type = writev2.Metadata_METRIC_TYPE_COUNTER
		}, 403},
		{"a counter sent as a gauge", func(b *v2Builder) {
			b.series("__name__", "up", "team", "a", "__type__", "gauge").Metadata.Type = writev2.Metadata_METRIC_TYPE_COUNTER
		}, 403},
		{"a label __type__ of its own, no metadata", func(b *v2Builder) {
			b.series("__name__", "up", "team", "a", "__type__", "counter")
		}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newV2()
			tc.build(b)
			up := &writeUpstream{version: "3.16.0"}
			rec := httptest.NewRecorder()
			New(up, Options{}).Handle(rec, postV2(snappy.Encode(nil, b.encode(t))), "/api/v1/write", enf)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
		})
	}
}
