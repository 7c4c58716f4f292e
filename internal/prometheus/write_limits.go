package prometheus

// WriteLimits bound what one write request (remote write 1.0 and 2.0,
// OTLP) may carry. They are checked before anything is forwarded, and a
// compressed body is never inflated past MaxDecodedBytes. The defaults are
// far above what a normal agent sends (Prometheus batches 2,000 samples,
// the OpenTelemetry SDKs a few thousand data points).
type WriteLimits struct {
	// MaxBodyBytes bounds the body as sent (compressed).
	MaxBodyBytes int64
	// MaxDecodedBytes bounds the body once decompressed.
	MaxDecodedBytes int64
	// MaxSeries bounds the series (data points' series for OTLP) of one
	// request.
	MaxSeries int
	// MaxLabelsPerSeries bounds the labels of one series, __name__
	// included.
	MaxLabelsPerSeries int
	// MaxLabelNameLength and MaxLabelValueLength bound one label, in bytes.
	MaxLabelNameLength  int
	MaxLabelValueLength int
}

// DefaultWriteLimits are the limits when the configuration sets none.
var DefaultWriteLimits = WriteLimits{
	MaxBodyBytes:        maxRemoteBody,
	MaxDecodedBytes:     maxRemoteDecoded,
	MaxSeries:           100_000,
	MaxLabelsPerSeries:  128,
	MaxLabelNameLength:  1024,
	MaxLabelValueLength: 16 << 10,
}

// withDefaults fills the limits left at zero.
func (l WriteLimits) withDefaults() WriteLimits {
	d := DefaultWriteLimits
	if l.MaxBodyBytes > 0 {
		d.MaxBodyBytes = l.MaxBodyBytes
	}
	if l.MaxDecodedBytes > 0 {
		d.MaxDecodedBytes = l.MaxDecodedBytes
	}
	if l.MaxSeries > 0 {
		d.MaxSeries = l.MaxSeries
	}
	if l.MaxLabelsPerSeries > 0 {
		d.MaxLabelsPerSeries = l.MaxLabelsPerSeries
	}
	if l.MaxLabelNameLength > 0 {
		d.MaxLabelNameLength = l.MaxLabelNameLength
	}
	if l.MaxLabelValueLength > 0 {
		d.MaxLabelValueLength = l.MaxLabelValueLength
	}
	return d
}
