// Package upstream forwards enforced requests to one server (Prometheus,
// Alertmanager), or to one of several with the same data (balance.go),
// over a pool of long-lived connections, streaming responses.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/identity"
)

// Options configure an Upstream.
type Options struct {
	// URL is the server's base URL; request paths are appended to its path.
	// Its user information, if any, is sent as basic auth on every request.
	URL *url.URL
	// Client holds the upstream's TLS settings and credentials (tls_config,
	// basic_auth, authorization, oauth2); nil for none. The configuration
	// refuses the keys promgate does not implement (proxies, HTTP/2).
	Client *commoncfg.HTTPClientConfig
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
	// Tenancy, when set, names the caller's tenant (tenancy.go).
	Tenancy *Tenancy
	// MaxIdleConns sizes the keep-alive pool (default 256).
	MaxIdleConns int
	// PublicPrefix is the path under which clients reach this upstream
	// through promgate ("/prometheus", "/alertmanager"); redirects to the
	// upstream's own paths are rewritten under it.
	PublicPrefix string
	// ErrorWriter answers a failed exchange (502, 504, 499) in the format
	// of the API in front (Alertmanager's for /alertmanager); nil writes
	// Prometheus' envelope.
	ErrorWriter func(w http.ResponseWriter, r *http.Request, err error)

	// Backends, when it holds more than one URL, are servers with the
	// same data that share the requests (see balance.go); URL is then
	// ignored. One URL is the same as URL.
	Backends []*url.URL
	// LoadBalancing is LeastLoaded (the default) or FirstAvailable.
	LoadBalancing string
	// FailTimeout is how long a server that failed is left aside
	// (default DefaultFailTimeout).
	FailTimeout time.Duration
}

// Upstream is one server behind promgate.
type Upstream struct {
	base          *url.URL
	basePath      string // base.Path without its trailing slash
	timeout       time.Duration
	headers       func(user string) (http.Header, error)
	tenancy       *Tenancy
	strip         []string
	stripped      map[string]bool // strip, as a set
	authorization *credentials    // sent upstream; nil for none
	pool          *connPool
	dialer        *dialer
	logger        *slog.Logger
	public        string
	writeErr      func(w http.ResponseWriter, r *http.Request, err error)
	observe       func(code int, d time.Duration)
	lb            *balancer // the servers, when there are several
}

// SetObserver makes every exchange report its status (0 when no answer
// came) and its duration, from the request's first attempt to the end of
// the answer's body. It must be called before the Upstream serves.
func (u *Upstream) SetObserver(f func(code int, d time.Duration)) {
	u.observe = f
	if u.lb != nil {
		u.lb.setObserver(f)
	}
}

// New returns an Upstream. Header templates were validated with the
// configuration; one that fails to parse here is an error.
func New(o Options, logger *slog.Logger) (*Upstream, error) {
	switch len(o.Backends) {
	case 0:
	case 1:
		o.URL = o.Backends[0]
	default:
		return newBalanced(o, logger)
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = 256
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.URL.Scheme != "http" && o.URL.Scheme != "https" {
		return nil, fmt.Errorf("upstream %s: the scheme must be http or https", o.URL.Redacted())
	}
	u := &Upstream{
		base:     o.URL,
		basePath: strings.TrimSuffix(o.URL.Path, "/"),
		timeout:  o.Timeout,
		headers:  o.Headers,
		tenancy:  o.Tenancy,
		stripped: map[string]bool{},
		logger:   logger,
		public:   strings.TrimSuffix(o.PublicPrefix, "/"),
		writeErr: o.ErrorWriter,
		// The pool holds as many idle connections as requests may be in
		// flight, so that a burst does not open new ones.
		pool:   &connPool{max: o.MaxIdleConns, timeout: idleConnTimeout, done: make(chan struct{})},
		dialer: newDialer(o.URL.Scheme, o.URL.Host),
	}
	if o.Client != nil {
		if err := u.dialer.configureTLS(&o.Client.TLSConfig); err != nil {
			return nil, fmt.Errorf("upstream %s: %w", o.URL.Redacted(), err)
		}
		if err := u.dialer.configureProxy(&o.Client.ProxyConfig, o.URL); err != nil {
			return nil, fmt.Errorf("upstream %s: %w", o.URL.Redacted(), err)
		}
	}
	creds, err := newCredentials(o.Client, o.URL.User)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", o.URL.Redacted(), err)
	}
	u.authorization = creds
	if u.writeErr == nil {
		u.writeErr = func(w http.ResponseWriter, _ *http.Request, err error) { apierror.Write(w, err) }
	}
	strip := append([]string(nil), o.StripHeaders...)
	// A tenancy header sent by the client must never reach the upstream.
	strip = append(strip, o.HeaderNames...)
	if creds != nil {
		for _, h := range o.HeaderNames {
			if http.CanonicalHeaderKey(h) == "Authorization" {
				return nil, fmt.Errorf("upstream %s: credentials (%s) and an Authorization header: give one", o.URL.Redacted(), creds.kind)
			}
		}
		strip = append(strip, "Authorization")
	}
	for _, h := range strip {
		h = http.CanonicalHeaderKey(h)
		if !u.stripped[h] {
			u.strip = append(u.strip, h)
			u.stripped[h] = true
		}
	}
	return u, nil
}

// Close closes the idle connections, and those in use as they come back:
// a reload's new configuration has upstreams of its own.
func (u *Upstream) Close() {
	u.pool.close()
	if u.lb != nil {
		u.lb.close()
	}
}

// IdleConns is the number of idle keep-alive connections.
func (u *Upstream) IdleConns() int {
	if u.lb != nil {
		return u.lb.idleConns()
	}
	return u.pool.idleCount()
}

// idleConnTimeout closes connections idle for longer, before the upstream
// does (Prometheus after 5 minutes).
const idleConnTimeout = 90 * time.Second

// ServeHTTP forwards r, whose URL path and query are already the ones the
// upstream must see, and streams the answer back.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rq, err := u.newRequest(r, true)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	if rq.stream != nil {
		// Go's HTTP/1 server closes the request body once the response
		// starts; a body still being streamed upstream would be cut and
		// the upstream connection torn down mid-answer (golang/go#40747).
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	x, err := u.roundTrip(r.Context(), rq)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	defer x.finish()
	x.u.copyResponse(w, r, x) // the server's: its base path
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
	u.moveRedirect(resp)
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
	rq, err := u.newRequest(r, false)
	if err != nil {
		return nil, u.classify(r.Context(), err)
	}
	x, err := u.roundTrip(r.Context(), rq)
	if err != nil {
		return nil, u.classify(r.Context(), err)
	}
	x.resp.Body = &pooledBody{x: x, r: x.resp.Body}
	return x.resp, nil
}

// WithTimeout returns a context bounded by the upstream's timeout.
func (u *Upstream) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, u.timeout)
}

// renderHeaders returns the tenancy headers for the identity of r (nil
// without any).
func (u *Upstream) renderHeaders(r *http.Request) (http.Header, error) {
	if u.headers == nil && u.tenancy == nil {
		return nil, nil
	}
	id, _ := identity.FromContext(r.Context())
	var h http.Header
	if u.headers != nil {
		var err error
		if h, err = u.headers(id.User); err != nil {
			u.logger.Error("upstream headers could not be rendered", "user", id.User, "err", err)
			return nil, apierror.New(apierror.Internal, "the upstream headers for this user could not be rendered")
		}
	}
	if u.tenancy != nil {
		return u.tenancyHeaders(r, id.User, h)
	}
	return h, nil
}

// moveRedirect moves redirects to the upstream's own paths (Prometheus
// sends / to /graph) under the prefix clients use.
func (u *Upstream) moveRedirect(resp *http.Response) {
	loc := resp.Header.Get("Location")
	if loc == "" || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") {
		return
	}
	// An upstream told its external URL (--web.external-url) already
	// redirects under the public prefix.
	if u.public == "" || under(loc, u.public) {
		return
	}
	if base := strings.TrimSuffix(u.base.Path, "/"); base == "" || under(loc, base) {
		resp.Header.Set("Location", u.public+loc[len(base):])
	}
}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && prefix != "" && (rest == "" || rest[0] == '/' || rest[0] == '?')
}

// fail answers a request that got no answer from the upstream, in the
// caller's error format.
func (u *Upstream) fail(w http.ResponseWriter, r *http.Request, err error) {
	u.writeErr(w, r, u.classify(r.Context(), err))
}

// classify maps a transport error to its status: 504 when the upstream took
// too long, 499 when the client went away, 502 otherwise. Errors promgate
// typed itself keep their type.
func (u *Upstream) classify(ctx context.Context, err error) *apierror.Error {
	var e *apierror.Error
	if errors.As(err, &e) {
		return e
	}
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		e = apierror.New(apierror.Timeout, "upstream timed out")
	case errors.Is(ctx.Err(), context.Canceled):
		return apierror.New(apierror.Canceled, "client closed the request")
	default:
		// The cause (an address, a refused dial) is logged, not shown to
		// tenants; a failed TLS handshake is named.
		var he *handshakeError
		var pe *proxyError
		if errors.As(err, &pe) {
			e = apierror.New(apierror.Upstream, "%s", pe.Error())
		} else if errors.As(err, &he) {
			e = apierror.New(apierror.Upstream, "upstream unavailable: %s", he.reason())
		} else if alert := tlsAlert(err); alert != "" {
			e = apierror.New(apierror.Upstream, "upstream unavailable: %s", alert)
		} else {
			e = apierror.New(apierror.Upstream, "upstream unavailable")
		}
	}
	u.logger.Warn("upstream request failed", "err", err)
	return e
}

// buffers recycles the copy buffers of streamed bodies.
var buffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}
