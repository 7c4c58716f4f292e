package e2e

// Native histograms (Prometheus 3): the oracle test's native histogram
// data and corpus section are chosen here, and the paths that carry them
// outside PromQL answers follow: remote read (sampled and streamed
// chunks) and federate (the protobuf exposition format).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/promgate/promgate/internal/testenv"
)

// The corpus' native histogram section: between these lines, expressions
// on the native histogram series, which the data has on Prometheus 3 only
// (they are loaded by remote write, which 2.x takes only with a feature
// flag).
const (
	nativeDirective    = "@native_histograms"
	nativeEndDirective = "@end native_histograms"
)

// nativeSelection keeps the corpus entries the generation can run: all on
// Prometheus 3, none of the native histogram section on 2.x.
func nativeSelection(native bool, corpus []corpusEntry) []corpusEntry {
	if native {
		return corpus
	}
	var out []corpusEntry
	for _, e := range corpus {
		if !e.native {
			out = append(out, e)
		}
	}
	return out
}

// nativeFloor is what a policy's answers to the native histogram section
// must show, as floor for the whole corpus: answers with data, answers
// holding native histogram samples (not only the floats functions make of
// them), and answers the shared Prometheus gives otherwise. The figures
// are today's counts less about 10 %.
type nativeFloor struct {
	nonEmpty, histograms, differing int
}

// checkNativeFloor fails when the policy's answers to the native
// histogram section prove less than its nativeFloor.
func checkNativeFloor(t *testing.T, p *testPolicy, outcomes []outcome) {
	var nonEmpty, histograms, differing, total int
	for _, o := range outcomes {
		if o.c.policy != p || !o.c.native {
			continue
		}
		total++
		if o.nonEmpty {
			nonEmpty++
		}
		if o.histograms {
			histograms++
		}
		if o.differs {
			differing++
		}
	}
	f := p.nativeFloor
	t.Logf("policy %s, native histograms: %d of %d answers hold data (floor %d), %d hold histograms (floor %d), %d differ from the shared Prometheus' (floor %d)",
		p.id, nonEmpty, total, f.nonEmpty, histograms, f.histograms, differing, f.differing)
	if nonEmpty < f.nonEmpty || histograms < f.histograms {
		t.Errorf("policy %s: the native histogram section's answers hold data %d times (floor %d), histograms %d times (floor %d): the corpus or the data lost what it proves",
			p.id, nonEmpty, f.nonEmpty, histograms, f.histograms)
	}
	if differing < f.differing {
		t.Errorf("policy %s: only %d native histogram answers differ from the shared Prometheus', below the floor of %d", p.id, differing, f.differing)
	}
}

// holdsHistograms reports whether a successful query answer holds a
// native histogram sample.
func holdsHistograms(kind answerKind, r response) bool {
	var e envelope
	if kind != kindQuery || r.err != nil || !bytes.Contains(r.body, []byte(`"histogram`)) ||
		json.Unmarshal(r.body, &e) != nil || e.Status != "success" {
		return false
	}
	var d queryData
	if json.Unmarshal(e.Data, &d) != nil {
		return false
	}
	series, err := normalizeResult(d.ResultType, d.Result)
	if err != nil {
		return false
	}
	for _, s := range series {
		for _, p := range s.points {
			if p.H != nil {
				return true
			}
		}
	}
	return false
}

// checkNativeSamples asserts that a Prometheus holds every native
// histogram sample of ds: as many per series as generated.
func checkNativeSamples(e endpoint, ds *testenv.Dataset) error {
	names := map[string]bool{}
	var want int
	for _, s := range ds.NativeSeries() {
		names[s.Name()] = true
		want += len(s.Histograms)
	}
	if want == 0 {
		return nil
	}
	var quoted []string
	for n := range names {
		quoted = append(quoted, regexpQuote(n))
	}
	// The range reaches back to the first sample: (t-2h-1m, t].
	q := fmt.Sprintf(`sum(count_over_time({__name__=~%q}[%ds]))`, strings.Join(quoted, "|"), testenv.Span+60)
	r := e.call(context.Background(), http.MethodGet, "/api/v1/query", url.Values{"query": {q}, "time": {strconv.Itoa(testenv.BaseTime)}})
	if r.err != nil {
		return r.err
	}
	var env struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value point `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil || env.Status != "success" || len(env.Data.Result) != 1 {
		return fmt.Errorf("native histogram check: %d %s", r.code, truncate(string(r.body), 300))
	}
	if got := env.Data.Result[0].Value.V; got != strconv.Itoa(want) {
		return fmt.Errorf("holds %s native histogram samples, generated %d", got, want)
	}
	return nil
}

// regexpQuote escapes the dots of a metric name for a PromQL regex.
func regexpQuote(s string) string { return strings.ReplaceAll(s, ".", `\.`) }

// TestCompareHistograms checks the oracle's comparison of native
// histogram samples without any server: a histogram differing in a
// bucket, a bound, its count or its kind is a difference.
func TestCompareHistograms(t *testing.T) {
	h := func(count, sum string, buckets ...string) string {
		var bs []string
		for _, b := range buckets {
			bs = append(bs, "["+b+"]")
		}
		return fmt.Sprintf(`{"count":%q,"sum":%q,"buckets":[%s]}`, count, sum, strings.Join(bs, ","))
	}
	base := h("6", "1.5", `0,"0.5","1","2"`, `0,"1","2","4"`)
	vector := func(sample string) json.RawMessage {
		return json.RawMessage(`{"resultType":"vector","result":[{"metric":{"a":"1"},` + sample + `}]}`)
	}
	matrix := func(values, histograms string) json.RawMessage {
		return json.RawMessage(`{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[` + values + `],"histograms":[` + histograms + `]}]}`)
	}
	for _, c := range []struct {
		name  string
		o, g  json.RawMessage
		equal bool
	}{
		{"same histogram", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + base + `]`), true},
		{"sum within tolerance", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("6", "1.5000000000001", `0,"0.5","1","2"`, `0,"1","2","4"`) + `]`), true},
		{"bucket count", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("6", "1.5", `0,"0.5","1","2"`, `0,"1","2","5"`) + `]`), false},
		{"bucket bound", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("6", "1.5", `0,"0.5","1","2"`, `0,"1","2.5","4"`) + `]`), false},
		{"boundary rule", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("6", "1.5", `3,"0.5","1","2"`, `0,"1","2","4"`) + `]`), false},
		{"a bucket less", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("6", "1.5", `0,"0.5","1","2"`) + `]`), false},
		{"count", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("7", "1.5", `0,"0.5","1","2"`, `0,"1","2","4"`) + `]`), false},
		{"histogram against float", vector(`"histogram":[10,` + base + `]`), vector(`"value":[10,"6"]`), false},
		{"matrix same", matrix(`[1,"2"]`, `[2,`+base+`]`), matrix(`[1,"2"]`, `[2,`+base+`]`), true},
		{"matrix histogram differs", matrix(``, `[2,`+base+`]`), matrix(``, `[2,`+h("6", "2", `0,"0.5","1","2"`, `0,"1","2","4"`)+`]`), false},
		{"matrix histogram missing", matrix(`[1,"2"]`, `[2,`+base+`]`), matrix(`[1,"2"]`, ``), false},
		{"matrix histogram time", matrix(``, `[2,`+base+`]`), matrix(``, `[3,`+base+`]`), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			diff := compareQueryData(c.o, c.g)
			if (diff == "") != c.equal {
				t.Errorf("equal %v, diff %q", c.equal, diff)
			}
		})
	}
	// An answer of histograms is told from one without.
	if !holdsHistograms(kindQuery, response{code: 200, body: []byte(`{"status":"success","data":` + string(vector(`"histogram":[10,`+base+`]`)) + `}`)}) ||
		holdsHistograms(kindQuery, response{code: 200, body: []byte(`{"status":"success","data":` + string(vector(`"value":[10,"1"]`)) + `}`)}) {
		t.Error("holdsHistograms")
	}
}

// nativeStack is a Prometheus 3 holding the native histogram series of the
// generated data (at their time, two hours ending at BaseTime) and the
// last sample of each again at the time of the test (for federate, which
// reads the last five minutes), with promgate in front: ann may see
// {team="a"}, bert {team="b"} and the shared node histograms (two
// selectors: promgate merges the answers of both).
type nativeStack struct {
	prom, gate *server
	data       *Dataset // the native histogram series only
	now        int64    // ms, the time of the recent samples
	ann, bert  remoteUser
}

func startNativeStack(t *testing.T) *nativeStack {
	t.Helper()
	skipIfShort(t)
	requirePromgate(t)
	onlyPrometheus3(t, "native histograms are written and read on Prometheus 3")
	dir := t.TempDir()
	full := GenerateWith(GenerateOptions{NativeHistograms: true})
	ds := &Dataset{}
	for _, f := range full.Families {
		if f.Native {
			ds.Families = append(ds.Families, f)
		}
	}
	s := &nativeStack{
		data: ds,
		ann:  remoteUser{name: "ann", selectors: []string{`{team="a"}`}},
		bert: remoteUser{name: "bert", selectors: []string{`{team="b"}`, `{__name__=~"node_.*", shared="true"}`}},
	}
	s.prom = startRemotePrometheus(t, "prometheus-native", dir, "global:\n  scrape_interval: 1m\n"+testenv.NativeHistogramConfig,
		"--web.enable-remote-write-receiver")
	if err := ds.RemoteWrite(context.Background(), s.prom.url); err != nil {
		t.Fatal(err)
	}
	if err := checkNativeSamples(endpoint{name: "prometheus-native", url: s.prom.url}, ds); err != nil {
		t.Fatal(err)
	}
	// The last sample of every series again, now.
	s.now = time.Now().UnixMilli()
	for _, req := range ds.WriteRequests(50) {
		for i := range req.Timeseries {
			hs := req.Timeseries[i].Histograms
			last := hs[len(hs)-1]
			last.Timestamp = s.now
			req.Timeseries[i].Histograms = []prompb.Histogram{last}
		}
		if code, body := rwPostWrite(t, s.prom.url, remoteUser{}, req); code/100 != 2 {
			t.Fatalf("writing the recent samples: %d %s", code, body)
		}
	}
	s.gate = startRemotePromgate(t, dir, s.prom.url, s.ann, s.bert)
	return s
}

// visible are the native histogram series u may see, as rrLabels writes
// label sets, sorted.
func (s *nativeStack) visible(t *testing.T, u remoteUser) []string {
	sels, err := ParseSelectors(u.selectors...)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sr := range s.data.Filter(sels).NativeSeries() {
		out = append(out, rrLabels(promLabels(sr.Labels)))
	}
	slices.Sort(out)
	return out
}

// promLabels are a label set as prompb labels, sorted by name.
func promLabels(m map[string]string) []prompb.Label {
	out := make([]prompb.Label, 0, len(m))
	for n, v := range m {
		out = append(out, prompb.Label{Name: n, Value: v})
	}
	slices.SortFunc(out, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// nhRead is a remote read answer decoded whatever its response type:
// per query, each series' label set and its samples (floats and
// histograms, rendered exactly), a series split across frames joined.
type nhRead [][]nhSeries

type nhSeries struct {
	labels  string
	samples []string
}

// nativeRemoteRead sends one query of matchers over the generated time
// range, asking for rt, and decodes the answer; frames says how many
// frames a streamed answer had.
func nativeRemoteRead(base string, u *remoteUser, rt prompb.ReadRequest_ResponseType, matchers ...*prompb.LabelMatcher) (out nhRead, frames int, err error) {
	req := &prompb.ReadRequest{
		Queries:               []*prompb.Query{{StartTimestampMs: testenv.StartTime * 1000, EndTimestampMs: testenv.BaseTime * 1000, Matchers: matchers}},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt},
	}
	data, err := req.Marshal()
	if err != nil {
		return nil, 0, err
	}
	hr, err := http.NewRequest("POST", base+"/api/v1/read", bytes.NewReader(snappy.Encode(nil, data)))
	if err != nil {
		return nil, 0, err
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	if u != nil {
		hr.SetBasicAuth(u.name, u.password())
	}
	resp, err := httpClient.Do(hr)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != 200 {
		return nil, 0, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	out = make(nhRead, len(req.Queries))
	streamed := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-streamed-protobuf")
	if streamed != (rt == prompb.ReadRequest_STREAMED_XOR_CHUNKS) {
		return nil, 0, fmt.Errorf("asked for %v, answered Content-Type %q", rt, resp.Header.Get("Content-Type"))
	}
	if streamed {
		frames, err = nhDecodeStreamed(body, out)
		return out, frames, err
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, 0, err
	}
	var rr prompb.ReadResponse
	if err := rr.Unmarshal(raw); err != nil {
		return nil, 0, err
	}
	if len(rr.Results) != len(req.Queries) {
		return nil, 0, fmt.Errorf("%d results for %d queries", len(rr.Results), len(req.Queries))
	}
	for i, res := range rr.Results {
		for _, ts := range res.Timeseries {
			sr := nhSeries{labels: rrLabels(ts.Labels)}
			for _, smp := range ts.Samples {
				sr.samples = append(sr.samples, fmt.Sprintf("%d=%x", smp.Timestamp, math.Float64bits(smp.Value)))
			}
			for _, h := range ts.Histograms {
				fh := h.ToFloatHistogram()
				if !h.IsFloatHistogram() {
					fh = h.ToIntHistogram().ToFloat(nil)
				}
				sr.samples = append(sr.samples, fmt.Sprintf("%d=%s", h.Timestamp, fh.String()))
			}
			out[i] = append(out[i], sr)
		}
	}
	return out, 0, nil
}

// nhDecodeStreamed reads the frames of a streamed answer, decoding XOR,
// histogram and float histogram chunks; histograms are rendered as float
// histograms, as the sampled answer is, so that both compare.
func nhDecodeStreamed(body []byte, out nhRead) (int, error) {
	r := bufio.NewReader(bytes.NewReader(body))
	last := map[int64]string{}
	frames := 0
	for {
		size, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return frames, nil
		}
		if err != nil {
			return frames, err
		}
		frames++
		var crc [4]byte
		if _, err := io.ReadFull(r, crc[:]); err != nil {
			return frames, err
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return frames, err
		}
		if crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)) != binary.BigEndian.Uint32(crc[:]) {
			return frames, fmt.Errorf("frame checksum mismatch")
		}
		var f prompb.ChunkedReadResponse
		if err := f.Unmarshal(data); err != nil {
			return frames, err
		}
		if f.QueryIndex < 0 || f.QueryIndex >= int64(len(out)) {
			return frames, fmt.Errorf("frame for query %d", f.QueryIndex)
		}
		for _, cs := range f.ChunkedSeries {
			id := rrLabels(cs.Labels)
			var samples []string
			for _, c := range cs.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Type), c.Data)
				if err != nil {
					return frames, fmt.Errorf("chunk of type %v: %v", c.Type, err)
				}
				it := chk.Iterator(nil)
				for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
					switch vt {
					case chunkenc.ValFloat:
						ts, v := it.At()
						samples = append(samples, fmt.Sprintf("%d=%x", ts, math.Float64bits(v)))
					case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
						ts, fh := it.AtFloatHistogram(nil)
						// The chunk's own hints are not carried by
						// the sampled answer.
						fh.CounterResetHint = 0
						samples = append(samples, fmt.Sprintf("%d=%s", ts, fh.String()))
					}
				}
				if it.Err() != nil {
					return frames, it.Err()
				}
			}
			q := f.QueryIndex
			if n := len(out[q]); n > 0 && last[q] == id {
				out[q][n-1].samples = append(out[q][n-1].samples, samples...)
			} else {
				out[q] = append(out[q], nhSeries{labels: id, samples: samples})
			}
			last[q] = id
		}
	}
}

// mayRead tells, from a series as rrLabels or the text format write it,
// whether the tests' users may see it: ann team a, bert team b and the
// shared node series.
func (u remoteUser) mayRead(series string) bool {
	switch u.name {
	case "ann":
		return strings.Contains(series, `team="a"`)
	case "bert":
		return strings.Contains(series, `team="b"`) || strings.Contains(series, "node_") && strings.Contains(series, `shared="true"`)
	}
	return false
}

// TestNativeHistogramsRemoteRead: a tenant's remote read of native
// histograms through promgate, sampled and streamed, answers exactly its
// histogram series with every sample the upstream holds, never another
// tenant's: for a one-selector policy (the request passes rewritten, the
// answer streamed through) and a two-selector one (promgate merges the
// answers of both selectors and frames the chunks anew).
func TestNativeHistogramsRemoteRead(t *testing.T) {
	s := startNativeStack(t)
	names := &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: ".+"}
	// What the upstream holds, read directly: the expected answer of a
	// user is its part of this.
	for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		all, _, err := nativeRemoteRead(s.prom.url, nil, rt, names)
		if err != nil {
			t.Fatalf("%v, direct: %v", rt, err)
		}
		if len(all[0]) != len(s.data.NativeSeries()) {
			t.Fatalf("%v, direct: %d series, %d written", rt, len(all[0]), len(s.data.NativeSeries()))
		}
		byLabels := map[string]nhSeries{}
		for _, sr := range all[0] {
			byLabels[sr.labels] = sr
		}
		for _, u := range []remoteUser{s.ann, s.bert} {
			t.Run(fmt.Sprintf("%s %v", u.name, rt), func(t *testing.T) {
				want := s.visible(t, u)
				got, frames, err := nativeRemoteRead(s.gate.url, &u, rt, names)
				if err != nil {
					t.Fatal(err)
				}
				var gotLabels []string
				histograms := 0
				for _, sr := range got[0] {
					gotLabels = append(gotLabels, sr.labels)
					direct := byLabels[sr.labels]
					if !slices.Equal(sr.samples, direct.samples) {
						t.Errorf("%s: %d samples through promgate, %d upstream, or different ones", sr.labels, len(sr.samples), len(direct.samples))
					}
					for _, smp := range sr.samples {
						if strings.Contains(smp, "{count:") {
							histograms++
						}
					}
				}
				if !slices.Equal(gotLabels, want) {
					t.Fatalf("series through promgate:\n%s\nwant:\n%s", strings.Join(gotLabels, "\n"), strings.Join(want, "\n"))
				}
				// Two hours of samples, all histograms (the recent one
				// is after the time range read).
				if perSeries := testenv.Span/testenv.Step + 1; histograms != len(want)*perSeries {
					t.Errorf("%d histogram samples, want %d", histograms, len(want)*perSeries)
				}
				if rt == prompb.ReadRequest_STREAMED_XOR_CHUNKS && frames < len(want) {
					t.Errorf("%d frames for %d series", frames, len(want))
				}
				for _, l := range gotLabels {
					if !u.mayRead(l) {
						t.Errorf("%s read %s", u.name, l)
					}
				}
			})
		}
	}
	// Matchers naming another team's series select nothing.
	for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		got, _, err := nativeRemoteRead(s.gate.url, &s.ann, rt, names, &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "team", Value: "b"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got[0]) != 0 {
			t.Errorf("%v: ann read %d series of team b", rt, len(got[0]))
		}
	}
}

// TestNativeHistogramsFederate: federate through promgate in the protobuf
// exposition format Prometheus negotiates for native histograms answers a
// tenant's histogram series, each with its native histogram, and no other
// tenant's; the text format alike (without the native histograms it cannot
// carry). Without match[], the empty answer has the negotiated format.
func TestNativeHistogramsFederate(t *testing.T) {
	s := startNativeStack(t)
	const delimited = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
	federate := func(u remoteUser, accept string, matches ...string) (string, []byte) {
		t.Helper()
		q := url.Values{"match[]": matches}
		req, err := http.NewRequest("GET", s.gate.url+"/federate?"+q.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(u.name, u.password())
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("federate %v as %s: %d %s %v", matches, u.name, resp.StatusCode, body, err)
		}
		return resp.Header.Get("Content-Type"), body
	}
	for _, u := range []remoteUser{s.ann, s.bert} {
		t.Run(u.name, func(t *testing.T) {
			ct, body := federate(u, delimited, `{__name__=~".+"}`)
			if !strings.HasPrefix(ct, "application/vnd.google.protobuf") || !strings.Contains(ct, "encoding=delimited") {
				t.Fatalf("Content-Type %q, want the delimited protobuf format", ct)
			}
			dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.Format(ct))
			var got []string
			for {
				var mf dto.MetricFamily
				if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				for _, m := range mf.GetMetric() {
					lbls := map[string]string{"__name__": mf.GetName()}
					for _, lp := range m.GetLabel() {
						lbls[lp.GetName()] = lp.GetValue()
					}
					key := rrLabels(promLabels(lbls))
					got = append(got, key)
					h := m.GetHistogram()
					if mf.GetType() != dto.MetricType_HISTOGRAM && mf.GetType() != dto.MetricType_GAUGE_HISTOGRAM || h == nil {
						t.Errorf("%s: type %v, no histogram", key, mf.GetType())
						continue
					}
					// A native histogram: spans. Custom buckets are
					// written as classic buckets.
					if mf.GetName() == testenv.NativeRequestSize && len(h.GetBucket()) == 0 ||
						mf.GetName() != testenv.NativeRequestSize && len(h.GetPositiveSpan()) == 0 {
						t.Errorf("%s: not a native histogram: %v", key, h)
					}
					if m.GetTimestampMs() != s.now {
						t.Errorf("%s: sample of %d, want the recent one (%d)", key, m.GetTimestampMs(), s.now)
					}
				}
			}
			slices.Sort(got)
			if want := s.visible(t, u); !slices.Equal(got, want) {
				t.Fatalf("federated series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// The text format carries no native histogram; whatever it
			// holds is the tenant's.
			_, text := federate(u, "", `{__name__=~".+"}`)
			for _, line := range strings.Split(string(text), "\n") {
				if strings.Contains(line, "team=") && !u.mayRead(line) {
					t.Errorf("%s's text federation holds %s", u.name, line)
				}
			}
			// Asking for another team's series: nothing.
			other := map[string]string{"ann": `{team="b"}`, "bert": `{team="a", job="api"}`}[u.name]
			if _, body := federate(u, delimited, other); len(body) != 0 {
				t.Errorf("%s federated %d bytes of %s", u.name, len(body), other)
			}
		})
	}
	// Without match[]: empty, in the format Prometheus would answer.
	ct, body := federate(s.ann, delimited)
	if len(body) != 0 || !strings.HasPrefix(ct, "application/vnd.google.protobuf") {
		t.Errorf("federate without match[]: Content-Type %q, %d bytes", ct, len(body))
	}
	direct, err := http.NewRequest("GET", s.prom.url+"/federate", nil)
	if err != nil {
		t.Fatal(err)
	}
	direct.Header.Set("Accept", delimited)
	resp, err := httpClient.Do(direct)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if upstream := resp.Header.Get("Content-Type"); ct != upstream {
		t.Errorf("federate without match[]: Content-Type %q, Prometheus answers %q", ct, upstream)
	}
}

// TestNativeHistogramsReaderPrometheus: a Prometheus 3.16 whose
// remote_read points at promgate (it asks for streamed chunks) answers
// PromQL over native histograms exactly as the upstream answers the same
// query restricted to the tenant's series, for a one-selector and a
// two-selector policy.
func TestNativeHistogramsReaderPrometheus(t *testing.T) {
	s := startNativeStack(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		u remoteUser
		// restrict is the tenant's part of the upstream, as a selector
		// suffix for each expression's metric.
		exprs map[string]string // reader's expression -> the upstream's
	}{
		{s.ann, map[string]string{
			`http_request_latency_seconds`:                                            `http_request_latency_seconds{team="a"}`,
			`sum by (method) (rate(http_request_latency_seconds[5m]))`:                `sum by (method) (rate(http_request_latency_seconds{team="a"}[5m]))`,
			`histogram_quantile(0.9, sum(rate(http_request_size_bytes[10m])))`:        `histogram_quantile(0.9, sum(rate(http_request_size_bytes{team="a"}[10m])))`,
			`histogram_count({__name__=~"node_disk.*|http_request_latency_seconds"})`: `histogram_count({__name__=~"node_disk.*|http_request_latency_seconds", team="a"})`,
			`count({__name__=~".+"})`:                                                 `count({__name__=~".+", team="a"})`,
		}},
		{s.bert, map[string]string{
			`node_disk_io_seconds`:                 `node_disk_io_seconds{team="b"} or node_disk_io_seconds{shared="true"}`,
			`sum by (team) (node_disk_io_seconds)`: `sum by (team) (node_disk_io_seconds{team="b"} or node_disk_io_seconds{shared="true"})`,
			`histogram_quantile(0.5, sum by (env) (rate(http_request_latency_seconds[5m])))`: `histogram_quantile(0.5, sum by (env) (rate(http_request_latency_seconds{team="b"}[5m])))`,
			`count({__name__=~".+"})`: `count({__name__=~".+", team="b"} or {__name__=~"node_.*", shared="true"})`,
		}},
	} {
		t.Run(tc.u.name, func(t *testing.T) {
			reader := startRemotePrometheus(t, "reader-"+tc.u.name, dir, fmt.Sprintf(`global:
  scrape_interval: 1m
remote_read:
  - url: %s/api/v1/read
    read_recent: true
    basic_auth:
      username: %s
      password: %s
`, s.gate.url, tc.u.name, tc.u.password()))
			upstream := endpoint{name: "upstream", url: s.prom.url}
			own := endpoint{name: "reader", url: reader.url}
			for expr, want := range tc.exprs {
				for _, params := range []url.Values{
					{"time": {strconv.Itoa(testenv.BaseTime - 600)}},
					{"start": {strconv.Itoa(testenv.BaseTime - 3600)}, "end": {strconv.Itoa(testenv.BaseTime)}, "step": {"120"}},
				} {
					path := "/api/v1/query"
					if params.Has("step") {
						path = "/api/v1/query_range"
					}
					q := func(e string) url.Values {
						v := url.Values{"query": {e}}
						for k, vs := range params {
							v[k] = vs
						}
						return v
					}
					o := upstream.call(context.Background(), http.MethodGet, path, q(want))
					g := own.call(context.Background(), http.MethodGet, path, q(expr))
					if resultCount(kindQuery, o) == 0 {
						t.Fatalf("%s %s: the upstream answers nothing: %s", path, want, truncate(string(o.body), 300))
					}
					if d := compareAnswers(kindQuery, o, g); d != "" {
						t.Errorf("%s %s: %s\n    upstream: %s\n    reader:   %s", path, expr, d, truncate(string(o.body), 400), truncate(string(g.body), 400))
					}
				}
			}
		})
	}
}
