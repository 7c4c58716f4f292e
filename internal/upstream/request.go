package upstream

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"

	"golang.org/x/net/http/httpguts"

	"github.com/promgate/promgate/internal/apierror"
)

// request is one request as it will be sent: every path (enforced queries,
// filtered listings, an unrestricted client's streamed POST, the UI and
// Alertmanager routes) is prepared here and written by writeRequest, so
// that the header rules below hold everywhere.
type request struct {
	in   *http.Request // as received, for X-Forwarded-*
	out  *http.Request // method, URL and headers to send
	body []byte        // the whole body, when in memory
	// stream is a body still to be read from the client (nil when body
	// holds it); length is its length, -1 when unknown (sent chunked).
	stream   io.Reader
	length   int64
	extra    http.Header // the tenancy headers, rendered
	forwards bool        // add X-Forwarded-* (ServeHTTP, not Do)

	// authorization is promgate's credentials for the upstream, rendered;
	// "" for none.
	authorization string
}

// replayable reports whether the request may be sent again on another
// connection when a reused one turns out closed.
func (rq *request) replayable() bool {
	return rq.stream == nil && rq.body == nil && isIdempotent(rq.out.Method)
}

// maxReadBody is the largest client body read whole before the request is
// sent; a longer one, or one of unknown length, is streamed.
const maxReadBody = 1 << 20

// newRequest prepares r (whose URL path and query are the upstream's) for
// sending. A tenancy header that cannot be rendered fails the request:
// forwarding without it could give the upstream no tenant at all.
func (u *Upstream) newRequest(r *http.Request, forwards bool) (*request, error) {
	extra, err := u.renderHeaders(r)
	if err != nil {
		return nil, err
	}
	rq := &request{in: r, out: r, extra: extra, forwards: forwards}
	if u.authorization != nil {
		if rq.authorization, err = u.authorization.value(); err != nil {
			u.logger.Error("upstream credentials could not be read", "credentials", u.authorization.kind, "err", err)
			return nil, apierror.New(apierror.Upstream, "upstream unavailable: promgate's credentials for the upstream (%s) could not be read", u.authorization.kind)
		}
	}
	body, ok := bodyInMemory(r)
	if !ok && r.ContentLength > 0 && r.ContentLength <= maxReadBody {
		// A small body of known length (an unrestricted client's POST):
		// read before the request is sent, in one piece, so that it can
		// go on any pooled connection.
		body = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		ok = true
	}
	if ok {
		rq.body = body
		return rq, nil
	}
	rq.stream, rq.length = r.Body, r.ContentLength
	if len(r.TransferEncoding) > 0 || rq.length < 0 {
		rq.length = -1
	}
	return rq, nil
}

// InMemory makes b the body of r, sent as it is: the upstream writes
// these bytes themselves rather than a copy (a write request's body, read
// and checked whole, is forwarded so). b must not change until r is
// served.
func InMemory(r *http.Request, b []byte) {
	r.Body = memBody{bytes.NewReader(b), b}
	r.ContentLength = int64(len(b))
	r.TransferEncoding = nil
	r.GetBody = func() (io.ReadCloser, error) { return memBody{bytes.NewReader(b), b}, nil }
}

// memBody is a body set by InMemory.
type memBody struct {
	*bytes.Reader
	b []byte
}

func (memBody) Close() error { return nil }

// bodyInMemory returns the body of r when it is known without reading
// the client: none, or one promgate built (GetBody set, length known).
func bodyInMemory(r *http.Request) (body []byte, ok bool) {
	if mb, isMem := r.Body.(memBody); isMem && int64(len(mb.b)) == r.ContentLength {
		return mb.b, true
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 && r.GetBody == nil {
		return nil, r.ContentLength <= 0 && len(r.TransferEncoding) == 0
	}
	if r.GetBody == nil || r.ContentLength < 0 || r.ContentLength > 64<<20 {
		return nil, false
	}
	rc, err := r.GetBody()
	if err != nil {
		return nil, false
	}
	defer rc.Close()
	b := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, false
	}
	return b, true
}

// hopHeaders are the hop-by-hop headers of RFC 9110 section 7.6.1 (as
// httputil.ReverseProxy removes them), and the ones net/http writes itself.
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// Headers of the client request that promgate sets itself or never passes.
// Expect is answered by promgate's own server; the body is sent at once.
var ownRequestHeaders = map[string]bool{
	"Host":              true,
	"User-Agent":        true,
	"Content-Length":    true,
	"Cookie":            true,
	"Expect":            true,
	"Forwarded":         true,
	"X-Forwarded-For":   true,
	"X-Forwarded-Host":  true,
	"X-Forwarded-Proto": true,
}

// writeRequest renders the request's head (and an in-memory body) into
// c.buf and writes it. The client's headers come first, without the
// hop-by-hop ones, those its Connection header names, identity headers and
// cookies; promgate's own (X-Forwarded-*, the upstream's credentials, the
// tenancy headers) are added after that filtering, so no client header can
// remove them.
func (u *Upstream) writeRequest(c *conn, rq *request) error {
	out := rq.out
	b := c.buf[:0]
	b = append(b, out.Method...)
	b = append(b, ' ')
	b = append(b, u.requestURI(out)...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, u.base.Host...)
	b = append(b, "\r\n"...)

	h := out.Header
	connTokens := h["Connection"]
	for name, values := range h {
		if hopHeaders[name] || ownRequestHeaders[name] || u.stripped[name] {
			continue
		}
		if len(connTokens) > 0 && httpguts.HeaderValuesContainsToken(connTokens, name) {
			continue
		}
		var err error
		if b, err = appendHeader(b, name, values); err != nil {
			return err
		}
	}
	if ua := h["User-Agent"]; len(ua) > 0 && ua[0] != "" {
		var err error
		if b, err = appendHeader(b, "User-Agent", ua[:1]); err != nil {
			return err
		}
	}
	if httpguts.HeaderValuesContainsToken(h["Te"], "trailers") {
		b = append(b, "Te: trailers\r\n"...)
	}
	if rq.forwards {
		in := rq.in
		if host, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
			b = append(b, "X-Forwarded-For: "...)
			b = append(b, host...)
			b = append(b, "\r\n"...)
		}
		var err error
		if b, err = appendHeader(b, "X-Forwarded-Host", []string{in.Host}); err != nil {
			return err
		}
		if in.TLS == nil {
			b = append(b, "X-Forwarded-Proto: http\r\n"...)
		} else {
			b = append(b, "X-Forwarded-Proto: https\r\n"...)
		}
	}
	if rq.authorization != "" {
		b = append(b, "Authorization: "...)
		b = append(b, rq.authorization...)
		b = append(b, "\r\n"...)
	}
	for name, values := range rq.extra {
		var err error
		if b, err = appendHeader(b, http.CanonicalHeaderKey(name), values); err != nil {
			return err
		}
	}
	switch {
	case rq.stream != nil && rq.length < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case rq.stream != nil:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, rq.length, 10)
		b = append(b, "\r\n"...)
	case len(rq.body) > 0 || out.Method == http.MethodPost || out.Method == http.MethodPut || out.Method == http.MethodPatch:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(rq.body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	if len(rq.body) > copiedBody {
		// The head and the body as they are, in one system call
		// where the connection allows (writev).
		c.buf = b
		bufs := net.Buffers{b, rq.body}
		_, err := bufs.WriteTo(c.nc)
		return err
	}
	b = append(b, rq.body...)
	c.buf = b
	_, err := c.nc.Write(b)
	return err
}

// copiedBody is the longest body copied after the head into one buffer;
// a longer one is written from where it is.
const copiedBody = 16 << 10

func appendHeader(b []byte, name string, values []string) ([]byte, error) {
	if !httpguts.ValidHeaderFieldName(name) {
		return b, fmt.Errorf("net/http: invalid header field name %q", name)
	}
	for _, v := range values {
		if !httpguts.ValidHeaderFieldValue(v) {
			return b, fmt.Errorf("net/http: invalid header field value for %q", name)
		}
		b = append(b, name...)
		b = append(b, ": "...)
		b = append(b, textproto.TrimString(v)...)
		b = append(b, "\r\n"...)
	}
	return b, nil
}

// basicAuth is the Authorization value for the credentials of a URL.
func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// requestURI is the path and query the upstream sees: the base URL's path
// joined with out's.
func (u *Upstream) requestURI(out *http.Request) string {
	p := out.URL
	if u.basePath == "" {
		return p.RequestURI()
	}
	joined := *p
	joined.Path = u.basePath + p.Path
	if p.RawPath != "" {
		joined.RawPath = u.basePath + p.RawPath
	}
	return joined.RequestURI()
}
