package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// An upstream of several servers with the same data (an HA pair of
// Prometheus, several Thanos queriers, an Alertmanager cluster) sends each
// request to one of them:
//
//   - least_loaded: the healthy server with the fewest requests in flight
//     (ties taken in turn); first_available: the first healthy one in the
//     order written, the others standing by.
//   - Passive health: a server that fails a request (its connection
//     cannot be opened, it answers nothing, or it answers 502, 503 or 504
//     itself) is left aside for the fail timeout. When every server is
//     left aside they are tried anyway, the one back soonest first.
//   - Retries: a request whose connection could not be opened goes to the
//     next server, whatever it is: nothing of it was sent, so the first
//     server never saw it. A read (GET, HEAD, or a POST to a query
//     endpoint) whose body promgate holds also goes to the next server
//     when the first answered 502 or 503, or closed the kept-alive
//     connection it was sent on before any of the answer came. Each server is tried at most
//     once per request, and nothing is retried once any of the answer
//     reached the client: the decision is taken on the answer's head,
//     before a byte is written.
//   - A write (remote write, OTLP, Alertmanager silences and alerts) goes
//     to one server, and never to a second one once any of it was sent: a
//     server that failed after receiving it may have applied it, and an
//     HA pair must not receive it twice. A body streamed from the client
//     (larger than promgate reads whole) is never retried either, except
//     when no connection could be opened: it was not read yet.
//
// A 503 in Prometheus' error envelope with errorType "timeout" or
// "canceled" is the query's failure, not the server's: it neither leaves
// the server aside nor is retried, since the query would take as long on
// its twin.

// balancer chooses among the servers of one upstream.
type balancer struct {
	backends       []*backend
	firstAvailable bool
	failTimeout    time.Duration
	next           atomic.Uint32 // the turn, among equally loaded servers
}

// Load balancing policies (Options.LoadBalancing).
const (
	LeastLoaded    = "least_loaded"
	FirstAvailable = "first_available"
)

// DefaultFailTimeout leaves a failed server aside when Options.FailTimeout
// is zero.
const DefaultFailTimeout = 10 * time.Second

// newBalanced returns the Upstream of the servers o.Backends. It prepares
// requests and answers errors as a single-server Upstream does; each
// server is a single-server Upstream of its own, with its connections.
func newBalanced(o Options, logger *slog.Logger) (*Upstream, error) {
	lb := &balancer{failTimeout: o.FailTimeout}
	switch o.LoadBalancing {
	case "", LeastLoaded:
	case FirstAvailable:
		lb.firstAvailable = true
	default:
		return nil, fmt.Errorf("upstream: unknown load balancing %q", o.LoadBalancing)
	}
	if lb.failTimeout <= 0 {
		lb.failTimeout = DefaultFailTimeout
	}
	single := o
	single.Backends = nil
	single.URL = o.Backends[0]
	u, err := New(single, logger)
	if err != nil {
		return nil, err
	}
	for _, bu := range o.Backends {
		single.URL = bu
		name := backendName(bu)
		bo, err := New(single, logger.With("backend", name))
		if err != nil {
			return nil, err
		}
		b := &backend{u: bo, name: name}
		b.stats.Store(noStats)
		lb.backends = append(lb.backends, b)
	}
	u.lb = lb
	return u, nil
}

// order lists the servers to try, in dst: the healthy ones first (by load,
// or as written), then those left aside, the one back soonest first.
func (lb *balancer) order(dst []*backend) []*backend {
	now := time.Now().UnixNano()
	n := len(lb.backends)
	start := 0
	if !lb.firstAvailable {
		start = int(lb.next.Add(1) % uint32(n))
	}
	dst = dst[:0]
	for i := range n {
		if b := lb.backends[(start+i)%n]; b.healthy(now) {
			dst = append(dst, b)
		}
	}
	healthy := len(dst)
	if !lb.firstAvailable {
		insertionSort(dst, func(a, b *backend) bool { return a.inflight.Load() < b.inflight.Load() })
	}
	for _, b := range lb.backends {
		if !b.healthy(now) {
			dst = append(dst, b)
		}
	}
	insertionSort(dst[healthy:], func(a, b *backend) bool { return a.downUntil.Load() < b.downUntil.Load() })
	return dst
}

// insertionSort sorts the few servers of an upstream, stably, without
// allocating.
func insertionSort(s []*backend, less func(a, b *backend) bool) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// balancedRoundTrip sends rq to a server of u (its only one without a
// balancer) and returns the answer's head.
func (u *Upstream) balancedRoundTrip(ctx context.Context, rq *request) (*exchange, error) {
	lb := u.lb
	if lb == nil {
		return u.retryRoundTrip(ctx, rq)
	}
	var buf [4]*backend
	order := lb.order(buf[:0])
	read := rq.retryableRead()
	var err error
	for i, b := range order {
		last := i == len(order)-1
		st := b.stats.Load()
		b.count(st.requests)
		if i > 0 {
			b.count(st.retries)
		}
		b.inflight.Add(1)
		var x *exchange
		x, err = b.u.retryRoundTrip(ctx, rq)
		if err != nil {
			b.inflight.Add(-1)
			if ctx.Err() != nil {
				return nil, err // the client left, or the call's time is up
			}
			connect := isConnectError(err)
			switch {
			case isStale(err):
				// A kept-alive connection closed as it was reused: the
				// server closed it, not necessarily failed. A read goes
				// to the next server.
				if read && !last {
					continue
				}
				return nil, err
			case connect || isNoAnswer(err):
				b.count(st.errors)
				b.fail(lb.failTimeout)
			case isTimeout(err):
				b.count(st.errors) // slow, not down
			}
			if connect && !last {
				continue
			}
			return nil, err
		}
		x.backend = b
		failed, perr := serverFailure(x)
		if !failed {
			b.succeed()
			return x, nil
		}
		b.count(st.errors)
		b.fail(lb.failTimeout)
		code := x.resp.StatusCode
		if read && !last && (code == http.StatusBadGateway || code == http.StatusServiceUnavailable) {
			discard(x)
			continue
		}
		if perr != nil {
			x.broken = true
			x.finish()
			return nil, perr
		}
		return x, nil
	}
	return nil, err
}

// Reads sent as POST: Prometheus' query endpoints, whose form body
// promgate holds (it enforced it), and remote read.
var readPOSTs = map[string]bool{
	"/api/v1/query":           true,
	"/api/v1/query_range":     true,
	"/api/v1/query_exemplars": true,
	"/api/v1/series":          true,
	"/api/v1/labels":          true,
	"/api/v1/format_query":    true,
	"/api/v1/parse_query":     true,
	"/api/v1/read":            true,
}

// retryableRead reports whether rq reads without changing anything and
// can be sent again as it is: its body, if any, is in memory. Any other
// POST, PUT or DELETE is a write.
func (rq *request) retryableRead() bool {
	if rq.stream != nil {
		return false
	}
	m := rq.out.Method
	return isIdempotent(m) || m == http.MethodPost && readPOSTs[rq.out.URL.Path]
}

// errConnect marks a failure to open a connection: nothing of the request
// was sent.
type errConnect struct{ err error }

func (e errConnect) Error() string { return e.err.Error() }
func (e errConnect) Unwrap() error { return e.err }

func isConnectError(err error) bool {
	var c errConnect
	return errors.As(err, &c)
}

// isStale recognises a kept-alive connection that the server closed before
// any of the answer came, which the server's own retry did not resend (a
// request with a body).
func isStale(err error) bool {
	var retry errRetry
	return errors.As(err, &retry)
}

// isNoAnswer recognises a server that closed or reset a new connection
// instead of answering: it stopped, or crashed.
func isNoAnswer(err error) bool {
	return errors.Is(err, io.EOF) || isConnReset(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// maxPeek bounds the failure answers read to tell a server's failure
// from a query's.
const maxPeek = 64 << 10

// serverFailure reports whether the answer of x is the server's own
// failure: 502, 504, or a 503 other than Prometheus' query timeout. A 503
// body of known, small length is read to tell; x's body is then replaced
// by the bytes read. err is set when that read failed.
func serverFailure(x *exchange) (failed bool, err error) {
	resp := x.resp
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return true, nil
	case http.StatusServiceUnavailable:
	default:
		return false, nil
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" || resp.ContentLength <= 0 || resp.ContentLength > maxPeek {
		return true, nil
	}
	body := make([]byte, resp.ContentLength)
	if _, err := io.ReadFull(resp.Body, body); err != nil {
		return true, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var e struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(body, &e) == nil && (e.ErrorType == "timeout" || e.ErrorType == "canceled") {
		return false, nil
	}
	return true, nil
}

// discard ends an exchange whose answer is not passed on: its connection
// is kept when the rest of a small body can be read.
func discard(x *exchange) {
	if n := x.resp.ContentLength; n < 0 || n > maxPeek {
		x.broken = true
	} else if _, err := io.Copy(io.Discard, x.resp.Body); err != nil {
		x.broken = true
	}
	x.finish()
}

// setObserver gives every server the observer of the upstream: the
// exchange of the server that answered reports.
func (lb *balancer) setObserver(f func(code int, d time.Duration)) {
	for _, b := range lb.backends {
		b.u.observe = f
	}
}

func (lb *balancer) close() {
	for _, b := range lb.backends {
		b.u.Close()
	}
}

func (lb *balancer) idleConns() int {
	n := 0
	for _, b := range lb.backends {
		n += b.u.IdleConns()
	}
	return n
}
