package prometheus

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

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
