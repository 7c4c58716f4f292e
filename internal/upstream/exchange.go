package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"syscall"
	"time"

	"github.com/promgate/promgate/internal/audit"
)

// Every request goes through here: a small HTTP/1.1 client that sends one
// request on a pooled keep-alive connection and reads the answer in the
// calling goroutine.
//
// Go's http.Transport runs two goroutines per connection and hands every
// request and response between them over channels; with ReverseProxy on top
// it cost about twice nginx's CPU per small query, and a gateway shares the
// machine with the Prometheus it protects (SPEC section 9). A body streamed
// from the client (an unrestricted POST) is written by a goroutine of its
// own while the answer is read, as http.Transport would.

// errRetry marks a failure on a reused connection before any of the answer
// arrived: the upstream had closed it while idle.
type errRetry struct{ err error }

func (e errRetry) Error() string { return e.err.Error() }
func (e errRetry) Unwrap() error { return e.err }

// aLongTimeAgo, as a deadline, makes pending I/O on a connection fail at
// once.
var aLongTimeAgo = time.Unix(1, 0)

// exchange is one request and its answer on one connection; finish
// releases the connection (to the pool when the answer was read whole and
// the request's body was sent whole).
type exchange struct {
	u      *Upstream
	c      *conn
	resp   *http.Response
	stop   func() bool // stops the cancellation of the context
	sent   chan error  // the streamed body's writer; nil without one
	broken bool
	start  time.Time // of roundTrip, for the observer; zero: not observed
	// backend is the server of several that x went to; nil with one.
	backend *backend
}

// roundTrip sends rq and reads the answer's header; the caller reads the
// body from x.resp.Body and calls x.finish.
func (u *Upstream) roundTrip(ctx context.Context, rq *request) (*exchange, error) {
	var start time.Time
	if u.observe != nil {
		start = time.Now()
	}
	x, err := u.balancedRoundTrip(ctx, rq)
	if u.observe != nil {
		if err != nil {
			u.observe(0, time.Since(start))
		} else {
			x.start = start
		}
	}
	if err == nil && x.resp.StatusCode == http.StatusUnauthorized {
		return nil, u.refused(x)
	}
	return x, err
}

func (u *Upstream) retryRoundTrip(ctx context.Context, rq *request) (*exchange, error) {
	for attempt := 0; ; attempt++ {
		x, err := u.tryRoundTrip(ctx, rq, attempt == 0)
		if err == nil {
			audit.From(ctx).SetUpstreamStatus(x.resp.StatusCode)
			return x, nil
		}
		var retry errRetry
		if attempt == 0 && errors.As(err, &retry) && ctx.Err() == nil && (rq.replayable() || rq.stream == nil && isNothingWritten(err)) {
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
	if mayReuse {
		if c := u.pool.get(); c != nil {
			return u.send(ctx, c, rq, true)
		}
	}
	c, err := u.dialer.dial(ctx)
	if err != nil {
		return nil, errConnect{err}
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
	if rq.stream != nil {
		x.sent = make(chan error, 1)
		go writeBody(c, rq, x.sent)
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
			continue // 100 Continue, 103
		}
		x.resp = resp
		return x, nil
	}
}

// writeBody copies a body streamed from the client to the upstream, with
// its length or chunked. A client that goes away mid-body closes the
// connection: the upstream must not wait for the rest, and the answer being
// read fails.
func writeBody(c *conn, rq *request, sent chan<- error) {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	var dst io.Writer = c.nc
	var chunked io.WriteCloser
	var bw *bufio.Writer
	if rq.length < 0 {
		// A chunk's header, data and end go out in one write.
		bw = bufio.NewWriterSize(c.nc, len(*bp)+32)
		chunked = httputil.NewChunkedWriter(bw)
		dst = chunked
	}
	src := rq.stream
	if rq.length >= 0 {
		src = io.LimitReader(src, rq.length)
	}
	flush := func() error { return nil }
	if bw != nil {
		flush = bw.Flush
	}
	n, err := copyBody(dst, src, *bp, flush)
	switch {
	case err != nil:
	case rq.length >= 0 && n < rq.length:
		err = io.ErrUnexpectedEOF
	case chunked != nil:
		// The last chunk, and the end of the (empty) trailer.
		if err = chunked.Close(); err == nil {
			if _, err = bw.WriteString("\r\n"); err == nil {
				err = bw.Flush()
			}
		}
	}
	if errors.Is(err, errClientBody) || errors.Is(err, io.ErrUnexpectedEOF) {
		c.nc.Close()
	}
	sent <- err
}

var errClientBody = errors.New("reading the client's body")

// copyBody copies src to dst, telling a failed read of the client from a
// failed write to the upstream.
// Each piece is flushed as it comes: a client that streams slowly is not
// held back by promgate's buffer.
func copyBody(dst io.Writer, src io.Reader, buf []byte, flush func() error) (int64, error) {
	var n int64
	for {
		m, rerr := src.Read(buf)
		if m > 0 {
			if _, err := dst.Write(buf[:m]); err != nil {
				return n, err
			}
			if err := flush(); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("%w: %w", errClientBody, rerr)
		}
	}
}

// isConnReset recognises a connection the upstream closed or reset.
func isConnReset(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// finish releases the connection: back to the pool when the answer was
// read to its end, the body was sent whole, and the upstream keeps the
// connection open.
func (x *exchange) finish() {
	if x.c == nil {
		return
	}
	if x.backend != nil {
		x.backend.inflight.Add(-1)
	}
	canceled := x.stop != nil && !x.stop()
	if x.sent != nil {
		// An upstream answers once it has read the body; the writer is
		// then about to report. One that answered before the body was
		// sent whole (a 413, say) leaves the connection in the middle of
		// a request.
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case err := <-x.sent:
			x.broken = x.broken || err != nil
		case <-t.C:
			x.broken = true
		}
		t.Stop()
	}
	if !x.start.IsZero() && x.resp != nil {
		x.u.observe(x.resp.StatusCode, time.Since(x.start))
	}
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
