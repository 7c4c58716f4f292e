package prometheus

import (
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// remoteWrite accepts a remote write request (1.0 or 2.0) only when every
// series satisfies the policy and the WriteLimits; then the request is
// forwarded as it came (same bytes and headers) and the upstream's answer
// passed back with its headers (2.0's X-Prometheus-Remote-Write-*-Written
// among them). One series outside the policy refuses the whole request
// with 403, naming it, and nothing is forwarded.
//
// Metadata entries of 1.0 carry a metric family name and no labels. An
// entry is accepted when the policy allows some series of that family (see
// allowsFamily): writing it could not reveal or affect anything the tenant
// could not write as series. Prometheus sends metadata in requests of
// their own, so requiring the family's series in the same request would
// refuse every one of them. 2.0 carries metadata in each series, checked
// with it.
func (a *API) remoteWrite(w http.ResponseWriter, r *http.Request, path string, _ params, enf *promql.Enforcer) error {
	msg, err := writeMessage(r.Header)
	if err != nil {
		return err
	}
	lim := a.opts.Write
	body, raw, err := readWriteBody(r, lim, encodingSnappy, encodingSnappy)
	if err != nil {
		return err
	}
	if msg == writeV2Message {
		err = checkWriteV2(raw, enf, lim)
	} else {
		err = checkWriteV1(raw, enf, lim)
	}
	if err != nil {
		return err
	}
	// Asked after the checks: a refused request costs the upstream
	// nothing.
	if msg == writeV2Message && a.upstreamWithoutWriteV2(r) {
		return apierror.New(apierror.UnsupportedMedia, "%s protobuf message is not accepted by this server; only accepts %s", writeV2Message, writeV1Message)
	}
	a.up.ServeHTTP(w, remoteRequest(r, path, body))
	return nil
}

// The protobuf messages of remote write, as the proto parameter of the
// Content-Type names them.
const (
	writeV1Message = "prometheus.WriteRequest"
	writeV2Message = "io.prometheus.write.v2.Request"
)

// writeContentTypes are the Content-Types read as each message, as
// Prometheus reads them. The body is forwarded with the client's
// Content-Type, so promgate must read it exactly as the upstream will: any
// other spelling (a space after the ';', parameters in another order) is
// refused rather than guessed at.
var writeContentTypes = map[string]string{
	"":               writeV1Message,
	protoContentType: writeV1Message,
	protoContentType + ";proto=" + writeV1Message: writeV1Message,
	protoContentType + ";proto=" + writeV2Message: writeV2Message,
}

// writeMessage is the message a remote write request's headers announce.
// Anything else is refused with 415, as Prometheus refuses a message it
// does not accept, naming those it does; a sender of 2.0 may then fall
// back to 1.0.
func writeMessage(h http.Header) (string, error) {
	cts := h.Values("Content-Type")
	ct := ""
	if len(cts) > 0 {
		ct = strings.TrimSpace(cts[0])
	}
	if msg, ok := writeContentTypes[ct]; ok && len(cts) <= 1 {
		return msg, nil
	}
	return "", apierror.New(apierror.UnsupportedMedia, "unsupported Content-Type %q: this server accepts %s;proto=%s and %s;proto=%s (remote write 2.0)",
		strings.Join(cts, ", "), protoContentType, writeV1Message, protoContentType, writeV2Message)
}

// upstreamWithoutWriteV2 reports whether the upstream is known to be a
// Prometheus older than 3.0. Those read any body as remote write 1.0: a
// 2.0 request, whose fields 1.0 does not define, would be answered 204
// and nothing written, so it is refused with 415 before, which tells the
// sender to fall back to 1.0. An upstream of unknown version is sent the
// request and answers for itself.
func (a *API) upstreamWithoutWriteV2(r *http.Request) bool {
	c := &a.caps
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load(a, r)
	return c.known && !c.latest && c.major > 0 && c.major < 3
}

// Decoding of 1.0. As 2.0's (remote_write2.go), a 1.0 request is not
// decoded whole, which would copy every label name and value of every
// series into strings of their own: its fields and its series' labels are
// read as the generated code reads them (protoFields), names and values as
// views of the body; samples, exemplars, histograms and metadata are
// decoded by Prometheus' own generated code into reused messages. A field
// a message does not define refuses the request (the generated code would
// keep it aside): fields of a newer sender could reach the upstream
// unchecked. The fuzz target FuzzWriteV1 holds this to the decisions over
// the whole decoding.

// Field numbers of prometheus.WriteRequest, TimeSeries and Label.
const (
	writeRequestTimeseries = 1
	writeRequestMetadata   = 3
	seriesLabelsField      = 1
	seriesSamples          = 2
	seriesExemplars        = 3
	seriesHistograms       = 4
	labelName              = 1
	labelValue             = 2
)

var (
	writeRequestFields = []int32{writeRequestTimeseries, writeRequestMetadata}
	seriesFields       = []int32{seriesLabelsField, seriesSamples, seriesExemplars, seriesHistograms}
	labelFields        = []int32{labelName, labelValue}
)

// v1Decoder is what checkWriteV1 reuses from one request to the next.
type v1Decoder struct {
	series, metadata [][]byte
	b, eb            labels.ScratchBuilder
	ls, el           labels.Labels
	exemplar         prompb.Exemplar
}

var v1Decoders = sync.Pool{New: func() any {
	return &v1Decoder{b: labels.NewScratchBuilder(16), eb: labels.NewScratchBuilder(4)}
}}

// checkWriteV1 decodes a remote write 1.0 request and decides on it.
func checkWriteV1(raw []byte, enf *promql.Enforcer, lim WriteLimits) error {
	d := v1Decoders.Get().(*v1Decoder)
	defer func() {
		if cap(d.series) <= pooledV2Series {
			// Cleared: a pooled decoder holds nothing of a request.
			clear(d.series[:cap(d.series)])
			clear(d.metadata[:cap(d.metadata)])
			d.series, d.metadata = d.series[:0], d.metadata[:0]
			clear(d.exemplar.Labels[:cap(d.exemplar.Labels)])
			d.exemplar = prompb.Exemplar{Labels: d.exemplar.Labels[:0]}
			v1Decoders.Put(d)
		}
	}()
	err := protoFields(raw, writeV1Message, writeRequestFields, func(field int32, body []byte) error {
		if field == writeRequestTimeseries {
			d.series = append(d.series, body)
		} else {
			d.metadata = append(d.metadata, body)
		}
		return nil
	})
	if err != nil {
		return invalidV1(err)
	}
	if n := len(d.series); n > lim.MaxSeries {
		return apierror.New(apierror.TooLarge, "remote write request has %d series, more than %d", n, lim.MaxSeries)
	}
	for i, data := range d.series {
		if err := d.checkSeries(i, data, enf, lim); err != nil {
			return invalidV1(err)
		}
	}
	for _, data := range d.metadata {
		var md prompb.MetricMetadata
		if err := md.Unmarshal(data); err != nil {
			return invalidV1(err)
		}
		if len(md.XXX_unrecognized) > 0 {
			return apierror.New(apierror.BadData, "metadata of the remote write request has fields remote write 1.0 does not define")
		}
		if !allowsFamily(enf, md.MetricFamilyName) {
			return apierror.New(apierror.Forbidden, "metadata of metric %q is outside the policy: the write request is refused", md.MetricFamilyName)
		}
	}
	return nil
}

// invalidV1 is the answer to err: itself when it is a decision, 400 when
// the request does not decode.
func invalidV1(err error) error {
	var e *apierror.Error
	if errors.As(err, &e) {
		return e
	}
	return apierror.New(apierror.BadData, "invalid remote write request: %v", err)
}

// checkSeries decides on the i-th series of a 1.0 request, data: its
// labels first, wherever they are in it, then its samples, exemplars and
// histograms.
func (d *v1Decoder) checkSeries(i int, data []byte, enf *promql.Enforcer, lim WriteLimits) error {
	d.b.Reset()
	err := protoFields(data, "prometheus.TimeSeries", seriesFields, func(field int32, body []byte) error {
		if field == seriesLabelsField {
			name, value, err := readLabel(body)
			if err != nil {
				return err
			}
			d.b.Add(name, value)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.b.Sort()
	d.b.Overwrite(&d.ls)
	if err := checkSeries(d.ls, enf, lim); err != nil {
		return err
	}
	return protoFields(data, "prometheus.TimeSeries", seriesFields, func(field int32, body []byte) error {
		unknown := false
		switch field {
		case seriesSamples:
			var s prompb.Sample
			if err := s.Unmarshal(body); err != nil {
				return err
			}
			unknown = len(s.XXX_unrecognized) > 0
		case seriesExemplars:
			e := &d.exemplar
			*e = prompb.Exemplar{Labels: e.Labels[:0]}
			if err := e.Unmarshal(body); err != nil {
				return err
			}
			d.eb.Reset()
			for _, l := range e.Labels {
				unknown = unknown || len(l.XXX_unrecognized) > 0
				d.eb.Add(l.Name, l.Value)
			}
			if unknown || len(e.XXX_unrecognized) > 0 {
				return apierror.New(apierror.BadData, "an exemplar of series %d of the remote write request has fields remote write 1.0 does not define", i)
			}
			d.eb.Sort()
			d.eb.Overwrite(&d.el)
			return checkExemplarLabels(d.el, d.ls, lim)
		case seriesHistograms:
			var h prompb.Histogram
			if err := h.Unmarshal(body); err != nil {
				return err
			}
			unknown = len(h.XXX_unrecognized) > 0 || unknownSpans(h.PositiveSpans) || unknownSpans(h.NegativeSpans)
		}
		if unknown {
			return apierror.New(apierror.BadData, "series %d of the remote write request has fields remote write 1.0 does not define", i)
		}
		return nil
	})
}

// readLabel reads a prometheus.Label as its generated Unmarshal does (the
// last of a field repeated wins), name and value as views of body.
func readLabel(body []byte) (name, value string, err error) {
	err = protoFields(body, "prometheus.Label", labelFields, func(field int32, b []byte) error {
		if field == labelName {
			name = bodyString(b)
		} else {
			value = bodyString(b)
		}
		return nil
	})
	return name, value, err
}

func unknownSpans(spans []prompb.BucketSpan) bool {
	for i := range spans {
		if len(spans[i].XXX_unrecognized) > 0 {
			return true
		}
	}
	return false
}

// checkSeries decides on the labels of one series (sorted): well formed,
// within lim, inside the policy.
func checkSeries(ls labels.Labels, enf *promql.Enforcer, lim WriteLimits) error {
	// With two values for one name, the policy could check one and the
	// upstream keep the other.
	if name, dup := ls.HasDuplicateLabelNames(); dup {
		return apierror.New(apierror.BadData, "series %s has label %q more than once", shortLabels(ls), name)
	}
	if err := checkLabels(ls, lim); err != nil {
		return err
	}
	if !enf.Allows(ls) {
		return apierror.New(apierror.Forbidden, "series %s is outside the policy: the write request is refused", ls.String())
	}
	return nil
}

// checkExemplarLabels bounds the labels (sorted) of an exemplar of the
// series ls. They are not checked against the policy: they name no series
// (a trace ID, a span ID), are stored with the series' exemplar and are
// read only through it, with the series, which the policy decided on.
func checkExemplarLabels(el, series labels.Labels, lim WriteLimits) error {
	what := func() string { return "an exemplar of series " + shortLabels(series) }
	if name, dup := el.HasDuplicateLabelNames(); dup {
		return apierror.New(apierror.BadData, "%s has label %q more than once", what(), name)
	}
	return labelLimits(el, lim, what)
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
