package prometheus

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/promgate/promgate/internal/apierror"
)

// The bodies of write requests (remote write, OTLP) are read here, within
// the WriteLimits, and their series' labels bounded.

// Content-Encodings of write bodies, spelt as the receivers compare them.
const (
	encodingSnappy   = "snappy"
	encodingGzip     = "gzip"
	encodingIdentity = "identity"
)

// readWriteBody reads the body of a write request within lim and returns
// it as sent and decoded (the same bytes when it is not compressed). Its
// Content-Encoding must be one of accepted, spelt exactly (the upstream
// compares it exactly); a request without one is read as dflt.
//
// The decoded size is refused before the body is inflated past
// lim.MaxDecodedBytes: snappy's block format announces the decoded length
// in its header, which is checked before anything is decoded; gzip is
// inflated through a reader that stops one byte past the limit.
func readWriteBody(r *http.Request, lim WriteLimits, dflt string, accepted ...string) (sent, raw []byte, err error) {
	enc := dflt
	switch vs := r.Header.Values("Content-Encoding"); len(vs) {
	case 0:
	case 1:
		enc = vs[0]
	default:
		return nil, nil, apierror.New(apierror.UnsupportedMedia, "more than one Content-Encoding (%q): send one of %s", strings.Join(vs, ", "), strings.Join(accepted, ", "))
	}
	known := false
	for _, a := range accepted {
		known = known || enc == a
	}
	if !known {
		return nil, nil, apierror.New(apierror.UnsupportedMedia, "unsupported Content-Encoding %q: this endpoint accepts %s", enc, strings.Join(accepted, ", "))
	}
	sent, err = readBounded(getWriteBuffer(), r, lim.MaxBodyBytes)
	if err != nil {
		return nil, nil, err
	}
	switch enc {
	case encodingSnappy:
		raw, err = decodeSnappy(getWriteBuffer(), sent, lim.MaxDecodedBytes)
	case encodingGzip:
		raw, err = decodeGzip(sent, lim.MaxDecodedBytes)
	case encodingIdentity, "":
		raw = sent
		if int64(len(raw)) > lim.MaxDecodedBytes {
			err = apierror.New(apierror.TooLarge, "request body larger than %d bytes", lim.MaxDecodedBytes)
		}
	default:
		err = apierror.New(apierror.UnsupportedMedia, "unsupported Content-Encoding %q", enc)
	}
	if err != nil {
		return nil, nil, err
	}
	return sent, raw, nil
}

// writeBuffers keeps the buffers of remote write bodies (as sent, and
// decoded) from one request to the next: a batch is tens to hundreds of
// kilobytes, allocated and collected on every request otherwise. A
// buffer is cleared when put back: a pooled buffer holds nothing of a
// request. Buffers larger than maxPooledWriteBuffer are left to the garbage
// collector.
var writeBuffers sync.Pool

const maxPooledWriteBuffer = 4 << 20

// getWriteBuffer is an empty buffer, with room when one is pooled.
func getWriteBuffer() []byte {
	if p, ok := writeBuffers.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return nil
}

// putWriteBuffers gives back the buffers of readWriteBody (sent and raw,
// which may be the same), once nothing refers to them any more.
func putWriteBuffers(sent, raw []byte) {
	put := func(b []byte) {
		if c := cap(b); c > 0 && c <= maxPooledWriteBuffer {
			b = b[:c]
			clear(b)
			writeBuffers.Put(&b)
		}
	}
	put(sent)
	if cap(raw) > 0 && (cap(sent) == 0 || &raw[:1][0] != &sent[:1][0]) {
		put(raw)
	}
}

// readBounded reads r's body, at most limit bytes, into dst's room (or
// a new buffer).
func readBounded(dst []byte, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", limit)
	}
	buf := bytes.NewBuffer(dst[:0])
	if r.ContentLength > 0 {
		// One allocation of the announced size (and one byte to see
		// the end); the bound below holds whatever it announced.
		buf.Grow(int(r.ContentLength) + 1)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", limit)
		}
		return nil, apierror.New(apierror.BadData, "reading request body: %v", err)
	}
	return buf.Bytes(), nil
}

// decodeSnappy decodes a snappy block whose header announces at most
// limit bytes, into dst's room when it is enough. The header is all
// snappy.Decode allocates by, and the decoder never writes past it.
func decodeSnappy(dst, b []byte, limit int64) ([]byte, error) {
	n, err := snappy.DecodedLen(b)
	if errors.Is(err, snappy.ErrTooLarge) {
		return nil, apierror.New(apierror.TooLarge, "request body decompresses to more than %d bytes", limit)
	}
	if err != nil {
		return nil, apierror.New(apierror.BadData, "request body is not snappy-compressed: %v", err)
	}
	if int64(n) > limit {
		return nil, apierror.New(apierror.TooLarge, "request body decompresses to %d bytes, more than %d", n, limit)
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	raw, err := snappy.Decode(dst[:n], b)
	if err != nil {
		return nil, apierror.New(apierror.BadData, "request body is not snappy-compressed: %v", err)
	}
	return raw, nil
}

// decodeGzip inflates a gzip body (one member or more) up to limit bytes;
// one byte more refuses it, so a bomb is never inflated further.
func decodeGzip(b []byte, limit int64) ([]byte, error) {
	zr, err := getGzipReader(bytes.NewReader(b))
	if err != nil {
		return nil, apierror.New(apierror.BadData, "request body is not gzip-compressed: %v", err)
	}
	defer gzipReaders.Put(zr)
	var out bytes.Buffer
	_, err = out.ReadFrom(io.LimitReader(zr, limit+1))
	switch {
	case err != nil:
		return nil, apierror.New(apierror.BadData, "request body is not valid gzip: %v", err)
	case int64(out.Len()) > limit:
		return nil, apierror.New(apierror.TooLarge, "request body decompresses to more than %d bytes", limit)
	}
	return out.Bytes(), nil
}

// gzipReaders are reused (getGzipReader): a new reader allocates its
// inflater's tables.
var gzipReaders sync.Pool

// getGzipReader returns a pooled gzip reader of src, its header read; the
// caller puts it back in gzipReaders when done.
func getGzipReader(src io.Reader) (*gzip.Reader, error) {
	if zr, ok := gzipReaders.Get().(*gzip.Reader); ok {
		if err := zr.Reset(src); err != nil {
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(src)
}

// checkLabels applies lim to the labels of one series: their number and
// the length of each name and value. The labels are those the upstream
// will store (sorted, as built by a labels.ScratchBuilder).
func checkLabels(ls labels.Labels, lim WriteLimits) error {
	return labelLimits(ls, lim, func() string { return "series " + shortLabels(ls) })
}

// labelLimits applies lim to ls; what names ls in messages.
func labelLimits(ls labels.Labels, lim WriteLimits, what func() string) error {
	if n := ls.Len(); n > lim.MaxLabelsPerSeries {
		return apierror.New(apierror.BadData, "%s has %d labels, more than %d", what(), n, lim.MaxLabelsPerSeries)
	}
	var err error
	ls.Range(func(l labels.Label) {
		switch {
		case err != nil:
		case len(l.Name) > lim.MaxLabelNameLength:
			err = apierror.New(apierror.BadData, "%s has a label name of %d bytes, more than %d", what(), len(l.Name), lim.MaxLabelNameLength)
		case len(l.Value) > lim.MaxLabelValueLength:
			err = apierror.New(apierror.BadData, "%s has a value of label %q of %d bytes, more than %d", what(), shorten(l.Name), len(l.Value), lim.MaxLabelValueLength)
		}
	})
	return err
}

// shortLabelLen bounds each name and value a message quotes: a refused
// series may be refused for the length of one.
const shortLabelLen = 64

// shortLabels is ls as Prometheus prints it, each name and value cut to
// shortLabelLen bytes and at most 16 labels, for messages.
func shortLabels(ls labels.Labels) string {
	if ls.Len() <= 16 {
		long := false
		ls.Range(func(l labels.Label) { long = long || len(l.Name) > shortLabelLen || len(l.Value) > shortLabelLen })
		if !long {
			return ls.String()
		}
	}
	b := labels.NewScratchBuilder(16)
	n := 0
	ls.Range(func(l labels.Label) {
		if n < 16 {
			b.Add(shorten(l.Name), shorten(l.Value))
		}
		n++
	})
	s := b.Labels().String()
	if n > 16 {
		s = strings.TrimSuffix(s, "}") + ", …}"
	}
	return s
}

// shorten cuts s to shortLabelLen bytes on a rune boundary, marking the cut.
func shorten(s string) string {
	if len(s) <= shortLabelLen {
		return s
	}
	cut := shortLabelLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
