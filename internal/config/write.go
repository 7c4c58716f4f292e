package config

import (
	"fmt"
	"strconv"

	"github.com/alecthomas/units"
	"go.yaml.in/yaml/v3"
)

// WriteLimits is the write_limits: section: the bounds of one write
// request (remote write 1.0 and 2.0, OTLP) of a restricted identity. A key
// left out (or 0) takes promgate's default, which a normal agent never
// reaches; see the README.
type WriteLimits struct {
	// MaxBodySize bounds the body as sent (compressed).
	MaxBodySize ByteSize `yaml:"max_body_size"`
	// MaxDecodedSize bounds the body once decompressed; a body that would
	// decompress past it is refused before it is.
	MaxDecodedSize ByteSize `yaml:"max_decoded_size"`
	// MaxSeriesPerRequest bounds the series (OTLP: data points) of one
	// request.
	MaxSeriesPerRequest int `yaml:"max_series_per_request"`
	// MaxLabelsPerSeries bounds the labels of a series, its name included.
	MaxLabelsPerSeries int `yaml:"max_labels_per_series"`
	// MaxLabelNameLength and MaxLabelValueLength bound a label's name and
	// value, in bytes.
	MaxLabelNameLength  int `yaml:"max_label_name_length"`
	MaxLabelValueLength int `yaml:"max_label_value_length"`
}

// ByteSize is a size in bytes, written as a number of bytes or with a
// unit as Prometheus writes them (512KiB, 32MiB, 1GiB; KB, MB and GB are
// the same powers of 1024, as in Prometheus' body_size_limit).
type ByteSize int64

// maxWriteSize bounds the sizes of write_limits: promgate holds a body in
// memory while it checks it.
const maxWriteSize = 1 << 30

// UnmarshalYAML reads a ByteSize; an error names its line.
func (s *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	var text string
	if err := n.Decode(&text); err != nil {
		return err
	}
	if v, err := strconv.ParseInt(text, 10, 64); err == nil {
		*s = ByteSize(v)
		return nil
	}
	v, err := units.ParseBase2Bytes(text)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a size (such as 1048576, 512KiB, 32MiB)", n.Line, text)
	}
	*s = ByteSize(v)
	return nil
}

// writeLimits checks the write_limits section.
func (v *validator) writeLimits(w *WriteLimits, key, n *yaml.Node) {
	if w == nil {
		return
	}
	at := func(name string) int { return lineOf(field(n, name), key) }
	size := func(name string, s ByteSize) {
		switch {
		case s < 0:
			v.errorf(at(name), "write_limits.%s must not be negative (0 or absent: the default)", name)
		case s > maxWriteSize:
			v.errorf(at(name), "write_limits.%s must be at most 1GiB: promgate holds a body in memory while it checks it", name)
		}
	}
	count := func(name string, c int) {
		if c < 0 {
			v.errorf(at(name), "write_limits.%s must not be negative (0 or absent: the default)", name)
		}
	}
	size("max_body_size", w.MaxBodySize)
	size("max_decoded_size", w.MaxDecodedSize)
	count("max_series_per_request", w.MaxSeriesPerRequest)
	count("max_labels_per_series", w.MaxLabelsPerSeries)
	count("max_label_name_length", w.MaxLabelNameLength)
	count("max_label_value_length", w.MaxLabelValueLength)
}
