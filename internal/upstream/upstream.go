// Package upstream forwards enforced requests to one server (Prometheus,
// Alertmanager) over a single, long-lived transport, streaming responses.
package upstream

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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
	timeout   time.Duration
	headers   func(user string) (http.Header, error)
	strip     []string
	transport *http.Transport
	proxy     *httputil.ReverseProxy
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
		base:    o.URL,
		timeout: o.Timeout,
		headers: o.Headers,
		logger:  logger,
		public:  strings.TrimSuffix(o.PublicPrefix, "/"),
		transport: &http.Transport{
			Proxy:       nil, // never route tenant traffic through an environment proxy
			DialContext: (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			// The client's Accept-Encoding is passed through; letting the
			// transport ask for gzip on its own would make it decompress
			// every answer it streams (the round trip SPEC section 9 warns of).
			DisableCompression:    true,
			MaxIdleConns:          o.MaxIdleConns,
			MaxIdleConnsPerHost:   o.MaxIdleConns,
			IdleConnTimeout:       90 * time.Second,
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
	u.proxy = &httputil.ReverseProxy{
		Rewrite:        u.rewrite,
		Transport:      u.transport,
		BufferPool:     bufferPool{},
		ErrorHandler:   u.errorHandler,
		ModifyResponse: u.modifyResponse,
	}
	return u, nil
}

// ServeHTTP forwards r, whose URL path and query are already the ones the
// upstream must see, and streams the answer back.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

// Do sends r upstream and returns the response, for callers that must read
// the answer (to merge or filter it). The caller closes the body; the
// context of r should carry a deadline (see WithTimeout).
func (u *Upstream) Do(r *http.Request) (*http.Response, error) {
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
	if u.headers == nil {
		return nil
	}
	id, _ := identity.FromContext(r.Context())
	h, err := u.headers(id.User)
	if err != nil {
		u.logger.Error("upstream headers could not be rendered", "user", id.User, "err", err)
		return apierror.New(apierror.Internal, "the upstream headers for this user could not be rendered")
	}
	for name, vs := range h {
		r.Header[http.CanonicalHeaderKey(name)] = vs
	}
	return nil
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
