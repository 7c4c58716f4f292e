package prometheus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// Remote read and remote write carry snappy-compressed protobuf. Their
// bodies have their own bounds: a remote write batch is routinely larger
// than the urlencoded bodies maxBody is sized for.
const (
	// maxRemoteBody bounds a compressed remote read or write body; it is
	// Prometheus' own limit on remote read requests.
	maxRemoteBody = 32 << 20
	// maxRemoteDecoded bounds the body once decompressed.
	maxRemoteDecoded = 64 << 20
	// maxFrameBytes is the size a streamed frame promgate writes aims for,
	// as Prometheus' (a series larger than that is split across frames).
	maxFrameBytes = 1 << 20
	// maxUpstreamFrame bounds one frame read from the upstream.
	maxUpstreamFrame = 64 << 20
)

const (
	protoContentType    = "application/x-protobuf"
	streamedContentType = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// remoteRead enforces the policy on remote read (protobuf + snappy). Every
// query's matchers are combined with each policy selector (Enforcer.Match).
// When that leaves one upstream query per client query, the rewritten
// request is sent and the answer streamed back untouched. Otherwise each
// client query becomes one upstream query per selector, all in one upstream
// request, and the answers are merged: every series once, in label order,
// in the response type the client asked for.
func (a *API) remoteRead(w http.ResponseWriter, r *http.Request, path string, _ params, enf *promql.Enforcer) error {
	if err := checkReadHeaders(r.Header); err != nil {
		return err
	}
	_, raw, err := readSnappyBody(r)
	if err != nil {
		return err
	}
	var req prompb.ReadRequest
	if err := req.Unmarshal(raw); err != nil {
		return apierror.New(apierror.BadData, "invalid remote read request: %v", err)
	}
	rt, err := negotiate(req.AcceptedResponseTypes)
	if err != nil {
		return err
	}
	plan, err := planRead(&req, rt, enf)
	if err != nil {
		return err
	}
	body, err := plan.up.Marshal()
	if err != nil {
		return apierror.New(apierror.Internal, "encoding the remote read request: %v", err)
	}
	out := remoteRequest(r, path, snappy.Encode(nil, body))
	out.Header.Set("Content-Type", protoContentType)
	out.Header.Set("Content-Encoding", "snappy")
	if plan.direct {
		a.up.ServeHTTP(w, out)
		return nil
	}
	return a.mergeRead(w, out, plan, rt)
}

// checkReadHeaders accepts the headers Prometheus sends: a protobuf
// body, snappy-compressed. Missing headers are accepted, as Prometheus'
// own handler ignores them; the body must decode all the same.
func checkReadHeaders(h http.Header) error {
	if err := checkSnappyEncoding(h); err != nil {
		return err
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, ps, err := mime.ParseMediaType(ct)
	if err != nil || mt != protoContentType || (ps["proto"] != "" && ps["proto"] != "prometheus.ReadRequest") {
		return apierror.New(apierror.UnsupportedMedia, "unsupported Content-Type %q: remote read needs %s", ct, protoContentType)
	}
	return nil
}

func checkSnappyEncoding(h http.Header) error {
	if enc := h.Values("Content-Encoding"); len(enc) > 1 || (len(enc) == 1 && enc[0] != "snappy") {
		return apierror.New(apierror.UnsupportedMedia, "unsupported Content-Encoding %q: the body must be snappy-compressed (Content-Encoding: snappy)", strings.Join(enc, ", "))
	}
	return nil
}

// readSnappyBody returns the request body as sent and decompressed, both
// bounded.
func readSnappyBody(r *http.Request) (compressed, raw []byte, err error) {
	if r.ContentLength > maxRemoteBody {
		return nil, nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", maxRemoteBody)
	}
	compressed, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, maxRemoteBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", maxRemoteBody)
		}
		return nil, nil, apierror.New(apierror.BadData, "reading request body: %v", err)
	}
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return nil, nil, apierror.New(apierror.BadData, "request body is not snappy-compressed: %v", err)
	}
	if n > maxRemoteDecoded {
		return nil, nil, apierror.New(apierror.TooLarge, "request body decompresses to %d bytes, more than %d", n, maxRemoteDecoded)
	}
	raw, err = snappy.Decode(nil, compressed)
	if err != nil {
		return nil, nil, apierror.New(apierror.BadData, "request body is not snappy-compressed: %v", err)
	}
	return compressed, raw, nil
}

// remoteRequest is r with a new body, for the upstream. Its headers are
// the client's (X-Prometheus-Remote-*-Version, Content-Encoding, …); the
// upstream strips those that carry identity.
func remoteRequest(r *http.Request, path string, body []byte) *http.Request {
	out := r.Clone(r.Context())
	out.URL = &url.URL{Path: path}
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.TransferEncoding = nil
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return out
}

// negotiate picks the response type as Prometheus does: the first accepted
// type it implements, SAMPLES when the client lists none.
func negotiate(accepted []prompb.ReadRequest_ResponseType) (prompb.ReadRequest_ResponseType, error) {
	if len(accepted) == 0 {
		return prompb.ReadRequest_SAMPLES, nil
	}
	for _, t := range accepted {
		switch t {
		case prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS:
			return t, nil
		}
	}
	return 0, apierror.New(apierror.BadData, "none of the requested response types %v is implemented", accepted)
}

// readPlan is the upstream request for a client's remote read request.
type readPlan struct {
	up *prompb.ReadRequest
	// owner[i] is the client query that upstream query i answers for.
	owner []int
	// queries is the number of client queries.
	queries int
	// direct is true when upstream query i is the enforced client query i
	// for every i: the upstream's answer is the client's.
	direct bool
}

// planRead enforces the policy on every query of req. A query's time range
// and hints are kept. Only the fields promgate knows are forwarded.
func planRead(req *prompb.ReadRequest, rt prompb.ReadRequest_ResponseType, enf *promql.Enforcer) (*readPlan, error) {
	p := &readPlan{
		up:      &prompb.ReadRequest{AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt}},
		queries: len(req.Queries),
		direct:  true,
	}
	for i, q := range req.Queries {
		ms, err := fromLabelMatchers(q.Matchers)
		if err != nil {
			return nil, apierror.New(apierror.BadData, "remote read query %d: %v", i, err)
		}
		if len(ms) == 0 {
			// Prometheus selects nothing for a query without matchers;
			// the policy's selectors alone would select all the tenant's
			// series. No upstream query: an empty result.
			p.direct = false
			continue
		}
		sets := enf.Match([][]*labels.Matcher{ms})
		if len(sets) != 1 {
			p.direct = false
		}
		for _, set := range sets {
			p.up.Queries = append(p.up.Queries, &prompb.Query{
				StartTimestampMs: q.StartTimestampMs,
				EndTimestampMs:   q.EndTimestampMs,
				Matchers:         toLabelMatchers(set),
				Hints:            copyHints(q.Hints),
			})
			p.owner = append(p.owner, i)
		}
	}
	return p, nil
}

func copyHints(h *prompb.ReadHints) *prompb.ReadHints {
	if h == nil {
		return nil
	}
	return &prompb.ReadHints{
		StepMs:   h.StepMs,
		Func:     h.Func,
		StartMs:  h.StartMs,
		EndMs:    h.EndMs,
		Grouping: h.Grouping,
		By:       h.By,
		RangeMs:  h.RangeMs,
	}
}

func fromLabelMatchers(pms []*prompb.LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(pms))
	for _, pm := range pms {
		var t labels.MatchType
		switch pm.Type {
		case prompb.LabelMatcher_EQ:
			t = labels.MatchEqual
		case prompb.LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case prompb.LabelMatcher_RE:
			t = labels.MatchRegexp
		case prompb.LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("invalid matcher type %d", pm.Type)
		}
		m, err := labels.NewMatcher(t, pm.Name, pm.Value)
		if err != nil {
			return nil, fmt.Errorf("invalid matcher %s: %v", pm.Name, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func toLabelMatchers(ms []*labels.Matcher) []*prompb.LabelMatcher {
	out := make([]*prompb.LabelMatcher, len(ms))
	for i, m := range ms {
		var t prompb.LabelMatcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = prompb.LabelMatcher_EQ
		case labels.MatchNotEqual:
			t = prompb.LabelMatcher_NEQ
		case labels.MatchRegexp:
			t = prompb.LabelMatcher_RE
		case labels.MatchNotRegexp:
			t = prompb.LabelMatcher_NRE
		}
		out[i] = &prompb.LabelMatcher{Type: t, Name: m.Name, Value: m.Value}
	}
	return out
}

// mergeRead sends the planned request and answers the merged series.
func (a *API) mergeRead(w http.ResponseWriter, out *http.Request, plan *readPlan, rt prompb.ReadRequest_ResponseType) error {
	ctx, cancel := a.up.WithTimeout(out.Context())
	defer cancel()
	out = out.WithContext(ctx)
	// promgate reads the answer: no other encoding than the protocol's.
	out.Header.Del("Accept-Encoding")
	resp, err := a.up.Do(out)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body := &cappedReader{r: resp.Body, n: maxMergeBytes}
	if resp.StatusCode != http.StatusOK {
		// The upstream's error is the answer, as it gave it.
		msg, _ := io.ReadAll(io.LimitReader(body, 64<<10))
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(msg)
		return nil
	}
	if rt == prompb.ReadRequest_SAMPLES {
		results, err := readSamples(body, resp.Header, len(plan.up.Queries))
		if err != nil {
			return err
		}
		data, err := (&prompb.ReadResponse{Results: mergeSamples(plan, results)}).Marshal()
		if err != nil {
			return apierror.New(apierror.Internal, "encoding the remote read answer: %v", err)
		}
		compressed := snappy.Encode(nil, data)
		w.Header().Set("Content-Type", protoContentType)
		w.Header().Set("Content-Encoding", "snappy")
		w.Header().Set("Content-Length", strconv.Itoa(len(compressed)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(compressed)
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/x-streamed-protobuf" {
		return apierror.New(apierror.Upstream, "upstream answered a streamed remote read with Content-Type %q", resp.Header.Get("Content-Type"))
	}
	var frames []*prompb.ChunkedReadResponse
	fr := newFrameReader(body, maxUpstreamFrame)
	for {
		data, err := fr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return upstreamReadError(err)
		}
		f := &prompb.ChunkedReadResponse{}
		if err := f.Unmarshal(data); err != nil {
			return apierror.New(apierror.Upstream, "unreadable upstream remote read frame: %v", err)
		}
		frames = append(frames, f)
	}
	merged, err := mergeChunked(plan, frames)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", streamedContentType)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	for qi, series := range merged {
		for _, s := range series {
			for _, f := range seriesFrames(s, int64(qi)) {
				data, err := f.Marshal()
				if err != nil {
					// The status is sent: the client sees a cut stream.
					return nil
				}
				if err := writeFrame(bw, data); err != nil {
					return nil
				}
			}
		}
	}
	_ = bw.Flush()
	return nil
}

func upstreamReadError(err error) error {
	if errors.Is(err, errAnswerTooLarge) {
		return apierror.New(apierror.Upstream, "upstream remote read answer larger than %d bytes: too large to merge", maxMergeBytes)
	}
	return apierror.New(apierror.Upstream, "reading upstream remote read answer: %v", err)
}

// readSamples decodes a SAMPLES answer of n results.
func readSamples(body io.Reader, h http.Header, n int) ([]*prompb.QueryResult, error) {
	compressed, err := io.ReadAll(body)
	if err != nil {
		return nil, upstreamReadError(err)
	}
	if enc := h.Get("Content-Encoding"); enc != "" && enc != "snappy" {
		return nil, apierror.New(apierror.Upstream, "upstream answered remote read with Content-Encoding %q", enc)
	}
	if dl, err := snappy.DecodedLen(compressed); err != nil || dl > maxMergeBytes {
		return nil, apierror.New(apierror.Upstream, "upstream remote read answer unreadable or too large to merge")
	}
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		return nil, apierror.New(apierror.Upstream, "upstream remote read answer is not snappy-compressed: %v", err)
	}
	var rr prompb.ReadResponse
	if err := rr.Unmarshal(raw); err != nil {
		return nil, apierror.New(apierror.Upstream, "unreadable upstream remote read answer: %v", err)
	}
	if len(rr.Results) != n {
		return nil, apierror.New(apierror.Upstream, "upstream answered %d remote read results for %d queries", len(rr.Results), n)
	}
	return rr.Results, nil
}

// seriesLabels is the label set of a series as a comparable value.
func seriesLabels(ls []prompb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

// mergeSamples gives each client query the series of its upstream
// queries, each label set once, sorted by labels as Prometheus sorts them.
// A series selected by several selectors comes back identical from each.
func mergeSamples(plan *readPlan, results []*prompb.QueryResult) []*prompb.QueryResult {
	type entry struct {
		lbls labels.Labels
		ts   *prompb.TimeSeries
	}
	perQuery := make([][]entry, plan.queries)
	seen := make([]map[string]bool, plan.queries)
	for i, res := range results {
		q := plan.owner[i]
		if seen[q] == nil {
			seen[q] = map[string]bool{}
		}
		for _, ts := range res.Timeseries {
			ls := seriesLabels(ts.Labels)
			k := string(ls.Bytes(nil))
			if seen[q][k] {
				continue
			}
			seen[q][k] = true
			perQuery[q] = append(perQuery[q], entry{ls, ts})
		}
	}
	out := make([]*prompb.QueryResult, plan.queries)
	for q, es := range perQuery {
		slices.SortStableFunc(es, func(a, b entry) int { return labels.Compare(a.lbls, b.lbls) })
		out[q] = &prompb.QueryResult{Timeseries: make([]*prompb.TimeSeries, 0, len(es))}
		for _, e := range es {
			out[q].Timeseries = append(out[q].Timeseries, e.ts)
		}
	}
	return out
}

// mergeChunked gives each client query the series of the frames of its
// upstream queries, each label set once and sorted by labels. A series
// split across consecutive frames of one upstream query is joined; the
// same series from another upstream query (another selector) is dropped.
func mergeChunked(plan *readPlan, frames []*prompb.ChunkedReadResponse) ([][]*prompb.ChunkedSeries, error) {
	type entry struct {
		lbls   labels.Labels
		series *prompb.ChunkedSeries
		from   int64 // the upstream query it was taken from
	}
	perQuery := make([][]*entry, plan.queries)
	index := make([]map[string]*entry, plan.queries)
	for _, f := range frames {
		if f.QueryIndex < 0 || f.QueryIndex >= int64(len(plan.owner)) {
			return nil, apierror.New(apierror.Upstream, "upstream remote read frame for query %d of %d", f.QueryIndex, len(plan.owner))
		}
		q := plan.owner[f.QueryIndex]
		if index[q] == nil {
			index[q] = map[string]*entry{}
		}
		for _, cs := range f.ChunkedSeries {
			ls := seriesLabels(cs.Labels)
			k := string(ls.Bytes(nil))
			e, ok := index[q][k]
			switch {
			case !ok:
				e = &entry{lbls: ls, series: &prompb.ChunkedSeries{Labels: cs.Labels, Chunks: cs.Chunks}, from: f.QueryIndex}
				index[q][k] = e
				perQuery[q] = append(perQuery[q], e)
			case e.from == f.QueryIndex:
				e.series.Chunks = append(e.series.Chunks, cs.Chunks...)
			}
		}
	}
	out := make([][]*prompb.ChunkedSeries, plan.queries)
	for q, es := range perQuery {
		slices.SortStableFunc(es, func(a, b *entry) int { return labels.Compare(a.lbls, b.lbls) })
		for _, e := range es {
			out[q] = append(out[q], e.series)
		}
	}
	return out, nil
}

// seriesFrames splits a series into frames of about maxFrameBytes, as
// Prometheus does: each frame carries the labels and some of the chunks.
func seriesFrames(s *prompb.ChunkedSeries, queryIndex int64) []*prompb.ChunkedReadResponse {
	lblSize := 0
	for _, l := range s.Labels {
		lblSize += l.Size()
	}
	var out []*prompb.ChunkedReadResponse
	var chunks []prompb.Chunk
	left := maxFrameBytes - lblSize
	for i, c := range s.Chunks {
		chunks = append(chunks, c)
		left -= c.Size()
		if left > 0 && i < len(s.Chunks)-1 {
			continue
		}
		out = append(out, &prompb.ChunkedReadResponse{
			ChunkedSeries: []*prompb.ChunkedSeries{{Labels: s.Labels, Chunks: chunks}},
			QueryIndex:    queryIndex,
		})
		chunks = nil
		left = maxFrameBytes - lblSize
	}
	if len(out) == 0 {
		out = append(out, &prompb.ChunkedReadResponse{
			ChunkedSeries: []*prompb.ChunkedSeries{{Labels: s.Labels}},
			QueryIndex:    queryIndex,
		})
	}
	return out
}

// The streamed remote read format: each frame is the uvarint length of its
// data, the big-endian CRC-32 (Castagnoli) of the data, then the data.

func writeFrame(w io.Writer, data []byte) error {
	var hdr [binary.MaxVarintLen64 + 4]byte
	n := binary.PutUvarint(hdr[:], uint64(len(data)))
	binary.BigEndian.PutUint32(hdr[n:], crc32.Checksum(data, castagnoli))
	if _, err := w.Write(hdr[:n+4]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

type frameReader struct {
	r     *bufio.Reader
	limit uint64
}

func newFrameReader(r io.Reader, limit uint64) *frameReader {
	return &frameReader{r: bufio.NewReader(r), limit: limit}
}

// next returns the data of the next frame, or io.EOF after the last.
func (f *frameReader) next() ([]byte, error) {
	size, err := binary.ReadUvarint(f.r)
	if err != nil {
		return nil, err
	}
	if size > f.limit {
		return nil, fmt.Errorf("frame of %d bytes exceeds the limit of %d", size, f.limit)
	}
	var crc [4]byte
	if _, err := io.ReadFull(f.r, crc[:]); err != nil {
		return nil, noEOF(err)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(f.r, data); err != nil {
		return nil, noEOF(err)
	}
	if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(crc[:]) {
		return nil, errors.New("corrupted frame: checksum mismatch")
	}
	return data, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

var errAnswerTooLarge = errors.New("answer too large")

// cappedReader fails with errAnswerTooLarge past n bytes, rather than
// ending the stream early as io.LimitReader would.
type cappedReader struct {
	r io.Reader
	n int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		// One byte more tells a stream that ends here from a longer one.
		var b [1]byte
		if n, _ := c.r.Read(b[:]); n > 0 {
			return 0, errAnswerTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

// remoteWrite accepts a remote write 1.0 request only when every series
// satisfies the policy; then the request is forwarded as it came (same
// bytes and headers). One series outside the policy refuses the whole
// request with 403, naming it, and nothing is forwarded.
//
// Metadata entries carry a metric family name and no labels. An entry is
// accepted when the policy allows some series of that family (see
// allowsFamily): writing it could not reveal or affect anything the tenant
// could not write as series. Prometheus sends metadata in requests of
// their own, so requiring the family's series in the same request would
// refuse every one of them.
func (a *API) remoteWrite(w http.ResponseWriter, r *http.Request, path string, _ params, enf *promql.Enforcer) error {
	if err := checkWriteHeaders(r.Header); err != nil {
		return err
	}
	body, raw, err := readSnappyBody(r)
	if err != nil {
		return err
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return apierror.New(apierror.BadData, "invalid remote write request: %v", err)
	}
	if err := checkWrite(&req, enf); err != nil {
		return err
	}
	a.up.ServeHTTP(w, remoteRequest(r, path, body))
	return nil
}

// writeV1ContentTypes are the Content-Types every receiver reads as a
// remote write 1.0 request. The body is forwarded with the client's
// Content-Type, so promgate must read it exactly as the upstream will: any
// other spelling is refused rather than guessed at.
var writeV1ContentTypes = []string{"", protoContentType, protoContentType + ";proto=prometheus.WriteRequest"}

func checkWriteHeaders(h http.Header) error {
	if err := checkSnappyEncoding(h); err != nil {
		return err
	}
	cts := h.Values("Content-Type")
	ct := ""
	if len(cts) > 0 {
		ct = strings.TrimSpace(cts[0])
	}
	if len(cts) <= 1 && slices.Contains(writeV1ContentTypes, ct) {
		return nil
	}
	if strings.Contains(ct, "io.prometheus.write.v2.Request") {
		return apierror.New(apierror.UnsupportedMedia, "remote write 2.0 (Content-Type %q) is not supported: send remote write 1.0 (protobuf_message: prometheus.WriteRequest)", ct)
	}
	return apierror.New(apierror.UnsupportedMedia, "unsupported Content-Type %q: remote write needs %s (remote write 1.0)", strings.Join(cts, ", "), protoContentType)
}

// checkWrite is the policy decision on a decoded write request.
func checkWrite(req *prompb.WriteRequest, enf *promql.Enforcer) error {
	// Fields promgate does not know (remote write 2.0's, sent as 1.0) would
	// reach the upstream unchecked.
	if len(req.XXX_unrecognized) > 0 {
		return apierror.New(apierror.BadData, "remote write request has fields remote write 1.0 does not define")
	}
	b := labels.NewScratchBuilder(0)
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		if len(ts.XXX_unrecognized) > 0 {
			return apierror.New(apierror.BadData, "series %d of the remote write request has fields remote write 1.0 does not define", i)
		}
		b.Reset()
		for _, l := range ts.Labels {
			if len(l.XXX_unrecognized) > 0 {
				return apierror.New(apierror.BadData, "a label of series %d of the remote write request has fields remote write 1.0 does not define", i)
			}
			b.Add(l.Name, l.Value)
		}
		b.Sort()
		ls := b.Labels()
		// With two values for one name, the policy could check one and the
		// upstream keep the other.
		if name, dup := ls.HasDuplicateLabelNames(); dup {
			return apierror.New(apierror.BadData, "series %s has label %q more than once", ls.String(), name)
		}
		if !enf.Allows(ls) {
			return apierror.New(apierror.Forbidden, "series %s is outside the policy: the write request is refused", ls.String())
		}
	}
	for _, md := range req.Metadata {
		if !allowsFamily(enf, md.MetricFamilyName) {
			return apierror.New(apierror.Forbidden, "metadata of metric %q is outside the policy: the write request is refused", md.MetricFamilyName)
		}
	}
	return nil
}

// familySuffixes are the suffixes of the series of a metric family
// (histograms, summaries, counters, info metrics in OpenMetrics).
var familySuffixes = []string{"", "_total", "_created", "_bucket", "_sum", "_count", "_gcount", "_gsum", "_info"}

// allowsFamily reports whether the policy allows some series of the metric
// family name.
func allowsFamily(enf *promql.Enforcer, name string) bool {
	for _, s := range familySuffixes {
		if enf.AllowsName(name + s) {
			return true
		}
	}
	return false
}
