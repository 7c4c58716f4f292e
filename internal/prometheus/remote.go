package prometheus

import (
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/golang/snappy"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/upstream"
)

// Remote read and remote write carry snappy-compressed protobuf. Their
// bodies have their own bounds: a remote write batch is routinely larger
// than the urlencoded bodies maxBody is sized for.
const (
	// maxRemoteBody bounds a compressed remote read or write body; it is
	// Prometheus' own limit on remote read requests.
	maxRemoteBody = 32 << 20
	// maxRemoteDecoded bounds the body once decompressed.
	maxRemoteDecoded = 64 << 20
	// maxFrameBytes is the size a streamed frame promgate writes aims for,
	// as Prometheus' (a series larger than that is split across frames).
	maxFrameBytes = 1 << 20
	// maxUpstreamFrame bounds one frame read from the upstream.
	maxUpstreamFrame = 64 << 20
)

const (
	protoContentType    = "application/x-protobuf"
	streamedContentType = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checkSnappyEncoding(h http.Header) error {
	if enc := h.Values("Content-Encoding"); len(enc) > 1 || (len(enc) == 1 && enc[0] != "snappy") {
		return apierror.New(apierror.UnsupportedMedia, "unsupported Content-Encoding %q: the body must be snappy-compressed (Content-Encoding: snappy)", strings.Join(enc, ", "))
	}
	return nil
}

// readSnappyBody returns the request body as sent and decompressed, both
// bounded.
func readSnappyBody(r *http.Request) (compressed, raw []byte, err error) {
	if r.ContentLength > maxRemoteBody {
		return nil, nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", maxRemoteBody)
	}
	compressed, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, maxRemoteBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", maxRemoteBody)
		}
		return nil, nil, apierror.New(apierror.BadData, "reading request body: %v", err)
	}
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return nil, nil, apierror.New(apierror.BadData, "request body is not snappy-compressed: %v", err)
	}
	if n > maxRemoteDecoded {
		return nil, nil, apierror.New(apierror.TooLarge, "request body decompresses to %d bytes, more than %d", n, maxRemoteDecoded)
	}
	raw, err = snappy.Decode(nil, compressed)
	if err != nil {
		return nil, nil, apierror.New(apierror.BadData, "request body is not snappy-compressed: %v", err)
	}
	return compressed, raw, nil
}

// remoteRequest is r with a new body, for the upstream. Its headers are
// the client's (X-Prometheus-Remote-*-Version, Content-Encoding, …); the
// upstream strips those that carry identity.
func remoteRequest(r *http.Request, path string, body []byte) *http.Request {
	out := r.Clone(r.Context())
	out.URL = &url.URL{Path: path}
	upstream.InMemory(out, body)
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return out
}
