package prometheus

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/jsonscan"
	"github.com/promgate/promgate/internal/limits"
)

// limitSince is the first Prometheus version that reads the limit
// parameter on path: 2.51 for series, label names and label values, 3.2
// for queries. ok false: path has no limit.
func limitSince(path string) (major, minor int, ok bool) {
	switch {
	case path == "/api/v1/series" || path == "/api/v1/labels" ||
		strings.HasPrefix(path, "/api/v1/label/") && strings.HasSuffix(path, "/values"):
		return 2, 51, true
	case path == "/api/v1/query" || path == "/api/v1/query_range":
		return 3, 2, true
	}
	return 0, 0, false
}

// seriesLimit applies the identity's max_series to a request for path
// whose parameters are vs: the smaller of it and the client's limit. It is
// sent upstream as limit where the upstream reads it (pushed); otherwise
// limit is dropped and promgate truncates the answer to n itself. n is 0
// when nothing is limited.
func (a *API) seriesLimit(r *http.Request, path string, vs url.Values) (n int, pushed bool, err error) {
	l := limits.FromContext(r.Context())
	if l == nil || l.MaxSeries == 0 {
		return 0, false, nil
	}
	major, minor, ok := limitSince(path)
	if !ok {
		return 0, false, nil
	}
	client := 0
	if s := vs.Get("limit"); s != "" {
		c, err := strconv.Atoi(s)
		if err != nil || c < 0 {
			return 0, false, apierror.New(apierror.BadData, "invalid parameter \"limit\": %q is not a non-negative integer", s)
		}
		client = c
	}
	n = l.SeriesLimit(client)
	if a.caps.atLeast(a, r, major, minor) {
		vs.Set("limit", strconv.Itoa(n))
		return n, true, nil
	}
	vs.Del("limit")
	return n, false, nil
}

// truncationWarning is Prometheus' own, so that a client reads the same
// answer from any upstream version.
const truncationWarning = "results truncated due to limit"

// serveTruncated answers a request to an upstream that does not read
// limit: its answer cut to the first n series (query results) or items
// (series, names, values), with Prometheus' warning when cut. Nearly
// every answer is under the limit: it is held back only until counted,
// then passes as the upstream sent it, headers and gzip included (gzip is
// inflated to count, never compressed again). Failures pass as the
// upstream gave them.
func (a *API) serveTruncated(w http.ResponseWriter, r *http.Request, path string, vs url.Values, n int) error {
	req := rebuild(r, path, vs)
	// Only an encoding promgate can read to count.
	switch ae := req.Header["Accept-Encoding"]; {
	case len(ae) == 0, len(ae) == 1 && ae[0] == "gzip":
	case acceptsGzip(r):
		req.Header["Accept-Encoding"] = []string{"gzip"}
	default:
		delete(req.Header, "Accept-Encoding")
	}
	h := heldAnswers.Get().(*heldAnswer)
	defer h.release()
	if err := h.hold(a.up, req); err != nil {
		return err
	}
	raw := h.body.Bytes()
	switch enc := h.header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		h.plain = buffers.Get().(*bytes.Buffer)
		if err := h.gunzip(raw); err != nil {
			return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", h.status())
		}
		raw = h.plain.Bytes()
	default:
		return apierror.New(apierror.Upstream, "upstream answered with Content-Encoding %q, which promgate cannot read", enc)
	}
	if h.over {
		// As fetch reads it, cut at maxMergeBytes.
		return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", h.status())
	}
	if h.passesWhole(path, raw, n) {
		h.writeTo(w)
		return nil
	}
	return h.truncate(w, r, path, raw, n)
}

// passesWhole reports, in one pass over raw, whether the answer is a
// success with n entries or fewer, read as envelopeData and entries read
// it. Anything else (more entries, a failure, an unreadable or unusual
// envelope) is left to truncate.
func (h *heldAnswer) passesWhole(path string, raw []byte, n int) bool {
	start := jsonscan.SkipSpace(raw, 0)
	if start >= len(raw) || raw[start] != '{' {
		return false
	}
	success, count := false, 0
	end, err := envelopeObject.Walk(raw, start, &h.walk, func(field, vs int) (int, error) {
		if field == 0 {
			if raw[vs] != '"' {
				_, e, err := jsonscan.StringAt(raw, vs) // null, or an error
				return e, err
			}
			e, esc, err := jsonscan.SkipString(raw, vs)
			if esc {
				s, _ := jsonscan.StringValue(raw, vs, e, esc)
				success = s == "success"
			} else {
				success = string(raw[vs+1:e-1]) == "success"
			}
			return e, err
		}
		c, e, err := countEntries(path, raw[vs:])
		if err != nil {
			return vs, errUncounted // not syntax: the walk goes on
		}
		count = c
		return vs + e, nil
	})
	return err == nil && jsonscan.SkipSpace(raw, end) == len(raw) && success &&
		h.walk.Found(1) && !h.walk.Dup && !repeatedKey(raw, h.walk.Spans) && count <= n
}

var errUncounted = errors.New("entries not counted")

// truncate answers with raw, the held answer uncompressed, cut to n
// entries; uncut, the answer passes as held.
func (h *heldAnswer) truncate(w http.ResponseWriter, r *http.Request, path string, raw []byte, n int) error {
	code := h.status()
	data, failure, err := envelopeData(raw)
	if err != nil {
		return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", code)
	}
	if failure != nil {
		h.writeTo(w)
		return nil
	}
	if count, err := entries(path, data); err == nil && count <= n {
		h.writeTo(w)
		return nil
	}
	var ar apiResponse
	if err := json.Unmarshal(raw, &ar); err != nil {
		return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", code)
	}
	data, cut, err := truncateData(path, ar.Data, n)
	if err != nil {
		return apierror.New(apierror.Upstream, "unexpected upstream answer on %s: %v", path, err)
	}
	if !cut {
		h.writeTo(w)
		return nil
	}
	ar.Data = data
	ar.Warnings = dedupe(append(ar.Warnings, truncationWarning))
	out, _ := json.Marshal(ar)
	writeJSON(w, r, code, out)
	return nil
}

// heldAnswer is a ResponseWriter that keeps an upstream's answer, as the
// streaming path would write it, until it is known whether it passes.
type heldAnswer struct {
	header http.Header
	code   int
	body   *bytes.Buffer
	plain  *bytes.Buffer // body inflated, when gzipped
	over   bool          // longer than maxMergeBytes: the rest was dropped
	walk   jsonscan.Walk
	zin    bytes.Reader     // gunzip's source, kept to spare allocations
	zout   io.LimitedReader // gunzip's bound, likewise
}

var heldAnswers = sync.Pool{New: func() any { return &heldAnswer{header: http.Header{}} }}

func (h *heldAnswer) Header() http.Header { return h.header }

func (h *heldAnswer) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}

func (h *heldAnswer) Write(p []byte) (int, error) {
	if h.code == 0 {
		h.code = http.StatusOK
	}
	if room := maxMergeBytes - h.body.Len(); len(p) > room {
		h.over = true
		h.body.Write(p[:room])
	} else {
		h.body.Write(p)
	}
	return len(p), nil
}

// hold streams the answer to req into h. An answer broken midway ends
// the streaming path's response with a panic (the client sees the
// connection close); nothing was sent yet here, so it is a 502 as for
// any failed read.
func (h *heldAnswer) hold(up Upstream, req *http.Request) (err error) {
	h.body = buffers.Get().(*bytes.Buffer)
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			err = apierror.New(apierror.Upstream, "reading upstream answer: the answer was cut")
		}
	}()
	up.ServeHTTP(h, req)
	return nil
}

// status is the answer's status: 200 when none was written, as net/http
// would send.
func (h *heldAnswer) status() int {
	if h.code == 0 {
		return http.StatusOK
	}
	return h.code
}

// writeTo sends the answer as it was held. Whole, its length is known.
func (h *heldAnswer) writeTo(w http.ResponseWriter) {
	dst := w.Header()
	for k, vv := range h.header {
		if len(dst[k]) == 0 {
			dst[k] = vv
		} else {
			dst[k] = append(dst[k], vv...)
		}
	}
	code := h.status()
	if h.header["Content-Length"] == nil && h.header["Trailer"] == nil && code != http.StatusNoContent && code != http.StatusNotModified {
		dst.Set("Content-Length", strconv.Itoa(h.body.Len()))
	}
	w.WriteHeader(code)
	_, _ = w.Write(h.body.Bytes())
}

func (h *heldAnswer) release() {
	putBuffer(h.body)
	putBuffer(h.plain)
	h.body, h.plain = nil, nil
	clear(h.header)
	h.code, h.over = 0, false
	heldAnswers.Put(h)
}

// gunzip inflates b into h.plain; longer than maxMergeBytes, it is over.
func (h *heldAnswer) gunzip(b []byte) error {
	h.zin.Reset(b)
	zr, err := getGzipReader(&h.zin)
	if err != nil {
		return err
	}
	defer gzipReaders.Put(zr)
	h.zout = io.LimitedReader{R: zr, N: maxMergeBytes + 1}
	_, err = h.plain.ReadFrom(&h.zout)
	h.zout.R = nil
	h.over = h.over || h.plain.Len() > maxMergeBytes
	return err
}

// entries counts the entries of an answer's data on path without
// decoding them: the elements of the array, or a query's series (-1: a
// scalar or string, one value).
func entries(path string, data []byte) (int, error) {
	n, _, err := countEntries(path, data)
	return n, err
}

// countEntries is entries, with the end of the data in data.
func countEntries(path string, data []byte) (n, end int, err error) {
	count := func(i int) (n, end int, err error) {
		end, err = jsonscan.WalkArray(data, i, func(vs int) (int, error) {
			n++
			return jsonscan.SkipValue(data, vs)
		})
		return n, end, err
	}
	i := jsonscan.SkipSpace(data, 0)
	if path != "/api/v1/query" && path != "/api/v1/query_range" {
		if i >= len(data) || data[i] != '[' {
			return 0, 0, jsonscan.SyntaxAt(data, i, "looking for an array")
		}
		return count(i)
	}
	if i >= len(data) || data[i] != '{' {
		return 0, 0, jsonscan.SyntaxAt(data, i, "looking for an object")
	}
	series := false // a vector or a matrix
	end, err = jsonscan.WalkObject(data, i, func(ks, ke int, esc bool, vs int) (int, error) {
		switch {
		case jsonscan.KeyIs(data, ks, ke, esc, "resultType") && data[vs] == '"':
			end, esc, err := jsonscan.SkipString(data, vs)
			if err != nil {
				return end, err
			}
			typ := data[vs+1 : end-1]
			if esc {
				s, err := jsonscan.StringValue(data, vs, end, esc)
				if err != nil {
					return end, err
				}
				typ = []byte(s)
			}
			series = string(typ) == "vector" || string(typ) == "matrix"
			return end, nil
		case jsonscan.KeyIs(data, ks, ke, esc, "result") && data[vs] == '[':
			c, end, err := count(vs)
			n = c
			return end, err
		}
		return jsonscan.SkipValue(data, vs)
	})
	if !series {
		return -1, end, err
	}
	return n, end, err
}

// queryData is the data of a query answer, its result kept as sent.
type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// truncateData cuts the data of an answer on path to n entries; cut
// reports whether there were more. Scalars and strings are one value.
func truncateData(path string, data json.RawMessage, n int) (_ json.RawMessage, cut bool, err error) {
	if path != "/api/v1/query" && path != "/api/v1/query_range" {
		return truncateArray(data, n)
	}
	var qd queryData
	if err := json.Unmarshal(data, &qd); err != nil {
		return nil, false, err
	}
	if qd.ResultType != "vector" && qd.ResultType != "matrix" {
		return data, false, nil
	}
	if qd.Result, cut, err = truncateArray(qd.Result, n); err != nil || !cut {
		return data, false, err
	}
	out, err := json.Marshal(qd)
	return out, true, err
}

func truncateArray(data json.RawMessage, n int) (json.RawMessage, bool, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, false, err
	}
	if len(items) <= n {
		return data, false, nil
	}
	out, err := json.Marshal(items[:n])
	return out, true, err
}
