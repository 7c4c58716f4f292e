package prometheus

import (
	"strconv"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// Remote write 2.0 (io.prometheus.write.v2.Request). A request holds a
// table of strings (symbols) and series whose labels, metadata help and
// unit, and exemplar labels are references into it. promgate decodes it
// with Prometheus' own message definitions, exactly as the upstream will,
// resolves each series' labels as the upstream does (sorted, by
// labels.ScratchBuilder) and decides on them; samples, native histograms
// (integer and float), exemplars and metadata are not touched: the
// client's bytes are forwarded as they came.
//
// Where Prometheus would write the valid series of a request and answer
// 400 for the others (2.0 allows partial writes), promgate refuses the
// whole request at the first series that is malformed (a reference out of
// the table, an odd number of references, a label twice), beyond a limit
// (400) or outside the policy (403): nothing is written.

// v2Requests keeps decoded requests for reuse: their series and symbols
// slices are the decoder's largest allocations. A request larger than
// pooledV2Series series is left to the garbage collector rather than kept.
var v2Requests = sync.Pool{New: func() any { return new(writev2.Request) }}

const pooledV2Series = 10_000

// checkWriteV2 decodes a remote write 2.0 request and decides on it.
func checkWriteV2(raw []byte, enf *promql.Enforcer, lim WriteLimits) error {
	req := v2Requests.Get().(*writev2.Request)
	defer func() {
		if cap(req.Timeseries) <= pooledV2Series {
			// Cleared so that a pooled request holds no tenant's data.
			clear(req.Symbols[:cap(req.Symbols)])
			clear(req.Timeseries[:cap(req.Timeseries)])
			*req = writev2.Request{Symbols: req.Symbols[:0], Timeseries: req.Timeseries[:0]}
			v2Requests.Put(req)
		}
	}()
	// The generated Unmarshal appends to the slices; they are empty, so
	// the request reads as a fresh one would (proto.Unmarshal resets it
	// first, the way Prometheus decodes).
	if err := req.Unmarshal(raw); err != nil {
		return apierror.New(apierror.BadData, "invalid remote write 2.0 request: %v", err)
	}
	return checkRequestV2(req, enf, lim)
}

// checkRequestV2 is the policy decision on a decoded 2.0 request.
func checkRequestV2(req *writev2.Request, enf *promql.Enforcer, lim WriteLimits) error {
	if len(req.XXX_unrecognized) > 0 {
		return apierror.New(apierror.BadData, "remote write 2.0 request has fields io.prometheus.write.v2.Request does not define")
	}
	if n := len(req.Timeseries); n > lim.MaxSeries {
		return apierror.New(apierror.TooLarge, "remote write request has %d series, more than %d", n, lim.MaxSeries)
	}
	syms := req.Symbols
	// Two builders: the series' labels stay valid while its exemplars'
	// are built. Overwrite reuses one buffer for every series.
	b, eb := labels.NewScratchBuilder(16), labels.NewScratchBuilder(4)
	var ls, el labels.Labels
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		if unknownV2(ts) {
			return apierror.New(apierror.BadData, "series %d of the remote write 2.0 request has fields io.prometheus.write.v2.Request does not define", i)
		}
		if err := resolveRefs(&b, ts.LabelsRefs, syms); err != nil {
			return apierror.New(apierror.BadData, "series %d of the remote write 2.0 request: labels_refs %v", i, err)
		}
		b.Overwrite(&ls)
		if err := checkSeries(ls, enf, lim); err != nil {
			return err
		}
		if md := &ts.Metadata; int(md.HelpRef) >= len(syms) || int(md.UnitRef) >= len(syms) {
			return apierror.New(apierror.BadData, "series %s: metadata help_ref %d or unit_ref %d outside of the symbols table (size %d)", shortLabels(ls), md.HelpRef, md.UnitRef, len(syms))
		}
		for j := range ts.Exemplars {
			if err := resolveRefs(&eb, ts.Exemplars[j].LabelsRefs, syms); err != nil {
				return apierror.New(apierror.BadData, "an exemplar of series %s: labels_refs %v", shortLabels(ls), err)
			}
			eb.Overwrite(&el)
			if err := checkExemplarLabels(el, ls, lim); err != nil {
				return err
			}
		}
	}
	return nil
}

// refsError is a malformed list of label references.
type refsError struct {
	odd      bool
	ref, len int
}

func (e *refsError) Error() string {
	if e.odd {
		return "has an odd number of references (name and value pairs expected)"
	}
	return "refers to symbol " + strconv.Itoa(e.ref) + ", outside of the symbols table (size " + strconv.Itoa(e.len) + ")"
}

// resolveRefs adds the labels refs name to b, sorted, as Prometheus
// resolves them (writev2.TimeSeries.ToLabels).
func resolveRefs(b *labels.ScratchBuilder, refs []uint32, syms []string) error {
	if len(refs)%2 != 0 {
		return &refsError{odd: true}
	}
	b.Reset()
	for j := 0; j < len(refs); j += 2 {
		n, v := refs[j], refs[j+1]
		if int(n) >= len(syms) {
			return &refsError{ref: int(n), len: len(syms)}
		}
		if int(v) >= len(syms) {
			return &refsError{ref: int(v), len: len(syms)}
		}
		b.Add(syms[n], syms[v])
	}
	b.Sort()
	return nil
}

// unknownV2 reports whether a 2.0 series carries fields the message does
// not define, in itself or its samples, histograms, exemplars, metadata.
// A newer sender's field could mean something the policy did not decide
// on: refused, as in 1.0.
func unknownV2(ts *writev2.TimeSeries) bool {
	if len(ts.XXX_unrecognized) > 0 || len(ts.Metadata.XXX_unrecognized) > 0 {
		return true
	}
	for i := range ts.Samples {
		if len(ts.Samples[i].XXX_unrecognized) > 0 {
			return true
		}
	}
	for i := range ts.Exemplars {
		if len(ts.Exemplars[i].XXX_unrecognized) > 0 {
			return true
		}
	}
	for i := range ts.Histograms {
		h := &ts.Histograms[i]
		if len(h.XXX_unrecognized) > 0 || unknownSpansV2(h.PositiveSpans) || unknownSpansV2(h.NegativeSpans) {
			return true
		}
	}
	return false
}

func unknownSpansV2(spans []writev2.BucketSpan) bool {
	for i := range spans {
		if len(spans[i].XXX_unrecognized) > 0 {
			return true
		}
	}
	return false
}
