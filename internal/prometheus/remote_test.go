package prometheus

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/promgate/promgate/internal/promql"
)

// remoteUpstream stands in for Prometheus' remote read and write handlers:
// it records every request and answers remote reads from a few series,
// selected by the query's matchers as Prometheus would select them.
type remoteUpstream struct {
	series []prompb.TimeSeries
	got    []*http.Request
	bodies [][]byte
	// reads are the decoded remote read requests.
	reads []*prompb.ReadRequest
}

func (u *remoteUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.got = append(u.got, r)
	u.bodies = append(u.bodies, body)
	if r.URL.Path == "/api/v1/write" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req prompb.ReadRequest
	if err := req.Unmarshal(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	u.reads = append(u.reads, &req)
	streamed := len(req.AcceptedResponseTypes) > 0 && req.AcceptedResponseTypes[0] == prompb.ReadRequest_STREAMED_XOR_CHUNKS
	var results []*prompb.QueryResult
	for _, q := range req.Queries {
		ms, err := fromLabelMatchers(q.Matchers)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res := &prompb.QueryResult{}
		for i := range u.series {
			if ms != nil && matchesSeries(ms, u.series[i].Labels) {
				res.Timeseries = append(res.Timeseries, &u.series[i])
			}
		}
		results = append(results, res)
	}
	if !streamed {
		data, _ := (&prompb.ReadResponse{Results: results}).Marshal()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Header().Set("Content-Encoding", "snappy")
		w.Write(snappy.Encode(nil, data))
		return
	}
	// Every series in two frames, one chunk each, as Prometheus splits a
	// series larger than a frame.
	w.Header().Set("Content-Type", streamedContentType)
	for qi, res := range results {
		for _, ts := range res.Timeseries {
			for _, c := range chunksOf(ts) {
				f := &prompb.ChunkedReadResponse{
					ChunkedSeries: []*prompb.ChunkedSeries{{Labels: ts.Labels, Chunks: []prompb.Chunk{c}}},
					QueryIndex:    int64(qi),
				}
				data, _ := f.Marshal()
				writeFrame(w, data)
			}
		}
	}
}

func (u *remoteUpstream) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (u *remoteUpstream) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

func matchesSeries(ms []*labels.Matcher, ls []prompb.Label) bool {
	l := seriesLabels(ls)
	for _, m := range ms {
		if !m.Matches(l.Get(m.Name)) {
			return false
		}
	}
	return true
}

// chunksOf gives a series two chunks whose data name the series, so that
// a chunk in the wrong series shows.
func chunksOf(ts *prompb.TimeSeries) []prompb.Chunk {
	id := seriesLabels(ts.Labels).String()
	return []prompb.Chunk{
		{MinTimeMs: 0, MaxTimeMs: 9, Type: prompb.Chunk_XOR, Data: []byte(id + "#0")},
		{MinTimeMs: 10, MaxTimeMs: 19, Type: prompb.Chunk_XOR, Data: []byte(id + "#1")},
	}
}

func ts(lbls ...string) prompb.TimeSeries {
	var out prompb.TimeSeries
	for i := 0; i < len(lbls); i += 2 {
		out.Labels = append(out.Labels, prompb.Label{Name: lbls[i], Value: lbls[i+1]})
	}
	out.Samples = []prompb.Sample{{Value: float64(len(lbls)), Timestamp: 1000}}
	return out
}

// testSeries are the upstream's series, labels sorted as Prometheus sends
// them.
var testSeries = []prompb.TimeSeries{
	ts("__name__", "up", "job", "a", "team", "a"),
	ts("__name__", "up", "job", "b", "team", "b"),
	ts("__name__", "up", "job", "c", "team", "c"),
	ts("__name__", "node_load1", "shared", "true", "team", "b"),
	ts("__name__", "node_load1", "shared", "true", "team", "c"),
	ts("__name__", "node_load1", "shared", "false", "team", "c"),
	ts("__name__", "node_load5", "shared", "true", "team", "b"),
}

func eqMatcher(name, value string) *prompb.LabelMatcher {
	return &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: name, Value: value}
}

func reMatcher(name, value string) *prompb.LabelMatcher {
	return &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: name, Value: value}
}

func encodeRead(t *testing.T, req *prompb.ReadRequest) []byte {
	t.Helper()
	data, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, data)
}

func remotePost(path string, body []byte, headers ...string) *http.Request {
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	for i := 0; i < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// readAnswer decodes a remote read answer into each query's series, as
// label strings, in the order received (chunks joined for streamed answers).
func readAnswer(t *testing.T, rec *httptest.ResponseRecorder) [][]string {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var out [][]string
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/x-streamed-protobuf") {
		fr := newFrameReader(rec.Body, maxUpstreamFrame)
		last := map[int64]string{}
		for {
			data, err := fr.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var f prompb.ChunkedReadResponse
			if err := f.Unmarshal(data); err != nil {
				t.Fatal(err)
			}
			for int64(len(out)) <= f.QueryIndex {
				out = append(out, nil)
			}
			for _, cs := range f.ChunkedSeries {
				id := seriesLabels(cs.Labels).String()
				for _, c := range cs.Chunks {
					if !strings.HasPrefix(string(c.Data), id+"#") {
						t.Errorf("chunk %q in series %s", c.Data, id)
					}
				}
				// A series continued in the next frame is listed once.
				if last[f.QueryIndex] != id {
					out[f.QueryIndex] = append(out[f.QueryIndex], fmt.Sprintf("%s chunks=%d", id, len(cs.Chunks)))
				} else {
					n := len(out[f.QueryIndex]) - 1
					var have int
					fmt.Sscanf(out[f.QueryIndex][n][len(id)+len(" chunks="):], "%d", &have)
					out[f.QueryIndex][n] = fmt.Sprintf("%s chunks=%d", id, have+len(cs.Chunks))
				}
				last[f.QueryIndex] = id
			}
		}
		return out
	}
	if rec.Header().Get("Content-Encoding") != "snappy" {
		t.Fatalf("SAMPLES answer without Content-Encoding: snappy: %v", rec.Header())
	}
	raw, err := snappy.Decode(nil, rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var rr prompb.ReadResponse
	if err := rr.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	for _, res := range rr.Results {
		var ss []string
		for _, s := range res.Timeseries {
			ss = append(ss, seriesLabels(s.Labels).String())
		}
		out = append(out, ss)
	}
	return out
}

func TestRemoteRead(t *testing.T) {
	upQuery := &prompb.Query{StartTimestampMs: 100, EndTimestampMs: 200,
		Matchers: []*prompb.LabelMatcher{eqMatcher("__name__", "up")},
		Hints:    &prompb.ReadHints{StartMs: 100, EndMs: 200, Func: "rate", RangeMs: 300}}
	nodeQuery := &prompb.Query{StartTimestampMs: 100, EndTimestampMs: 200,
		Matchers: []*prompb.LabelMatcher{reMatcher("__name__", "node_.*")}}
	streamed := []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS}
	for _, tc := range []struct {
		name      string
		selectors []string
		req       *prompb.ReadRequest
		want      [][]string
		// upstream are the matchers of each upstream query.
		upstream []string
	}{
		{
			name:      "one selector: matchers added",
			selectors: []string{`{team="a"}`},
			req:       &prompb.ReadRequest{Queries: []*prompb.Query{upQuery}},
			want:      [][]string{{`{__name__="up", job="a", team="a"}`}},
			upstream:  []string{`{__name__="up", team="a"}`},
		},
		{
			name:      "one selector, streamed: passed through",
			selectors: []string{`{team="a"}`},
			req:       &prompb.ReadRequest{Queries: []*prompb.Query{upQuery}, AcceptedResponseTypes: streamed},
			want:      [][]string{{`{__name__="up", job="a", team="a"} chunks=2`}},
			upstream:  []string{`{__name__="up", team="a"}`},
		},
		{
			name:      "two selectors: one upstream query each, merged without duplicates, sorted",
			selectors: []string{`{team="b"}`, `{__name__=~"node_.*", shared="true"}`},
			req:       &prompb.ReadRequest{Queries: []*prompb.Query{nodeQuery, upQuery}},
			want: [][]string{
				{
					`{__name__="node_load1", shared="true", team="b"}`,
					`{__name__="node_load1", shared="true", team="c"}`,
					`{__name__="node_load5", shared="true", team="b"}`,
				},
				{`{__name__="up", job="b", team="b"}`},
			},
			upstream: []string{
				`{__name__=~"node_.*", team="b"}`, `{__name__=~"node_.*", shared="true"}`,
				`{__name__="up", team="b"}`, // up is not node_.*: pruned
			},
		},
		{
			name:      "two selectors, streamed: merged frames, split series joined",
			selectors: []string{`{team="b"}`, `{__name__=~"node_.*", shared="true"}`},
			req:       &prompb.ReadRequest{Queries: []*prompb.Query{nodeQuery, upQuery}, AcceptedResponseTypes: streamed},
			want: [][]string{
				{
					`{__name__="node_load1", shared="true", team="b"} chunks=2`,
					`{__name__="node_load1", shared="true", team="c"} chunks=2`,
					`{__name__="node_load5", shared="true", team="b"} chunks=2`,
				},
				{`{__name__="up", job="b", team="b"} chunks=2`},
			},
			upstream: []string{
				`{__name__=~"node_.*", team="b"}`, `{__name__=~"node_.*", shared="true"}`,
				`{__name__="up", team="b"}`, // up is not node_.*: pruned
			},
		},
		{
			name:      "unknown response type first: the next one",
			selectors: []string{`{team="a"}`},
			req: &prompb.ReadRequest{Queries: []*prompb.Query{upQuery},
				AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{7, prompb.ReadRequest_SAMPLES}},
			want:     [][]string{{`{__name__="up", job="a", team="a"}`}},
			upstream: []string{`{__name__="up", team="a"}`},
		},
		{
			name:      "conflicting equality: nothing",
			selectors: []string{`{team="a"}`},
			req: &prompb.ReadRequest{Queries: []*prompb.Query{{StartTimestampMs: 1, EndTimestampMs: 2,
				Matchers: []*prompb.LabelMatcher{eqMatcher("team", "b")}}}},
			want:     [][]string{nil},
			upstream: []string{`{team="b", team="a"}`},
		},
		{
			name:      "query without matchers selects nothing, as in Prometheus",
			selectors: []string{`{team="a"}`},
			req:       &prompb.ReadRequest{Queries: []*prompb.Query{{StartTimestampMs: 1, EndTimestampMs: 2}, upQuery}},
			want:      [][]string{nil, {`{__name__="up", job="a", team="a"}`}},
			upstream:  []string{`{__name__="up", team="a"}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &remoteUpstream{series: testSeries}
			api := New(up, Options{})
			req := remotePost("/api/v1/read", encodeRead(t, tc.req),
				"Content-Type", "application/x-protobuf", "Content-Encoding", "snappy", "X-Prometheus-Remote-Read-Version", "0.1.0")
			rec := httptest.NewRecorder()
			api.Handle(rec, req, "/api/v1/read", enforcer(t, tc.selectors...))
			got := readAnswer(t, rec)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("answer\n got %q\nwant %q", got, tc.want)
			}
			if len(up.reads) != 1 {
				t.Fatalf("%d upstream requests, want 1", len(up.reads))
			}
			var ups []string
			for i, q := range up.reads[0].Queries {
				ms, err := fromLabelMatchers(q.Matchers)
				if err != nil {
					t.Fatal(err)
				}
				ups = append(ups, promql.FormatSelector(ms))
				// The time range and hints are the client query's: the one
				// whose matchers come first.
				var orig *prompb.Query
				for _, cq := range tc.req.Queries {
					if len(cq.Matchers) > 0 && cq.Matchers[0].String() == q.Matchers[0].String() {
						orig = cq
					}
				}
				if orig == nil || q.EndTimestampMs != orig.EndTimestampMs || q.Hints.String() != orig.Hints.String() {
					t.Errorf("upstream query %d lost the time range or hints: %v", i, q)
				}
			}
			if fmt.Sprint(ups) != fmt.Sprint(tc.upstream) {
				t.Errorf("upstream queries\n got %q\nwant %q", ups, tc.upstream)
			}
			if v := up.got[0].Header.Get("X-Prometheus-Remote-Read-Version"); v != "0.1.0" {
				t.Errorf("version header not forwarded: %q", v)
			}
		})
	}
}

// errorEnvelope checks an error answer and returns its message.
func errorEnvelope(t *testing.T, rec *httptest.ResponseRecorder, status int) string {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	var env struct{ Status, ErrorType, Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Status != "error" || env.Error == "" {
		t.Fatalf("not an error envelope: %q", rec.Body)
	}
	return env.Error
}

func TestRemoteBadInput(t *testing.T) {
	good := encodeRead(t, &prompb.ReadRequest{Queries: []*prompb.Query{{Matchers: []*prompb.LabelMatcher{eqMatcher("__name__", "up")}}}})
	badRegex := encodeRead(t, &prompb.ReadRequest{Queries: []*prompb.Query{{Matchers: []*prompb.LabelMatcher{reMatcher("job", "(")}}}})
	badType := encodeRead(t, &prompb.ReadRequest{Queries: []*prompb.Query{{Matchers: []*prompb.LabelMatcher{{Type: 9, Name: "a", Value: "b"}}}}})
	noType := encodeRead(t, &prompb.ReadRequest{Queries: []*prompb.Query{{Matchers: []*prompb.LabelMatcher{eqMatcher("a", "b")}}},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{5}})
	// A snappy header that announces 100 MiB.
	var huge [binary.MaxVarintLen64]byte
	hugeHeader := huge[:binary.PutUvarint(huge[:], 100<<20)]
	v2 := "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	for _, tc := range []struct {
		name    string
		path    string
		body    []byte
		headers []string
		status  int
		want    string
	}{
		{"read: garbage", "/api/v1/read", []byte("garbage"), nil, 400, "not snappy-compressed"},
		{"read: snappy of garbage", "/api/v1/read", snappy.Encode(nil, []byte("not a protobuf")), nil, 400, "invalid remote read request"},
		{"read: gzip encoding", "/api/v1/read", good, []string{"Content-Encoding", "gzip"}, 415, "Content-Encoding"},
		{"read: JSON body", "/api/v1/read", good, []string{"Content-Type", "application/json"}, 415, "Content-Type"},
		{"read: too large", "/api/v1/read", make([]byte, maxRemoteBody+1), nil, 413, "larger than"},
		{"read: decompresses too large", "/api/v1/read", hugeHeader, nil, 413, "decompresses"},
		{"read: invalid regex", "/api/v1/read", badRegex, nil, 400, "invalid matcher"},
		{"read: invalid matcher type", "/api/v1/read", badType, nil, 400, "invalid matcher type"},
		{"read: no response type implemented", "/api/v1/read", noType, nil, 400, "response types"},
		{"write: garbage", "/api/v1/write", []byte("garbage"), nil, 400, "not snappy-compressed"},
		{"write: snappy of garbage", "/api/v1/write", snappy.Encode(nil, []byte("not a protobuf")), nil, 400, "invalid remote write request"},
		{"write: zstd encoding", "/api/v1/write", good, []string{"Content-Encoding", "zstd"}, 415, "Content-Encoding"},
		{"write: remote write 2.0 spelt otherwise", "/api/v1/write", good, []string{"Content-Type", "application/x-protobuf; proto=io.prometheus.write.v2.Request"}, 415, "remote write 2.0"},
		{"write: 2.0 of garbage", "/api/v1/write", snappy.Encode(nil, []byte("not a protobuf")), []string{"Content-Type", v2}, 400, "invalid remote write 2.0 request"},
		{"write: form body", "/api/v1/write", good, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "Content-Type"},
		{"write: too large", "/api/v1/write", make([]byte, maxRemoteBody+1), nil, 413, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &remoteUpstream{series: testSeries}
			api := New(up, Options{})
			rec := httptest.NewRecorder()
			api.Handle(rec, remotePost(tc.path, tc.body, tc.headers...), tc.path, enforcer(t, `{team="a"}`))
			if msg := errorEnvelope(t, rec, tc.status); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not mention %q", msg, tc.want)
			}
			if len(up.got) != 0 {
				t.Errorf("the refused request reached the upstream")
			}
		})
	}
}

func TestReadBodyWithoutLength(t *testing.T) {
	// A chunked body has no Content-Length: the bound holds while reading.
	req := remotePost("/api/v1/write", nil)
	req.Body = io.NopCloser(io.LimitReader(zeros{}, maxRemoteBody+10))
	req.ContentLength = -1
	_, _, err := readSnappyBody(req)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v, want a too-large error", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func encodeWrite(t *testing.T, req *prompb.WriteRequest) []byte {
	t.Helper()
	data, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, data)
}

func TestRemoteWrite(t *testing.T) {
	selectors := []string{`{team="a"}`, `{__name__=~"node_.*", shared="true"}`}
	for _, tc := range []struct {
		name   string
		req    *prompb.WriteRequest
		status int
		want   string // in the error
	}{
		{name: "every series allowed", status: 204, req: &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			ts("__name__", "up", "team", "a"), ts("__name__", "node_load1", "shared", "true", "team", "b")}}},
		{name: "labels in any order", status: 204, req: &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			ts("team", "a", "__name__", "up")}}},
		{name: "one series outside refuses all", status: 403, want: `series {__name__="up", team="b"} is outside the policy`,
			req: &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("__name__", "up", "team", "a"), ts("__name__", "up", "team", "b")}}},
		{name: "missing label", status: 403, want: `{__name__="up"}`,
			req: &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("__name__", "up")}}},
		{name: "duplicate label name", status: 400, want: `label "team" more than once`,
			req: &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("__name__", "up", "team", "a", "team", "b")}}},
		{name: "metadata only", status: 204, req: &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
			{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "h"}}}},
		{name: "no series", status: 204, req: &prompb.WriteRequest{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &remoteUpstream{}
			api := New(up, Options{})
			body := encodeWrite(t, tc.req)
			req := remotePost("/api/v1/write", body, "Content-Type", "application/x-protobuf", "Content-Encoding", "snappy",
				"X-Prometheus-Remote-Write-Version", "0.1.0", "User-Agent", "Prometheus/2.42.0")
			rec := httptest.NewRecorder()
			api.Handle(rec, req, "/api/v1/write", enforcer(t, selectors...))
			if tc.status >= 400 {
				if msg := errorEnvelope(t, rec, tc.status); !strings.Contains(msg, tc.want) {
					t.Errorf("error %q does not mention %q", msg, tc.want)
				}
				if len(up.got) != 0 {
					t.Error("a refused write reached the upstream")
				}
				return
			}
			if rec.Code != tc.status {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if len(up.got) != 1 {
				t.Fatalf("%d upstream requests, want 1", len(up.got))
			}
			if !bytes.Equal(up.bodies[0], body) {
				t.Error("the forwarded body is not the one sent")
			}
			h := up.got[0].Header
			for _, k := range []string{"Content-Type", "Content-Encoding", "X-Prometheus-Remote-Write-Version", "User-Agent"} {
				if h.Get(k) != req.Header.Get(k) {
					t.Errorf("header %s forwarded as %q, sent %q", k, h.Get(k), req.Header.Get(k))
				}
			}
			if up.got[0].URL.Path != "/api/v1/write" || up.got[0].URL.RawQuery != "" {
				t.Errorf("forwarded to %v", up.got[0].URL)
			}
		})
	}
}

func TestCheckWrite(t *testing.T) {
	enf := enforcer(t, `{__name__=~"node_.*|rpc_duration_seconds_.*"}`, `{__name__="up", team="a"}`)
	unknown := ts("__name__", "node_load1")
	unknown.XXX_unrecognized = []byte{0x2a, 0}
	for _, tc := range []struct {
		name string
		req  prompb.WriteRequest
		want string // "" when accepted
	}{
		{"allowed", prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("__name__", "node_load1"), ts("__name__", "up", "team", "a")}}, ""},
		{"first offender named", prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("__name__", "go_goroutines"), ts("__name__", "up")}},
			`series {__name__="go_goroutines"} is outside the policy`},
		{"metadata of an allowed name", prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "node_load1"}, {MetricFamilyName: "up"}}}, ""},
		{"metadata of a histogram family whose series are allowed", prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "rpc_duration_seconds"}}}, ""},
		{"metadata of a name outside", prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "go_goroutines"}}},
			`metadata of metric "go_goroutines" is outside the policy`},
		{"unknown series field", prompb.WriteRequest{Timeseries: []prompb.TimeSeries{unknown}}, "does not define"},
		{"unknown request field", prompb.WriteRequest{XXX_unrecognized: []byte{0x22, 0}}, "does not define"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Through the wire, as the upstream would read it.
			data, err := tc.req.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			err = checkWriteV1(data, enf, DefaultWriteLimits)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestWriteMessage(t *testing.T) {
	for _, tc := range []struct {
		contentType string
		want        string // "": refused with 415
	}{
		{"", writeV1Message},
		{"application/x-protobuf", writeV1Message},
		{"application/x-protobuf;proto=prometheus.WriteRequest", writeV1Message},
		{" application/x-protobuf ", writeV1Message},
		{"application/x-protobuf;proto=io.prometheus.write.v2.Request", writeV2Message},
		{" application/x-protobuf;proto=io.prometheus.write.v2.Request", writeV2Message},
		// Read differently by receivers (Prometheus takes " proto" for
		// another parameter and reads 1.0).
		{"application/x-protobuf; proto=io.prometheus.write.v2.Request", ""},
		{"application/x-protobuf; proto=prometheus.WriteRequest", ""},
		{"application/x-protobuf;charset=utf-8;proto=io.prometheus.write.v2.Request", ""},
		{"application/x-protobuf;proto=io.prometheus.write.v3.Request", ""},
		{"application/x-protobuf;proto=other", ""},
		{"Application/X-Protobuf", ""},
		{"application/json", ""},
	} {
		h := http.Header{}
		if tc.contentType != "" {
			h.Set("Content-Type", tc.contentType)
		}
		got, err := writeMessage(h)
		var e interface{ Status() int }
		switch {
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("%q: got %q, %v; want %s", tc.contentType, got, err, tc.want)
		case tc.want == "" && (!errors.As(err, &e) || e.Status() != 415 || !strings.Contains(err.Error(), writeV2Message)):
			t.Errorf("%q: got %q, %v; want 415 naming the accepted messages", tc.contentType, got, err)
		}
	}
	// Two Content-Types: the upstream reads the first, promgate neither.
	h := http.Header{"Content-Type": {"application/x-protobuf", "application/json"}}
	if _, err := writeMessage(h); err == nil {
		t.Error("two Content-Types accepted")
	}
}

func TestCheckReadHeaders(t *testing.T) {
	for _, tc := range []struct {
		contentType, encoding string
		ok                    bool
	}{
		{"", "", true},
		{"application/x-protobuf", "snappy", true},
		{"application/x-protobuf; proto=prometheus.ReadRequest", "snappy", true},
		{"application/x-protobuf; proto=prometheus.WriteRequest", "snappy", false},
		{"text/plain", "snappy", false},
		{"application/x-protobuf", "deflate", false},
	} {
		h := http.Header{}
		if tc.contentType != "" {
			h.Set("Content-Type", tc.contentType)
		}
		if tc.encoding != "" {
			h.Set("Content-Encoding", tc.encoding)
		}
		if err := checkReadHeaders(h); (err == nil) != tc.ok {
			t.Errorf("%q %q: got %v, want ok=%v", tc.contentType, tc.encoding, err, tc.ok)
		}
	}
}

func TestNegotiate(t *testing.T) {
	S, X := prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS
	for _, tc := range []struct {
		accepted []prompb.ReadRequest_ResponseType
		want     prompb.ReadRequest_ResponseType
		err      bool
	}{
		{nil, S, false},
		{[]prompb.ReadRequest_ResponseType{X, S}, X, false},
		{[]prompb.ReadRequest_ResponseType{S, X}, S, false},
		{[]prompb.ReadRequest_ResponseType{3, X}, X, false},
		{[]prompb.ReadRequest_ResponseType{3}, 0, true},
	} {
		got, err := negotiate(tc.accepted)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("negotiate(%v) = %v, %v; want %v, error %v", tc.accepted, got, err, tc.want, tc.err)
		}
	}
}

func TestPlanRead(t *testing.T) {
	q := func(ms ...*prompb.LabelMatcher) *prompb.Query {
		return &prompb.Query{StartTimestampMs: 5, EndTimestampMs: 9, Matchers: ms, Hints: &prompb.ReadHints{StepMs: 60, Grouping: []string{"job"}, By: true}}
	}
	for _, tc := range []struct {
		name      string
		selectors []string
		queries   []*prompb.Query
		direct    bool
		owner     []int
		matchers  []string
	}{
		{"one selector", []string{`{team="a"}`}, []*prompb.Query{q(eqMatcher("__name__", "up"))},
			true, []int{0}, []string{`[__name__="up" team="a"]`}},
		{"selector already present", []string{`{team="a"}`}, []*prompb.Query{q(eqMatcher("team", "a"))},
			true, []int{0}, []string{`[team="a"]`}},
		{"two selectors", []string{`{team="a"}`, `{env="p"}`}, []*prompb.Query{q(eqMatcher("__name__", "up")), q(eqMatcher("__name__", "x"))},
			false, []int{0, 0, 1, 1}, []string{`[__name__="up" team="a"]`, `[__name__="up" env="p"]`, `[__name__="x" team="a"]`, `[__name__="x" env="p"]`}},
		{"two selectors, one contradicts", []string{`{team="a"}`, `{team="b"}`}, []*prompb.Query{q(eqMatcher("team", "a"))},
			true, []int{0}, []string{`[team="a"]`}},
		{"all empty-matching: a name is required", []string{`{secret!="true"}`}, []*prompb.Query{q(eqMatcher("x", ""))},
			true, []int{0}, []string{`[x="" secret!="true" __name__=~".+"]`}},
		{"no matchers", []string{`{team="a"}`}, []*prompb.Query{q()}, false, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planRead(&prompb.ReadRequest{Queries: tc.queries}, prompb.ReadRequest_SAMPLES, enforcer(t, tc.selectors...))
			if err != nil {
				t.Fatal(err)
			}
			if p.direct != tc.direct || !slices.Equal(p.owner, tc.owner) || p.queries != len(tc.queries) {
				t.Errorf("direct %v owner %v queries %d; want %v %v %d", p.direct, p.owner, p.queries, tc.direct, tc.owner, len(tc.queries))
			}
			var got []string
			for _, uq := range p.up.Queries {
				ms, _ := fromLabelMatchers(uq.Matchers)
				got = append(got, fmt.Sprint(ms))
				if uq.StartTimestampMs != 5 || uq.EndTimestampMs != 9 || uq.Hints.StepMs != 60 || !uq.Hints.By || uq.Hints.Grouping[0] != "job" {
					t.Errorf("time range or hints lost: %v", uq)
				}
			}
			if !slices.Equal(got, tc.matchers) {
				t.Errorf("upstream matchers %q, want %q", got, tc.matchers)
			}
		})
	}
}

func TestSeriesFrames(t *testing.T) {
	lbls := []prompb.Label{{Name: "__name__", Value: "x"}}
	chunk := prompb.Chunk{Type: prompb.Chunk_XOR, Data: make([]byte, 400<<10)}
	for _, tc := range []struct {
		chunks int
		frames []int // chunks per frame
	}{
		{0, []int{0}},
		{1, []int{1}},
		{2, []int{2}},
		{3, []int{3}},
		{4, []int{3, 1}},
		{7, []int{3, 3, 1}},
	} {
		s := &prompb.ChunkedSeries{Labels: lbls}
		for range tc.chunks {
			s.Chunks = append(s.Chunks, chunk)
		}
		var got []int
		for _, f := range seriesFrames(s, 3) {
			if f.QueryIndex != 3 || len(f.ChunkedSeries) != 1 || f.ChunkedSeries[0].Labels[0].Value != "x" {
				t.Errorf("bad frame %v", f.QueryIndex)
			}
			got = append(got, len(f.ChunkedSeries[0].Chunks))
		}
		if !slices.Equal(got, tc.frames) {
			t.Errorf("%d chunks: frames %v, want %v", tc.chunks, got, tc.frames)
		}
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, s := range []string{"one", "", strings.Repeat("x", 300)} {
		if err := writeFrame(&buf, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	stream := buf.Bytes()
	fr := newFrameReader(bytes.NewReader(stream), 1024)
	for _, want := range []string{"one", "", strings.Repeat("x", 300)} {
		got, err := fr.next()
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	if _, err := fr.next(); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}

	corrupt := slices.Clone(stream)
	corrupt[2] ^= 1 // in the first checksum
	if _, err := newFrameReader(bytes.NewReader(corrupt), 1024).next(); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt frame: %v", err)
	}
	if _, err := newFrameReader(bytes.NewReader(stream[:5]), 1024).next(); err != io.ErrUnexpectedEOF {
		t.Errorf("cut frame: %v", err)
	}
	big := newFrameReader(bytes.NewReader(stream), 2)
	if _, err := big.next(); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("frame over the limit: %v", err)
	}
}

func TestCappedReader(t *testing.T) {
	if b, err := io.ReadAll(&cappedReader{r: strings.NewReader("12345"), n: 5}); err != nil || string(b) != "12345" {
		t.Errorf("exactly at the cap: %q %v", b, err)
	}
	if _, err := io.ReadAll(&cappedReader{r: strings.NewReader("123456"), n: 5}); !errors.Is(err, errAnswerTooLarge) {
		t.Errorf("over the cap: %v", err)
	}
}

func TestMergeUpstreamErrors(t *testing.T) {
	// An upstream error is relayed; a malformed answer is a 502.
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		status int
	}{
		{"upstream error relayed", func(w http.ResponseWriter) { http.Error(w, "sample limit exceeded", 400) }, 400},
		{"not snappy", func(w http.ResponseWriter) { w.Write([]byte("\xff\xff\xff\xff\xffgarbage")) }, 502},
		{"wrong number of results", func(w http.ResponseWriter) {
			data, _ := (&prompb.ReadResponse{}).Marshal()
			w.Write(snappy.Encode(nil, data))
		}, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &answerUpstream{answer: tc.answer}
			api := New(up, Options{})
			body := encodeRead(t, &prompb.ReadRequest{Queries: []*prompb.Query{{Matchers: []*prompb.LabelMatcher{eqMatcher("__name__", "up")}}}})
			rec := httptest.NewRecorder()
			api.Handle(rec, remotePost("/api/v1/read", body), "/api/v1/read", enforcer(t, `{team="a"}`, `{team="b"}`))
			if rec.Code != tc.status || rec.Body.Len() == 0 {
				t.Errorf("status %d, want %d, body %q", rec.Code, tc.status, rec.Body)
			}
		})
	}
}

type answerUpstream struct{ answer func(w http.ResponseWriter) }

func (u *answerUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.answer(w) }

func (u *answerUpstream) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (u *answerUpstream) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

// The merged answers must not depend on labels arriving sorted.
func TestMergeSamplesUnsortedLabels(t *testing.T) {
	plan := &readPlan{owner: []int{0, 0}, queries: 1}
	a := ts("team", "b", "__name__", "up")
	b := ts("__name__", "up", "team", "b")
	c := ts("__name__", "up", "team", "a")
	got := mergeSamples(plan, []*prompb.QueryResult{{Timeseries: []*prompb.TimeSeries{&a}}, {Timeseries: []*prompb.TimeSeries{&b, &c}}})
	if len(got) != 1 || len(got[0].Timeseries) != 2 {
		t.Fatalf("got %v", got)
	}
	if first := seriesLabels(got[0].Timeseries[0].Labels); first.Get("team") != "a" {
		t.Errorf("not sorted: %v", first)
	}
}
