package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The request path of every enforced query goes through here: a small
// HTTP/1.1 client that sends one request on a pooled keep-alive connection
// and reads the answer in the calling goroutine.
//
// Go's http.Transport runs two goroutines per connection and hands every
// request and response between them over channels; with ReverseProxy on top
// it cost about twice nginx's CPU per small query, and a gateway shares the
// machine with the Prometheus it protects (SPEC section 9). Requests whose
// body is not already in memory (a client's streamed POST, passed through)
// still go through http.Transport, which can write a body while reading the
// answer.

// connPool keeps idle connections, most recently used first.
type connPool struct {
	mu      sync.Mutex
	idle    []*conn
	max     int
	timeout time.Duration // idle connections older than this are closed
}

// conn is one keep-alive connection to the upstream.
type conn struct {
	nc        net.Conn
	br        *bufio.Reader
	buf       []byte // the request being written
	idleSince time.Time
}

// readBufferSize holds a small answer (an instant query of a few dozen
// series) in one read.
const readBufferSize = 16 << 10

func (p *connPool) get() *conn {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(c.idleSince) < p.timeout {
			return c
		}
		c.nc.Close()
	}
	return nil
}

func (p *connPool) put(c *conn) {
	c.idleSince = time.Now()
	if cap(c.buf) > 64<<10 {
		c.buf = nil // a large request body; do not keep its buffer
	}
	p.mu.Lock()
	// The least recently used connection has waited longest: close it
	// when it is too old, or to make room.
	if len(p.idle) > 0 && (len(p.idle) >= p.max || c.idleSince.Sub(p.idle[0].idleSince) >= p.timeout) {
		old := p.idle[0]
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		defer old.nc.Close()
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// dialer opens connections to one upstream address.
type dialer struct {
	addr   string // host:port
	tls    *tls.Config
	dialer *net.Dialer
}

func newDialer(scheme, host string) *dialer {
	d := &dialer{addr: host, dialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}}
	hostname, port, err := net.SplitHostPort(host)
	if err != nil {
		hostname = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		port = map[bool]string{true: "443", false: "80"}[scheme == "https"]
		d.addr = net.JoinHostPort(hostname, port)
	}
	if scheme == "https" {
		d.tls = &tls.Config{ServerName: hostname}
	}
	return d
}

func (d *dialer) dial(ctx context.Context) (*conn, error) {
	nc, err := d.dialer.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	if d.tls != nil {
		tc := tls.Client(nc, d.tls.Clone())
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, readBufferSize)}, nil
}

// bodyInMemory returns the body of r when it is known without reading
// the client: none, or one promgate built (GetBody set, length known).
func bodyInMemory(r *http.Request) (body []byte, ok bool) {
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
var ownRequestHeaders = map[string]bool{
	"Host":              true,
	"User-Agent":        true,
	"Content-Length":    true,
	"Cookie":            true,
	"Forwarded":         true,
	"X-Forwarded-For":   true,
	"X-Forwarded-Host":  true,
	"X-Forwarded-Proto": true,
}

// request is what writeRequest sends.
type request struct {
	in       *http.Request // as received, for X-Forwarded-*
	out      *http.Request // method, URL and headers to send
	body     []byte
	extra    http.Header // the tenancy headers, rendered
	forwards bool        // add X-Forwarded-* (ServeHTTP, not Do)
}

// writeRequest renders the request into c.buf the way httputil.ReverseProxy
// and http.Transport would send it: hop-by-hop headers, the headers named
// by Connection, identity headers and cookies removed; X-Forwarded-For, -Host
// and -Proto set; the tenancy headers added.
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
	for name, values := range rq.extra {
		var err error
		if b, err = appendHeader(b, http.CanonicalHeaderKey(name), values); err != nil {
			return err
		}
	}
	if len(rq.body) > 0 || out.Method == http.MethodPost || out.Method == http.MethodPut || out.Method == http.MethodPatch {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(rq.body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, rq.body...)
	c.buf = b
	_, err := c.nc.Write(b)
	return err
}

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

// errRetry marks a failure on a reused connection before any of the answer
// arrived: the upstream had closed it while idle.
type errRetry struct{ err error }

func (e errRetry) Error() string { return e.err.Error() }
func (e errRetry) Unwrap() error { return e.err }

// aLongTimeAgo, as a deadline, makes pending I/O on a connection fail at
// once.
var aLongTimeAgo = time.Unix(1, 0)

// exchange is one request and its answer on one connection; finish
// releases the connection (to the pool when the answer was read whole).
type exchange struct {
	u      *Upstream
	c      *conn
	resp   *http.Response
	stop   func() bool // stops the cancellation of the context
	broken bool
}

// roundTrip sends rq and reads the answer's header; the caller reads the
// body from x.resp.Body and calls x.finish.
func (u *Upstream) roundTrip(ctx context.Context, rq *request) (*exchange, error) {
	replayable := rq.body == nil && isIdempotent(rq.out.Method)
	for attempt := 0; ; attempt++ {
		x, err := u.tryRoundTrip(ctx, rq, attempt == 0)
		if err == nil {
			return x, nil
		}
		var retry errRetry
		if attempt == 0 && errors.As(err, &retry) && ctx.Err() == nil && (replayable || isNothingWritten(err)) {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
}

func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

type errNothingWritten struct{ error }

func (e errNothingWritten) Unwrap() error { return e.error }

func isNothingWritten(err error) bool {
	var nw errNothingWritten
	return errors.As(err, &nw)
}

func (u *Upstream) tryRoundTrip(ctx context.Context, rq *request, mayReuse bool) (*exchange, error) {
	var c *conn
	if mayReuse {
		c = u.pool.get()
	}
	// A request that cannot be sent twice goes only on a connection the
	// upstream has not closed while it was idle.
	if c != nil && (rq.body != nil || !isIdempotent(rq.out.Method)) && !alive(c) {
		c.nc.Close()
		c = nil
	}
	if c != nil {
		return u.send(ctx, c, rq, true)
	}
	c, err := u.dialer.dial(ctx)
	if err != nil {
		return nil, err
	}
	return u.send(ctx, c, rq, false)
}

func (u *Upstream) send(ctx context.Context, c *conn, rq *request, reused bool) (*exchange, error) {
	deadline := time.Now().Add(u.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.nc.SetDeadline(deadline)
	x := &exchange{u: u, c: c}
	x.stop = context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error, retry bool) (*exchange, error) {
		x.broken = true
		x.finish()
		if retry && reused {
			return nil, errRetry{err}
		}
		return nil, err
	}
	if err := u.writeRequest(c, rq); err != nil {
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, io.EOF) || isConnReset(err) {
			return fail(errNothingWritten{err}, true)
		}
		return fail(err, false)
	}
	for informational := 0; ; informational++ {
		resp, err := http.ReadResponse(c.br, rq.out)
		if err != nil {
			// Nothing of the answer arrived: the upstream closed an
			// idle connection as promgate reused it.
			return fail(err, errors.Is(err, io.EOF) || isConnReset(err))
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if resp.StatusCode == http.StatusSwitchingProtocols || informational >= 5 {
				return fail(fmt.Errorf("upstream answered %s", resp.Status), false)
			}
			continue // 100 Continue for a client's Expect header, 103
		}
		x.resp = resp
		return x, nil
	}
}

// isConnReset recognises a connection the upstream closed or reset.
func isConnReset(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// finish releases the connection: back to the pool when the answer was
// read to its end and the upstream keeps the connection open.
func (x *exchange) finish() {
	if x.c == nil {
		return
	}
	canceled := x.stop != nil && !x.stop()
	if x.broken || canceled || x.resp == nil || x.resp.Close || x.c.br.Buffered() > 0 {
		x.c.nc.Close()
	} else {
		_ = x.c.nc.SetDeadline(time.Time{})
		x.u.pool.put(x.c)
	}
	x.c = nil
}

// pooledBody is a response body read from a pooled connection, for Do:
// the connection goes back to the pool when the body was read to its end.
type pooledBody struct {
	x   *exchange
	r   io.ReadCloser
	eof bool
	mu  sync.Mutex
}

func (b *pooledBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.x == nil {
		return 0, errors.New("read on closed response body")
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.x.broken = true
	}
	return n, err
}

func (b *pooledBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.x == nil {
		return nil
	}
	if !b.eof {
		// Reading the rest to reuse the connection could take long:
		// the connection goes.
		b.x.broken = true
	}
	b.x.finish()
	b.x = nil
	return nil
}
