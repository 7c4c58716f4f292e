package prometheus

import (
	"strconv"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/schema"

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

// Decoding. The whole request is not decoded into a writev2.Request:
// that would copy every symbol into a string of its own and allocate every
// series' samples anew, on the hot path of every write. The request's own
// fields (symbols, timeseries) are read here, exactly as its generated
// Unmarshal reads them (same varints, same bounds, same errors for a wrong
// wire type), symbols as strings over the decoded body rather than copies;
// each series is then decoded by Prometheus' own TimeSeries.Unmarshal into
// one reused TimeSeries. Every field but those two, in the request, is one
// the message does not define and refuses it, as unknown fields do
// everywhere (the generated code would keep them aside).
//
// Decisions are the same as the whole decoding's, except for which of two
// refusals comes first: a series outside the policy may be answered 403
// before a later malformed series would have made the request a 400. The
// fuzz target FuzzWriteV2 holds the two to the same accept/refuse answer.

// v2Decoder is what checkWriteV2 reuses from one request to the next.
type v2Decoder struct {
	symbols []string
	series  [][]byte
	ts      writev2.TimeSeries
	b, eb   labels.ScratchBuilder
	ls, el  labels.Labels
	// tl is ls with its metadata's type and unit as labels.
	tl labels.Labels
	// refs holds the labels_refs of d.ts, after one element of its own.
	refs []uint32
	// key is the series' key in acceptedSeries.
	key, scratch []byte
	// uncached decides on every series, remembered or not (the
	// reference of the tests).
	uncached bool
}

// v2Decoders keeps decoders for reuse. One that read a request of more
// than pooledV2Series series is left to the garbage collector rather than
// kept.
var v2Decoders = sync.Pool{New: func() any {
	return &v2Decoder{b: labels.NewScratchBuilder(16), eb: labels.NewScratchBuilder(4)}
}}

const pooledV2Series = 10_000

// checkWriteV2 decodes a remote write 2.0 request and decides on it.
func checkWriteV2(raw []byte, enf *promql.Enforcer, lim WriteLimits) error {
	d := v2Decoders.Get().(*v2Decoder)
	defer func() {
		if cap(d.series) <= pooledV2Series {
			// Cleared: a pooled decoder holds nothing of a request.
			clear(d.symbols[:cap(d.symbols)])
			clear(d.series[:cap(d.series)])
			d.symbols, d.series = d.symbols[:0], d.series[:0]
			clear(d.key[:cap(d.key)])
			d.key = d.key[:0]
			d.resetSeries()
			clear(d.ts.Samples[:cap(d.ts.Samples)])
			clear(d.ts.Histograms[:cap(d.ts.Histograms)])
			clear(d.ts.Exemplars[:cap(d.ts.Exemplars)])
			v2Decoders.Put(d)
		}
	}()
	if err := d.scan(raw); err != nil {
		return apierror.New(apierror.BadData, "invalid remote write 2.0 request: %v", err)
	}
	if n := len(d.series); n > lim.MaxSeries {
		return apierror.New(apierror.TooLarge, "remote write request has %d series, more than %d", n, lim.MaxSeries)
	}
	for i, data := range d.series {
		d.resetSeries()
		// The generated Unmarshal allocates labels_refs anew when it
		// finds the slice empty, and appends to it otherwise: given one
		// element ahead of those it reads, it reuses d.refs.
		d.ts.LabelsRefs = append(d.refs[:0], 0)
		err := d.ts.Unmarshal(data)
		d.refs = d.ts.LabelsRefs
		d.ts.LabelsRefs = d.ts.LabelsRefs[1:]
		if err != nil {
			return apierror.New(apierror.BadData, "invalid remote write 2.0 request: %v", err)
		}
		if err := d.check(i, &d.ts, d.symbols, enf, lim); err != nil {
			return err
		}
	}
	return nil
}

// resetSeries makes d.ts a fresh TimeSeries that keeps its slices'
// capacity (the generated Unmarshal appends zeroed elements to them).
func (d *v2Decoder) resetSeries() {
	ts := &d.ts
	*ts = writev2.TimeSeries{LabelsRefs: ts.LabelsRefs[:0], Samples: ts.Samples[:0], Histograms: ts.Histograms[:0], Exemplars: ts.Exemplars[:0]}
}

// Field numbers of io.prometheus.write.v2.Request.
const (
	requestSymbols    = 4
	requestTimeseries = 5
)

var requestFields = fields(requestSymbols, requestTimeseries)

// scan reads the request's symbols and series (undecoded), as
// writev2.Request.Unmarshal reads them; the symbols are views of raw
// (bodyString).
func (d *v2Decoder) scan(raw []byte) error {
	return protoFields(raw, writeV2Message, requestFields, func(field int32, body []byte) error {
		if field == requestSymbols {
			d.symbols = append(d.symbols, bodyString(body))
		} else {
			d.series = append(d.series, body)
		}
		return nil
	})
}

// check decides on the i-th series of a request whose symbols are syms.
func (d *v2Decoder) check(i int, ts *writev2.TimeSeries, syms []string, enf *promql.Enforcer, lim WriteLimits) error {
	if unknownV2(ts) {
		return apierror.New(apierror.BadData, "series %d of the remote write 2.0 request has fields io.prometheus.write.v2.Request does not define", i)
	}
	md := &ts.Metadata
	// A series whose labels and metadata are well formed may have been
	// accepted before (acceptedSeries): its labels are then only
	// resolved for its exemplars' messages.
	cache := false
	if !d.uncached && refsInRange(ts.LabelsRefs, len(syms)) && int(md.HelpRef) < len(syms) && int(md.UnitRef) < len(syms) {
		d.key, cache = seriesKey(d.key, seriesKeyV2, enf, lim, len(ts.LabelsRefs)+2)
		for _, r := range ts.LabelsRefs {
			d.key = appendKeyPart(d.key, syms[r])
		}
		d.scratch = strconv.AppendInt(d.scratch[:0], int64(md.Type), 10)
		d.key = appendKeyPart(d.key, d.scratch)
		d.key = appendKeyPart(d.key, syms[md.UnitRef])
	}
	known := cache && acceptedSeries.has(d.key)
	if known && len(ts.Exemplars) == 0 {
		return nil
	}
	// Two builders: the series' labels stay valid while its exemplars'
	// are built. Overwrite reuses one buffer for every series.
	if err := resolveRefs(&d.b, ts.LabelsRefs, syms); err != nil {
		return apierror.New(apierror.BadData, "series %d of the remote write 2.0 request: labels_refs %v", i, err)
	}
	d.b.Overwrite(&d.ls)
	ls := d.ls
	if !known {
		if err := checkSeries(ls, enf, lim); err != nil {
			return err
		}
		if int(md.HelpRef) >= len(syms) || int(md.UnitRef) >= len(syms) {
			return apierror.New(apierror.BadData, "series %s: metadata help_ref %d or unit_ref %d outside of the symbols table (size %d)", shortLabels(ls), md.HelpRef, md.UnitRef, len(syms))
		}
		if err := d.checkTypeAndUnit(ts, ls, syms, enf, lim); err != nil {
			return err
		}
		if cache {
			acceptedSeries.add(d.key)
		}
	}
	for j := range ts.Exemplars {
		if err := resolveRefs(&d.eb, ts.Exemplars[j].LabelsRefs, syms); err != nil {
			return apierror.New(apierror.BadData, "an exemplar of series %s: labels_refs %v", shortLabels(ls), err)
		}
		d.eb.Overwrite(&d.el)
		if err := checkExemplarLabels(d.el, ls, lim); err != nil {
			return err
		}
	}
	return nil
}

// checkTypeAndUnit decides on the series ls as a Prometheus running with
// the type-and-unit-labels feature stores it: with its metadata's type and
// unit as the labels __type__ and __unit__, in place of any the series
// carries (storage/remote's write handler). promgate does not know the
// upstream's features, so a series with a type or a unit is checked both
// ways; for a policy that does not select on __type__ or __unit__, the two
// decisions are the same.
func (d *v2Decoder) checkTypeAndUnit(ts *writev2.TimeSeries, ls labels.Labels, syms []string, enf *promql.Enforcer, lim WriteLimits) error {
	m, err := ts.ToMetadata(syms)
	if err != nil || (m.Type == model.MetricTypeUnknown && m.Unit == "") {
		return err
	}
	d.eb.Reset()
	ls.Range(func(l labels.Label) {
		if l.Name != model.MetricTypeLabel && l.Name != model.MetricUnitLabel {
			d.eb.Add(l.Name, l.Value)
		}
	})
	schema.Metadata{Type: m.Type, Unit: m.Unit}.AddToLabels(&d.eb)
	d.eb.Sort()
	d.eb.Overwrite(&d.tl)
	return checkSeries(d.tl, enf, lim)
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

// refsInRange reports whether refs are pairs of references into a table
// of n symbols.
func refsInRange(refs []uint32, n int) bool {
	if len(refs)%2 != 0 {
		return false
	}
	for _, r := range refs {
		if int(r) >= n {
			return false
		}
	}
	return true
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
