package prometheus

// WriteLimits bound one write request (remote write 1.0 and 2.0, OTLP).
// They protect promgate and the upstream from hostile or broken bodies;
// their defaults are far above what a normal agent sends (Prometheus
// sends at most max_samples_per_send samples, 2,000 by default, per
// request; an OpenTelemetry Collector's batches are of a few thousand
// points).
type WriteLimits struct {
	// MaxBodyBytes bounds the body as sent (compressed, when it is).
	MaxBodyBytes int64
	// MaxDecodedBytes bounds the body once decompressed. It is checked
	// before decompressing (snappy announces its decoded length) or while
	// decompressing (gzip): a small body that would inflate past it is
	// refused without being inflated.
	MaxDecodedBytes int64
	// MaxSeries bounds the series (remote write) or data points (OTLP) of
	// one request.
	MaxSeries int
	// MaxLabelsPerSeries bounds the labels of one series, its name
	// included.
	MaxLabelsPerSeries int
	// MaxLabelNameLength and MaxLabelValueLength bound one label's name
	// and value, in bytes.
	MaxLabelNameLength  int
	MaxLabelValueLength int
}

// DefaultWriteLimits are the limits of a field left zero.
var DefaultWriteLimits = WriteLimits{
	MaxBodyBytes:        maxRemoteBody,
	MaxDecodedBytes:     maxRemoteDecoded,
	MaxSeries:           100_000,
	MaxLabelsPerSeries:  256,
	MaxLabelNameLength:  1024,
	MaxLabelValueLength: 16 * 1024,
}

// withDefaults returns l with its zero (or negative) fields set to
// DefaultWriteLimits'.
func (l WriteLimits) withDefaults() WriteLimits {
	d := DefaultWriteLimits
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = d.MaxDecodedBytes
	}
	if l.MaxSeries <= 0 {
		l.MaxSeries = d.MaxSeries
	}
	if l.MaxLabelsPerSeries <= 0 {
		l.MaxLabelsPerSeries = d.MaxLabelsPerSeries
	}
	if l.MaxLabelNameLength <= 0 {
		l.MaxLabelNameLength = d.MaxLabelNameLength
	}
	if l.MaxLabelValueLength <= 0 {
		l.MaxLabelValueLength = d.MaxLabelValueLength
	}
	return l
}
