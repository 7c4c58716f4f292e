package prometheus

import (
	"net/http"
	"strings"

	"github.com/promgate/promgate/internal/apierror"
)

// The Content-Types of an OTLP/HTTP metrics export, as Prometheus reads
// them: the header's first value compared as it is, without parameters.
const (
	otlpProtoType = "application/x-protobuf"
	otlpJSONType  = "application/json"
)

// otlpReadLimit is what Prometheus reads of a decoded OTLP body (it
// truncates the rest): promgate refuses larger bodies rather than check
// more than the upstream will read.
const otlpReadLimit = 32 << 20

// otlpBody is an OTLP request body: as sent (forwarded as it came) and
// decoded (what promgate checks).
type otlpBody struct {
	sent    []byte
	decoded []byte
	json    bool
	// identity: the client sent Content-Encoding: identity, which
	// Prometheus does not accept; the header is dropped upstream.
	identity bool
}

// otlpContentType reads the body's format from the Content-Type header,
// exactly as Prometheus does.
func otlpContentType(h http.Header) (json bool, err error) {
	cts := h.Values("Content-Type")
	if len(cts) == 1 {
		switch cts[0] {
		case otlpProtoType:
			return false, nil
		case otlpJSONType:
			return true, nil
		}
	}
	return false, apierror.New(apierror.UnsupportedMedia, "unsupported Content-Type %q: OTLP metrics need %s or %s", strings.Join(cts, ", "), otlpProtoType, otlpJSONType)
}

// readOTLPBody reads an OTLP request body within lim: at most
// lim.MaxBodyBytes as sent, and a gzip body is inflated no further than
// lim.MaxDecodedBytes (nor than Prometheus reads), so a gzip bomb costs
// what its limit allows and no more.
func readOTLPBody(r *http.Request, lim WriteLimits) (*otlpBody, error) {
	json, err := otlpContentType(r.Header)
	if err != nil {
		return nil, err
	}
	b := &otlpBody{json: json}
	gz := false
	switch enc := r.Header.Values("Content-Encoding"); {
	case len(enc) == 0 || (len(enc) == 1 && enc[0] == ""):
	case len(enc) == 1 && enc[0] == "gzip":
		gz = true
	case len(enc) == 1 && enc[0] == "identity":
		b.identity = true
	default:
		return nil, apierror.New(apierror.UnsupportedMedia, "unsupported Content-Encoding %q: OTLP metrics are sent uncompressed or with Content-Encoding: gzip", strings.Join(enc, ", "))
	}
	maxDecoded := min(lim.MaxDecodedBytes, otlpReadLimit)
	maxSent := lim.MaxBodyBytes
	if !gz {
		maxSent = min(maxSent, maxDecoded)
	}
	if r.ContentLength > maxSent {
		return nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", maxSent)
	}
	// In one allocation when the length is announced.
	if b.sent, err = readBounded(nil, r, maxSent); err != nil {
		return nil, err
	}
	if !gz {
		b.decoded = b.sent
		return b, nil
	}
	b.decoded, err = decodeGzip(b.sent, maxDecoded)
	if err != nil {
		return nil, err
	}
	return b, nil
}
