package prometheus

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/golang/snappy"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/promgate/promgate/internal/apierror"
)

// withSeriesCache gives the test a cache of its own.
func withSeriesCache(t *testing.T) *seriesCache {
	t.Helper()
	saved := acceptedSeries
	acceptedSeries = newSeriesCache()
	t.Cleanup(func() { acceptedSeries = saved })
	return acceptedSeries
}

func v1Request(t testing.TB, series ...prompb.TimeSeries) []byte {
	t.Helper()
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// writeStatus is the status err answers with, 0 for none.
func writeStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var e *apierror.Error
	if !errorsAs(err, &e) {
		t.Fatalf("not an API error: %v", err)
	}
	return e.Status()
}

// The decisions on a request are the same whether its series were seen
// before or not; a series is remembered only once accepted, under the
// policy and the limits that accepted it.
func TestSeriesCacheV1(t *testing.T) {
	c := withSeriesCache(t)
	enf := writeEnforcer(t, `{team="a"}`)
	lim := DefaultWriteLimits
	ok := v1Request(t, ts("__name__", "up", "job", "x", "team", "a"), ts("__name__", "up", "job", "y", "team", "a"))
	// One byte differs from an accepted series: "b" for "a".
	oneByte := v1Request(t, ts("__name__", "up", "job", "x", "team", "b"))
	withExemplar := ts("__name__", "up", "job", "x", "team", "a")
	withExemplar.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "0123456789abcdef"}}, Value: 1, Timestamp: 1000}}
	for i := range 2 {
		if err := checkWriteV1(ok, enf, lim); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if got := c.len(); i == 0 && got != 2 {
			t.Fatalf("%d series remembered, want 2", got)
		}
		if got := writeStatus(t, checkWriteV1(oneByte, enf, lim)); got != http.StatusForbidden {
			t.Errorf("round %d: a series one byte away from an accepted one: status %d, want 403", i, got)
		}
		// A remembered series' exemplars are still bounded.
		short := lim
		short.MaxLabelValueLength = 8
		if got := writeStatus(t, checkWriteV1(v1Request(t, withExemplar), enf, short)); got != http.StatusBadRequest {
			t.Errorf("round %d: an exemplar label beyond the limit: status %d, want 400", i, got)
		}
	}
	// The two, and the first under the shorter limit (its exemplar,
	// not it, was refused); not the refused one.
	if got := c.len(); got != 3 {
		t.Errorf("%d series remembered, want 3", got)
	}

	// Another policy (as on reload: a new Enforcer, even of the same
	// selectors) decides anew.
	other := writeEnforcer(t, `{team="b"}`)
	if got := writeStatus(t, checkWriteV1(ok, other, lim)); got != http.StatusForbidden {
		t.Errorf("under another policy: status %d, want 403", got)
	}
	same := writeEnforcer(t, `{team="a"}`)
	key, _ := seriesKey(nil, seriesKeyV1, same, lim, 0)
	if prefix, _ := seriesKey(nil, seriesKeyV1, enf, lim, 0); string(key) == string(prefix) {
		t.Errorf("two Enforcers of the same policy share keys")
	}
	// Other limits too.
	tight := lim
	tight.MaxLabelValueLength = 1
	if got := writeStatus(t, checkWriteV1(ok, enf, tight)); got != http.StatusBadRequest {
		t.Errorf("under a tighter limit: status %d, want 400", got)
	}
	tight = lim
	tight.MaxLabelsPerSeries = 2
	if got := writeStatus(t, checkWriteV1(ok, enf, tight)); got != http.StatusBadRequest {
		t.Errorf("under fewer labels per series: status %d, want 400", got)
	}
}

// Label fields split or ordered otherwise are other bytes: decided on
// anew, with the same decision.
func TestSeriesCacheV1Encodings(t *testing.T) {
	withSeriesCache(t)
	enf := writeEnforcer(t, `{team="a"}`)
	lim := DefaultWriteLimits
	for _, s := range []prompb.TimeSeries{
		ts("__name__", "up", "team", "a"),
		ts("team", "a", "__name__", "up"),
		ts("__name__", "up", "team", "a", "team", "b"),
		ts("__name__", "up", "team", "b", "team", "a"),
		ts("__name__", "up", "team", "ab"),
		ts("__name__", "upteam", "", "a"),
	} {
		raw := v1Request(t, s)
		for i := range 2 {
			err := checkWriteV1(raw, enf, lim)
			if ref := refCheckV1(raw, enf, lim); writeStatus(t, err) != writeStatus(t, ref) {
				t.Errorf("%v, round %d: %v; over the whole decoding: %v", s.Labels, i, err, ref)
			}
		}
	}
}

func TestSeriesCacheV2(t *testing.T) {
	c := withSeriesCache(t)
	enf := writeEnforcer(t, `{team="a", __type__!="counter"}`)
	lim := DefaultWriteLimits
	req := func(typ writev2.Metadata_MetricType, unit string, lbls ...string) []byte {
		b := newV2()
		s := b.series(lbls...)
		s.Metadata.Type = typ
		if unit != "" {
			s.Metadata.UnitRef = b.st.Symbolize(unit)
		}
		return b.encode(t)
	}
	gauge := req(writev2.Metadata_METRIC_TYPE_GAUGE, "", "__name__", "up", "team", "a")
	for i := range 2 {
		if err := checkWriteV2(gauge, enf, lim); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if got := c.len(); got != 1 {
			t.Fatalf("round %d: %d series remembered, want 1", i, got)
		}
		for _, tc := range []struct {
			name string
			raw  []byte
			want int
		}{
			// The same labels, another type: stored with __type__="counter".
			{"a counter", req(writev2.Metadata_METRIC_TYPE_COUNTER, "", "__name__", "up", "team", "a"), http.StatusForbidden},
			{"one byte away", req(writev2.Metadata_METRIC_TYPE_GAUGE, "", "__name__", "up", "team", "b"), http.StatusForbidden},
			{"a label more", req(writev2.Metadata_METRIC_TYPE_GAUGE, "", "__name__", "up", "team", "a", "__type__", "counter"), http.StatusForbidden},
			{"labels run together", req(writev2.Metadata_METRIC_TYPE_GAUGE, "", "__name__", "upteam", "", "a"), http.StatusBadRequest},
		} {
			err := checkWriteV2(tc.raw, enf, lim)
			if got := writeStatus(t, err); got != tc.want {
				t.Errorf("round %d, %s: status %d (%v), want %d", i, tc.name, got, err, tc.want)
			}
			if ref := refCheckV2(tc.raw, enf, lim); writeStatus(t, ref) != tc.want {
				t.Errorf("round %d, %s: the whole decoding answers %v", i, tc.name, ref)
			}
		}
	}
	// With a unit: __unit__ is one more label; and another policy.
	withUnit := req(writev2.Metadata_METRIC_TYPE_GAUGE, "seconds", "__name__", "up", "team", "a")
	if err := checkWriteV2(withUnit, writeEnforcer(t, `{team="a", __unit__=""}`), lim); err == nil {
		t.Errorf("a series with unit seconds accepted under __unit__=\"\"")
	}
	if got := writeStatus(t, checkWriteV2(gauge, writeEnforcer(t, `{team="b"}`), lim)); got != http.StatusForbidden {
		t.Errorf("under another policy: status %d, want 403", got)
	}
	tight := lim
	tight.MaxLabelNameLength = 4
	if got := writeStatus(t, checkWriteV2(gauge, enf, tight)); got != http.StatusBadRequest {
		t.Errorf("under a tighter limit: status %d, want 400", got)
	}
}

// The cache keeps two generations of at most seriesCacheGenerationBytes.
func TestSeriesCacheBound(t *testing.T) {
	c := newSeriesCache()
	key := make([]byte, 1000)
	n := 3 * seriesCacheGenerationBytes / (len(key) + seriesEntryOverhead)
	for i := range n {
		key[0], key[1], key[2] = byte(i), byte(i>>8), byte(i>>16)
		c.add(key)
	}
	if max := 2 * seriesCacheGenerationBytes / (len(key) + seriesEntryOverhead); c.len() > max {
		t.Errorf("%d entries, more than %d", c.len(), max)
	}
	// The last one is there; the first was dropped.
	if !c.has(key) {
		t.Errorf("the last key added is not found")
	}
	key[0], key[1], key[2] = 0, 0, 0
	if c.has(key) {
		t.Errorf("the first key added is still found")
	}
	if c.add(make([]byte, maxCachedSeriesKey+1)); c.has(make([]byte, maxCachedSeriesKey+1)) {
		t.Errorf("a key longer than maxCachedSeriesKey is remembered")
	}
}

// Requests one after the other, of other sizes, reuse the buffers of the
// previous ones: each is forwarded as it was sent.
func TestRemoteWriteBuffersReused(t *testing.T) {
	enf := enforcer(t, `{team="a"}`)
	up := &writeUpstream{version: "3.16.0"}
	api := New(up, Options{})
	var sent [][]byte
	for i, n := range []int{500, 3, 2000, 1, 50} {
		var series []prompb.TimeSeries
		for j := range n {
			series = append(series, ts("__name__", "up", "i", strconv.Itoa(i), "j", strconv.Itoa(j), "team", "a"))
		}
		body := snappy.Encode(nil, v1Request(t, series...))
		sent = append(sent, body)
		rec := httptest.NewRecorder()
		api.Handle(rec, remotePost("/api/v1/write", bytes.Clone(body), "Content-Type", "application/x-protobuf", "Content-Encoding", "snappy"), "/api/v1/write", enf)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("request %d: status %d: %s", i, rec.Code, rec.Body)
		}
	}
	if len(up.bodies) != len(sent) {
		t.Fatalf("%d requests forwarded, want %d", len(up.bodies), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(up.bodies[i], sent[i]) {
			t.Errorf("request %d: forwarded %d bytes other than the %d sent", i, len(up.bodies[i]), len(sent[i]))
		}
	}
}

// plainSample accepts only samples the generated code decodes without
// error and without unknown fields, and the ones agents send.
func TestPlainSample(t *testing.T) {
	agent := func(s prompb.Sample) []byte {
		b, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"empty", nil, true},
		{"a sample", agent(prompb.Sample{Value: 1.5, Timestamp: 1_700_000_000_000}), true},
		{"a negative timestamp (10 bytes)", agent(prompb.Sample{Value: -1, Timestamp: -1}), true},
		{"a value alone", agent(prompb.Sample{Value: 2}), true},
		{"a field twice", append(agent(prompb.Sample{Value: 2}), agent(prompb.Sample{Value: 3})...), true},
		{"an unknown field", append(agent(prompb.Sample{Value: 2}), 0x18, 1), false},
		{"a short value", []byte{0x09, 1, 2, 3}, false},
		{"a varint of 11 bytes", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, false},
		{"a truncated varint", []byte{0x10, 0xff}, false},
		{"a tag in two bytes", []byte{0x89, 0x00, 1, 2, 3, 4, 5, 6, 7, 8}, false},
		{"the value as a varint", []byte{0x08, 1}, false},
	} {
		if got := plainSample(tc.data); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// Whatever the bytes, plain means decoded whole.
	rnd := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 24)
	plain := 0
	for range 200_000 {
		n := rnd.IntN(len(data) + 1)
		for j := range n {
			// Mostly the bytes of samples.
			switch rnd.IntN(4) {
			case 0:
				data[j] = 0x09
			case 1:
				data[j] = 0x10
			default:
				data[j] = byte(rnd.Uint32())
			}
		}
		if !plainSample(data[:n]) {
			continue
		}
		plain++
		var s prompb.Sample
		if err := s.Unmarshal(data[:n]); err != nil || len(s.XXX_unrecognized) > 0 {
			t.Fatalf("% x: plain, but decodes with %v, unknown fields % x", data[:n], err, s.XXX_unrecognized)
		}
	}
	if plain < 1000 {
		t.Errorf("only %d plain samples among the random ones", plain)
	}
}

// Requests checked at once share the cache (go test -race).
func TestSeriesCacheConcurrent(t *testing.T) {
	withSeriesCache(t)
	enf := writeEnforcer(t, `{team="a"}`)
	ok := v1Request(t, ts("__name__", "up", "job", "x", "team", "a"), ts("__name__", "up", "job", "y", "team", "a"))
	bad := v1Request(t, ts("__name__", "up", "job", "x", "team", "b"))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if err := checkWriteV1(ok, enf, DefaultWriteLimits); err != nil {
					errs <- err
					return
				}
				if checkWriteV1(bad, enf, DefaultWriteLimits) == nil {
					errs <- errors.New("a series outside the policy accepted")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
