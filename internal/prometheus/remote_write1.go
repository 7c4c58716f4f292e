package prometheus

import (
	"errors"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// Remote write 1.0 (prometheus.WriteRequest).

// Decoding of 1.0. As 2.0's (remote_write2.go), a 1.0 request is not
// decoded whole, which would copy every label name and value of every
// series into strings of their own: its fields and its series' labels are
// read as the generated code reads them (protoFields), names and values as
// views of the body; exemplars, histograms and metadata are decoded by
// Prometheus' own generated code into reused messages, and samples too
// unless they hold nothing but their two fields, well formed
// (plainSample). The decision on a series' labels is remembered
// (acceptedSeries, remote_write_cache.go). A field
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
	writeRequestFields = fields(writeRequestTimeseries, writeRequestMetadata)
	seriesFields       = fields(seriesLabelsField, seriesSamples, seriesExemplars, seriesHistograms)
	labelFields        = fields(labelName, labelValue)
)

// v1Decoder is what checkWriteV1 reuses from one request to the next.
type v1Decoder struct {
	series, metadata [][]byte
	// labelFields are the label fields of the series being read; key
	// is its key in acceptedSeries.
	labelFields [][]byte
	key         []byte
	// others are its other fields, in order.
	others   []seriesField
	b, eb    labels.ScratchBuilder
	ls, el   labels.Labels
	exemplar prompb.Exemplar
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
			clear(d.labelFields[:cap(d.labelFields)])
			clear(d.others[:cap(d.others)])
			d.others = d.others[:0]
			clear(d.key[:cap(d.key)])
			d.series, d.metadata, d.labelFields, d.key = d.series[:0], d.metadata[:0], d.labelFields[:0], d.key[:0]
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
// labels first, wherever they are in it (unless acceptedSeries has them),
// then its samples, exemplars and histograms.
func (d *v1Decoder) checkSeries(i int, data []byte, enf *promql.Enforcer, lim WriteLimits) error {
	d.labelFields, d.others = d.labelFields[:0], d.others[:0]
	err := protoFields(data, "prometheus.TimeSeries", seriesFields, func(field int32, body []byte) error {
		if field == seriesLabelsField {
			d.labelFields = append(d.labelFields, body)
		} else {
			d.others = append(d.others, seriesField{field, body})
		}
		return nil
	})
	if err != nil {
		return err
	}
	var cache bool
	d.key, cache = seriesKey(d.key, seriesKeyV1, enf, lim, len(d.labelFields))
	for _, f := range d.labelFields {
		d.key = appendKeyPart(d.key, f)
	}
	built := false
	if !cache || !acceptedSeries.has(d.key) {
		if err := d.buildLabels(); err != nil {
			return err
		}
		built = true
		if err := checkSeries(d.ls, enf, lim); err != nil {
			return err
		}
		if cache {
			acceptedSeries.add(d.key)
		}
	}
	for _, f := range d.others {
		if err := d.checkField(i, f.field, f.body, &built, lim); err != nil {
			return err
		}
	}
	return nil
}

// checkField checks a field of the i-th series other than its labels
// (sample, exemplar, histogram); built tells whether d.ls holds its
// labels.
func (d *v1Decoder) checkField(i int, field int32, body []byte, built *bool, lim WriteLimits) error {
	unknown := false
	switch field {
	case seriesSamples:
		if plainSample(body) {
			return nil
		}
		var s prompb.Sample
		if err := s.Unmarshal(body); err != nil {
			return err
		}
		unknown = len(s.XXX_unrecognized) > 0
	case seriesExemplars:
		if !*built {
			// For the exemplar's messages.
			if err := d.buildLabels(); err != nil {
				return err
			}
			*built = true
		}
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
}

// seriesField is a field of a TimeSeries, undecoded.
type seriesField struct {
	field int32
	body  []byte
}

// buildLabels reads the series' labels from d.labelFields into d.ls,
// sorted.
func (d *v1Decoder) buildLabels() error {
	d.b.Reset()
	for _, f := range d.labelFields {
		name, value, err := readLabel(f)
		if err != nil {
			return err
		}
		d.b.Add(name, value)
	}
	d.b.Sort()
	d.b.Overwrite(&d.ls)
	return nil
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
