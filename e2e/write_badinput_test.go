package e2e

// Bad remote write requests, 1.0 and 2.0, through promgate to a real
// Prometheus: each gets its status and Prometheus' JSON error envelope from
// promgate, and the upstream's write handler never sees one.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// The write limits of the test's promgate: small, so that bodies of a few
// KiB reach them.
const badInputWriteLimits = `write_limits:
  max_body_size: 64KiB
  max_decoded_size: 256KiB
  max_series_per_request: 5
  max_labels_per_series: 8
  max_label_name_length: 64
  max_label_value_length: 128
`

// upstreamWrites is the upstream's count of requests to its write handler.
func upstreamWrites(t *testing.T, promURL string) float64 {
	t.Helper()
	resp, err := http.Get(promURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "prometheus_http_requests_total{") && strings.Contains(line, `handler="/api/v1/write"`) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += v
		}
	}
	return sum
}

// v1Body is a 1.0 request of series given as label lists.
func v1Body(t *testing.T, series ...[]string) []byte {
	t.Helper()
	var req prompb.WriteRequest
	now := time.Now().UnixMilli()
	for _, ls := range series {
		var ts prompb.TimeSeries
		for i := 0; i < len(ls); i += 2 {
			ts.Labels = append(ts.Labels, prompb.Label{Name: ls[i], Value: ls[i+1]})
		}
		ts.Samples = []prompb.Sample{{Value: 1, Timestamp: now}}
		req.Timeseries = append(req.Timeseries, ts)
	}
	data, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// v2Request is a 2.0 request of series given as label lists, labels
// symbolized in the order given.
func v2Request(series ...[]string) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	now := time.Now().UnixMilli()
	for _, ls := range series {
		var refs []uint32
		for _, s := range ls {
			refs = append(refs, st.Symbolize(s))
		}
		req.Timeseries = append(req.Timeseries, writev2.TimeSeries{LabelsRefs: refs, Samples: []writev2.Sample{{Value: 1, Timestamp: now}}})
	}
	req.Symbols = st.Symbols()
	return req
}

func v2Body(t *testing.T, req *writev2.Request) []byte {
	t.Helper()
	data, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestWriteBadInput(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	dir := t.TempDir()
	upstream := startRemotePrometheus(t, "upstream", dir, "global:\n  scrape_interval: 1m\n", "--web.enable-remote-write-receiver")
	alice := remoteUser{name: "alice", selectors: []string{`{team="a"}`}}
	cfg := writeRemoteConfig(t, dir, upstream.url, alice)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(badInputWriteLimits)
	f.Close()
	gate, err := startServer(t, "promgate", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + cfg, "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}

	team := func(extra ...string) []string { return append([]string{"__name__", "rw_bad", "team", "a"}, extra...) }
	many := func(n int) [][]string {
		var out [][]string
		for i := range n {
			out = append(out, team("i", strconv.Itoa(i)))
		}
		return out
	}
	var labelsFull []string
	for i := range 7 {
		labelsFull = append(labelsFull, "l"+strconv.Itoa(i), "v")
	}
	longName := strings.Repeat("n", 65)
	longValue := strings.Repeat("v", 129)
	// 1.0 series with a field 1.0 does not define (field 9, varint).
	unknownV1 := append(v1Body(t, team()), 0x48, 0x01)
	unknownV2 := append(v2Body(t, v2Request(team())), 0x48, 0x01)
	refOut := v2Request(team())
	refOut.Timeseries[0].LabelsRefs[1] = 999
	refOdd := v2Request(team())
	refOdd.Timeseries[0].LabelsRefs = append(refOdd.Timeseries[0].LabelsRefs, 1)
	helpOut := v2Request(team())
	helpOut.Timeseries[0].Metadata.HelpRef = 999
	exOut := v2Request(team())
	exOut.Timeseries[0].Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{0, 999}}}
	// Random bytes do not compress: a body over max_body_size as sent.
	incompressible := make([]byte, 70<<10)
	for i := range incompressible {
		incompressible[i] = byte(i*7919 + i/251)
	}
	var hdr [binary.MaxVarintLen64]byte
	lyingHeader := hdr[:binary.PutUvarint(hdr[:], 100<<20)]
	bomb := snappy.Encode(nil, make([]byte, 1<<20)) // 1 MiB of zeros in a few KiB

	const (
		ct1 = "application/x-protobuf"
		ct2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	)
	type input struct {
		name     string
		ct       string
		encoding []string
		body     []byte // sent as is
		status   int
		errType  string
		want     string
	}
	sn := func(b []byte) []byte { return snappy.Encode(nil, b) }
	snappyOnly := []string{"snappy"}
	var cases []input
	for _, v := range []struct {
		name, ct string
		body     func(...[]string) []byte
	}{
		{"1.0", ct1, func(s ...[]string) []byte { return v1Body(t, s...) }},
		{"2.0", ct2, func(s ...[]string) []byte { return v2Body(t, v2Request(s...)) }},
	} {
		good := sn(v.body(team()))
		cases = append(cases,
			input{v.name + ": not snappy", v.ct, snappyOnly, []byte("garbage\xff\x00"), 400, "bad_data", "snappy"},
			input{v.name + ": snappy of garbage", v.ct, snappyOnly, sn([]byte("\xff\xff\xff not a protobuf")), 400, "bad_data", "invalid remote write"},
			input{v.name + ": truncated protobuf", v.ct, snappyOnly, sn(v.body(team())[:7]), 400, "bad_data", "invalid remote write"},
			input{v.name + ": gzip encoding", v.ct, []string{"gzip"}, good, 415, "unsupported_media", "Content-Encoding"},
			input{v.name + ": identity encoding", v.ct, []string{"identity"}, v.body(team()), 415, "unsupported_media", "Content-Encoding"},
			input{v.name + ": two encodings", v.ct, []string{"snappy", "snappy"}, good, 415, "unsupported_media", "Content-Encoding"},
			input{v.name + ": too large as sent", v.ct, snappyOnly, incompressible, 413, "too_large", "larger than 65536"},
			input{v.name + ": snappy bomb", v.ct, snappyOnly, bomb, 413, "too_large", "decompresses to 1048576 bytes"},
			input{v.name + ": snappy header announcing 100 MiB", v.ct, snappyOnly, lyingHeader, 413, "too_large", "decompresses to 104857600 bytes"},
			input{v.name + ": too many series", v.ct, snappyOnly, sn(v.body(many(6)...)), 413, "too_large", "6 series, more than 5"},
			input{v.name + ": too many labels", v.ct, snappyOnly, sn(v.body(team(labelsFull...))), 400, "bad_data", "9 labels, more than 8"},
			input{v.name + ": label name too long", v.ct, snappyOnly, sn(v.body(team(longName, "x"))), 400, "bad_data", "label name of 65 bytes"},
			input{v.name + ": label value too long", v.ct, snappyOnly, sn(v.body(team("x", longValue))), 400, "bad_data", `value of label "x" of 129 bytes`},
			input{v.name + ": label twice", v.ct, snappyOnly, sn(v.body(team("team", "b"))), 400, "bad_data", `label "team" more than once`},
			input{v.name + ": another team's series", v.ct, snappyOnly, sn(v.body(team(), []string{"__name__", "rw_bad", "team", "b"})), 403, "forbidden", `{__name__="rw_bad", team="b"} is outside the policy`},
		)
	}
	cases = append(cases,
		input{"JSON content type", "application/json", snappyOnly, sn(v1Body(t, team())), 415, "unsupported_media", "Content-Type"},
		input{"2.0 spelt with a space", "application/x-protobuf; proto=io.prometheus.write.v2.Request", snappyOnly, sn(v2Body(t, v2Request(team()))), 415, "unsupported_media", "io.prometheus.write.v2.Request"},
		input{"unknown message", "application/x-protobuf;proto=io.prometheus.write.v3.Request", snappyOnly, sn(v2Body(t, v2Request(team()))), 415, "unsupported_media", "io.prometheus.write.v2.Request"},
		input{"1.0: unknown field", ct1, snappyOnly, sn(unknownV1), 400, "bad_data", "does not define"},
		input{"2.0: unknown field", ct2, snappyOnly, sn(unknownV2), 400, "bad_data", "does not define"},
		input{"2.0 body sent as 1.0", ct1, snappyOnly, sn(v2Body(t, v2Request(team()))), 400, "bad_data", "does not define"},
		input{"1.0 body sent as 2.0", ct2, snappyOnly, sn(v1Body(t, team())), 400, "bad_data", "does not define"},
		input{"2.0: label ref outside the symbols", ct2, snappyOnly, sn(v2Body(t, refOut)), 400, "bad_data", "outside of the symbols table"},
		input{"2.0: odd number of refs", ct2, snappyOnly, sn(v2Body(t, refOdd)), 400, "bad_data", "odd number of references"},
		input{"2.0: help ref outside the symbols", ct2, snappyOnly, sn(v2Body(t, helpOut)), 400, "bad_data", "help_ref 999"},
		input{"2.0: exemplar ref outside the symbols", ct2, snappyOnly, sn(v2Body(t, exOut)), 400, "bad_data", "an exemplar of series"},
	)

	post := func(ct string, encodings []string, body []byte) (int, []byte) {
		req, _ := http.NewRequest("POST", gate.url+"/api/v1/write", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		for _, e := range encodings {
			req.Header.Add("Content-Encoding", e)
		}
		req.SetBasicAuth(alice.name, alice.password())
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			writes, all := upstreamWrites(t, upstream.url), upstreamRequests(t, upstream.url)
			status, body := post(tc.ct, tc.encoding, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			var env struct{ Status, ErrorType, Error string }
			if err := json.Unmarshal(body, &env); err != nil || env.Status != "error" || env.ErrorType != tc.errType || !strings.Contains(env.Error, tc.want) {
				t.Errorf("envelope %s, want errorType %s and an error mentioning %q", body, tc.errType, tc.want)
			}
			if w, a := upstreamWrites(t, upstream.url), upstreamRequests(t, upstream.url); w != writes || a != all {
				t.Errorf("the refused request reached the upstream: writes %v -> %v, requests %v -> %v", writes, w, all, a)
			}
		})
	}

	// A wrong method is refused too.
	req, _ := http.NewRequest("GET", gate.url+"/api/v1/write", nil)
	req.SetBasicAuth(alice.name, alice.password())
	if resp, err := httpClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("GET /api/v1/write: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The counter moves for the writes promgate forwards: the checks above
	// can fail. 2.0 reaches a Prometheus 3; a 2.x one would read it as 1.0
	// and write nothing, so promgate answers 415 for it.
	v2Status := 204
	if prometheusVersion(t).Major < 3 {
		v2Status = 415
	}
	for _, c := range []struct {
		name, ct string
		body     []byte
		status   int
	}{
		{"1.0", ct1, sn(v1Body(t, team("probe", "1"))), 204},
		{"2.0", ct2, sn(v2Body(t, v2Request(team("probe", "2")))), v2Status},
	} {
		before := upstreamWrites(t, upstream.url)
		status, body := post(c.ct, snappyOnly, c.body)
		if status != c.status {
			t.Fatalf("good %s write: status %d, want %d: %s", c.name, status, c.status, body)
		}
		want := before
		if status == 204 {
			want++
		}
		if after := upstreamWrites(t, upstream.url); after != want {
			t.Errorf("good %s write: upstream writes %v -> %v, want %v", c.name, before, after, want)
		}
	}
}
