// Package upstream forwards enforced requests to one server (Prometheus,
// Alertmanager) over a pool of long-lived connections, streaming responses.
package upstream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/identity"
)

// Options configure an Upstream.
type Options struct {
	// URL is the server's base URL; request paths are appended to its path.
	URL *url.URL
	// Timeout bounds a whole call, response body included.
	Timeout time.Duration
	// Headers renders the headers set on every request for a user, for
	// per-tenant headers such as X-Scope-OrgID; nil for none.
	Headers func(user string) (http.Header, error)
	// HeaderNames are the names Headers sets: a copy sent by the client is
	// removed even where rendering yields nothing.
	HeaderNames []string
	// StripHeaders carry the client's identity (Authorization, the trusted
	// header); they must not reach the upstream.
	StripHeaders []string
	// MaxIdleConns sizes the keep-alive pool (default 256).
	MaxIdleConns int
	// PublicPrefix is the path under which clients reach this upstream
	// through promgate ("/prometheus", "/alertmanager"); redirects to the
	// upstream's own paths are rewritten under it.
	PublicPrefix string
}

// Upstream is one server behind promgate.
type Upstream struct {
	base      *url.URL
	basePath  string // base.Path without its trailing slash
	timeout   time.Duration
	headers   func(user string) (http.Header, error)
	strip     []string
	stripped  map[string]bool // strip, as a set
	pool      *connPool
	dialer    *dialer
	transport *http.Transport        // for request bodies streamed from the client
	proxy     *httputil.ReverseProxy // over transport
	logger    *slog.Logger
	public    string
}

// New returns an Upstream. Header templates were validated with the
// configuration; one that fails to parse here is an error.
func New(o Options, logger *slog.Logger) (*Upstream, error) {
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = 256
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	u := &Upstream{
		base:     o.URL,
		basePath: strings.TrimSuffix(o.URL.Path, "/"),
		timeout:  o.Timeout,
		headers:  o.Headers,
		stripped: map[string]bool{},
		logger:   logger,
		public:   strings.TrimSuffix(o.PublicPrefix, "/"),
		// The pool holds as many idle connections as requests may be in
		// flight, so that a burst does not open new ones.
		pool:   &connPool{max: o.MaxIdleConns, timeout: idleConnTimeout},
		dialer: newDialer(o.URL.Scheme, o.URL.Host),
		transport: &http.Transport{
			Proxy:       nil, // never route tenant traffic through an environment proxy
			DialContext: (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			// The client's Accept-Encoding is passed through; letting the
			// transport ask for gzip on its own would make it decompress
			// every answer it streams (the round trip SPEC section 9 warns of).
			DisableCompression:    true,
			MaxIdleConns:          o.MaxIdleConns,
			MaxIdleConnsPerHost:   o.MaxIdleConns,
			IdleConnTimeout:       idleConnTimeout,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
	}
	for _, h := range o.StripHeaders {
		u.strip = append(u.strip, http.CanonicalHeaderKey(h))
	}
	for _, h := range o.HeaderNames {
		// A tenancy header sent by the client must never reach the upstream.
		u.strip = append(u.strip, http.CanonicalHeaderKey(h))
	}
	for _, h := range u.strip {
		u.stripped[h] = true
	}
	u.proxy = &httputil.ReverseProxy{
		Rewrite:        u.rewrite,
		Transport:      u.transport,
		BufferPool:     bufferPool{},
		ErrorHandler:   u.errorHandler,
		ModifyResponse: u.modifyResponse,
	}
	return u, nil
}

// idleConnTimeout closes connections idle for longer, before the upstream
// does (Prometheus after 5 minutes).
const idleConnTimeout = 90 * time.Second

// maxReadBody is the largest client body read whole before the request is
// sent; a longer one, or one of unknown length, is streamed.
const maxReadBody = 1 << 20

// ServeHTTP forwards r, whose URL path and query are already the ones the
// upstream must see, and streams the answer back.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	extra, err := u.renderHeaders(r)
	if err != nil {
		apierror.Write(w, err)
		return
	}
	body, ok := bodyInMemory(r)
	if !ok && r.ContentLength > 0 && r.ContentLength <= maxReadBody {
		// A small body of known length (an unrestricted client's POST):
		// read before the request is sent, in one piece.
		body = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			u.errorHandler(w, r, err)
			return
		}
		ok = true
	}
	if !ok {
		u.serveStreamedBody(w, r)
		return
	}
	x, err := u.roundTrip(r.Context(), &request{in: r, out: r, body: body, extra: extra, forwards: true})
	if err != nil {
		u.errorHandler(w, r, err)
		return
	}
	defer x.finish()
	u.copyResponse(w, r, x)
}

// serveStreamedBody forwards a request whose body is still to be read from
// the client, with http.Transport, which writes it while reading the answer.
func (u *Upstream) serveStreamedBody(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), u.timeout)
	defer cancel()
	// Go's HTTP/1 server closes the request body once the response starts;
	// a body still being streamed upstream (unrestricted POSTs) would be
	// cut and the upstream connection torn down mid-answer (golang/go#40747).
	_ = http.NewResponseController(w).EnableFullDuplex()
	out := r.WithContext(ctx)
	if err := u.setHeaders(out); err != nil {
		apierror.Write(w, err)
		return
	}
	u.proxy.ServeHTTP(w, out)
}

// copyResponse writes the answer of x to w as httputil.ReverseProxy would:
// hop-by-hop headers removed, redirects moved under the public prefix,
// trailers passed on. The body goes in pieces of the copy buffer's size:
// an answer of unknown length (chunked) that fits in one is sent with its
// length, in one write; a longer one is streamed. Event streams are
// flushed as they come.
func (u *Upstream) copyResponse(w http.ResponseWriter, r *http.Request, x *exchange) {
	resp := x.resp
	removeHopByHop(resp.Header)
	_ = u.modifyResponse(resp)
	dst := w.Header()
	for k, vv := range resp.Header {
		if len(dst[k]) == 0 {
			dst[k] = vv // the answer's header is not used after
		} else {
			dst[k] = append(dst[k], vv...)
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst.Add("Trailer", strings.Join(keys, ", "))
	}

	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	fail := func(err error) {
		x.broken = true
		u.abort(r, err)
	}
	if isEventStream(resp.Header) {
		w.WriteHeader(resp.StatusCode)
		if err := flushEach(w, resp.Body, buf); err != nil {
			fail(err)
		}
	} else {
		n, eof, err := fill(resp.Body, buf)
		if err != nil {
			fail(err)
		}
		if eof && resp.ContentLength < 0 && announced == 0 && r.Method != http.MethodHead && bodyAllowed(resp.StatusCode) {
			dst.Set("Content-Length", strconv.Itoa(n))
		}
		w.WriteHeader(resp.StatusCode)
		for {
			if n > 0 {
				if _, err := w.Write(buf[:n]); err != nil {
					fail(err)
				}
			}
			if eof {
				break
			}
			if n, eof, err = fill(resp.Body, buf); err != nil {
				fail(err)
			}
		}
	}
	if len(resp.Trailer) == announced {
		for k, vv := range resp.Trailer {
			dst[k] = append(dst[k], vv...)
		}
		return
	}
	for k, vv := range resp.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// abort ends a response that cannot be completed: the client sees the
// connection close rather than a truncated answer taken for whole.
func (u *Upstream) abort(r *http.Request, err error) {
	if r.Context().Err() == nil && !errors.Is(err, context.Canceled) {
		u.logger.Warn("upstream answer cut", "path", r.URL.Path, "err", err)
	}
	panic(http.ErrAbortHandler)
}

func bodyAllowed(code int) bool {
	return code != http.StatusNoContent && code != http.StatusNotModified && (code < 100 || code >= 200)
}

// isEventStream recognises server-sent events, which httputil.ReverseProxy
// flushes as they arrive.
func isEventStream(h http.Header) bool {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// fill reads body into buf until buf is full or the body ends.
func fill(body io.Reader, buf []byte) (n int, eof bool, err error) {
	for n < len(buf) {
		m, err := body.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// flushEach copies body to w, flushing every piece at once.
func flushEach(w http.ResponseWriter, body io.Reader, buf []byte) error {
	rc := http.NewResponseController(w)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if err := rc.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// removeHopByHop removes the hop-by-hop headers of an answer and those its
// Connection header names.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for name := range hopHeaders {
		delete(h, name)
	}
}

// Do sends r upstream and returns the response, for callers that must read
// the answer (to merge or filter it). The caller closes the body; the
// context of r should carry a deadline (see WithTimeout).
func (u *Upstream) Do(r *http.Request) (*http.Response, error) {
	body, ok := bodyInMemory(r)
	if !ok {
		out := r.Clone(r.Context())
		out.RequestURI = ""
		if err := u.setHeaders(out); err != nil {
			return nil, err
		}
		u.point(out)
		resp, err := u.transport.RoundTrip(out)
		if err != nil {
			return nil, classify(r.Context(), err)
		}
		return resp, nil
	}
	extra, err := u.renderHeaders(r)
	if err != nil {
		return nil, err
	}
	x, err := u.roundTrip(r.Context(), &request{in: r, out: r, body: body, extra: extra})
	if err != nil {
		return nil, classify(r.Context(), err)
	}
	x.resp.Body = &pooledBody{x: x, r: x.resp.Body}
	return x.resp, nil
}

// WithTimeout returns a context bounded by the upstream's timeout.
func (u *Upstream) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, u.timeout)
}

func (u *Upstream) rewrite(pr *httputil.ProxyRequest) {
	u.point(pr.Out)
	pr.SetXForwarded()
}

// point aims out at the upstream.
func (u *Upstream) point(out *http.Request) {
	path, rawQuery := out.URL.Path, out.URL.RawQuery
	out.URL = &url.URL{
		Scheme:   u.base.Scheme,
		Host:     u.base.Host,
		User:     u.base.User,
		Path:     strings.TrimSuffix(u.base.Path, "/") + path,
		RawQuery: rawQuery,
	}
	out.Host = u.base.Host
}

// setHeaders removes the client's identity headers from r (a request of
// promgate's own, never shared) and sets the tenancy headers. A tenancy
// header that cannot be rendered fails the request: forwarding without it
// could give the upstream no tenant at all.
func (u *Upstream) setHeaders(r *http.Request) error {
	r.Header = r.Header.Clone()
	for _, h := range u.strip {
		r.Header.Del(h)
	}
	r.Header.Del("Cookie")
	h, err := u.renderHeaders(r)
	if err != nil {
		return err
	}
	for name, vs := range h {
		r.Header[http.CanonicalHeaderKey(name)] = vs
	}
	return nil
}

// renderHeaders returns the tenancy headers for the identity of r (nil
// without any). A tenancy header that cannot be rendered fails the request:
// forwarding without it could give the upstream no tenant at all.
func (u *Upstream) renderHeaders(r *http.Request) (http.Header, error) {
	if u.headers == nil {
		return nil, nil
	}
	id, _ := identity.FromContext(r.Context())
	h, err := u.headers(id.User)
	if err != nil {
		u.logger.Error("upstream headers could not be rendered", "user", id.User, "err", err)
		return nil, apierror.New(apierror.Internal, "the upstream headers for this user could not be rendered")
	}
	return h, nil
}

// modifyResponse moves redirects to the upstream's own paths (Prometheus
// sends / to /graph) under the prefix clients use.
func (u *Upstream) modifyResponse(resp *http.Response) error {
	loc := resp.Header.Get("Location")
	if loc == "" || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") {
		return nil
	}
	// An upstream told its external URL (--web.external-url) already
	// redirects under the public prefix.
	if u.public == "" || under(loc, u.public) {
		return nil
	}
	if base := strings.TrimSuffix(u.base.Path, "/"); base == "" || under(loc, base) {
		resp.Header.Set("Location", u.public+loc[len(base):])
	}
	return nil
}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && prefix != "" && (rest == "" || rest[0] == '/' || rest[0] == '?')
}

func (u *Upstream) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(r.Context(), err)
	if e.Type != apierror.Canceled {
		u.logger.Warn("upstream request failed", "path", r.URL.Path, "err", err)
	}
	apierror.Write(w, e)
}

// classify maps a transport error to its status: 504 when the upstream took
// too long, 499 when the client went away, 502 otherwise.
func classify(ctx context.Context, err error) *apierror.Error {
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return apierror.New(apierror.Timeout, "upstream timed out")
	case errors.Is(ctx.Err(), context.Canceled):
		return apierror.New(apierror.Canceled, "client closed the request")
	}
	// The cause (an address, a refused dial) is logged, not shown to tenants.
	return apierror.New(apierror.Upstream, "upstream unavailable")
}

// bufferPool recycles the copy buffers of streamed responses.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
