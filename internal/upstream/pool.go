package upstream

import (
	"bufio"
	"net"
	"sync"
	"syscall"
	"time"
)

// connPool keeps idle connections, most recently used first. A connection
// leaves the pool only when nothing has arrived on it while it was idle: an
// upstream (or a proxy in between) that sends bytes nobody asked for, a
// late body or a 408, would otherwise have them read as the answer to the
// next request, which may be another tenant's.
type connPool struct {
	mu       sync.Mutex
	idle     []*conn
	max      int
	timeout  time.Duration // idle connections older than this are closed
	closed   bool
	sweeping bool          // the sweeper runs
	done     chan struct{} // closed by close, stops the sweeper
}

// sweepInterval is how often idle connections are checked in the
// background: one the upstream closed (a restart) or wrote on is closed
// within this time instead of holding a descriptor until it is reused or
// expires.
const sweepInterval = 5 * time.Second

// conn is one keep-alive connection to the upstream.
type conn struct {
	nc        net.Conn
	raw       syscall.RawConn // nc's descriptor, for alive; nil where none
	tls       *tlsConn        // nc as TLS, for alive; nil over plain HTTP
	br        *bufio.Reader
	buf       []byte // the request being written
	idleSince time.Time
}

// readBufferSize holds a small answer (an instant query of a few dozen
// series) in one read.
const readBufferSize = 16 << 10

// get returns an idle connection that is still open and has nothing
// unread, or nil. Checking every connection (not only before requests that
// cannot be replayed) costs one non-blocking peek.
func (p *connPool) get() *conn {
	for {
		c := p.pop()
		if c == nil {
			return nil
		}
		if alive(c) {
			return c
		}
		c.nc.Close()
	}
}

func (p *connPool) pop() *conn {
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
	if p.closed {
		p.mu.Unlock()
		c.nc.Close()
		return
	}
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
	if !p.sweeping {
		p.sweeping = true
		go p.sweeper()
	}
	p.mu.Unlock()
}

// sweeper closes dead and expired idle connections until the pool closes.
// It starts with the first connection pooled, so that an upstream never
// used (a configuration that failed to load) has none.
func (p *connPool) sweeper() {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.sweep()
		}
	}
}

func (p *connPool) sweep() {
	now := time.Now()
	var dead []*conn
	p.mu.Lock()
	kept := p.idle[:0]
	for _, c := range p.idle {
		// alive peeks without blocking: cheap enough under the lock.
		if now.Sub(c.idleSince) >= p.timeout || !alive(c) {
			dead = append(dead, c)
		} else {
			kept = append(kept, c)
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	p.mu.Unlock()
	for _, c := range dead {
		c.nc.Close()
	}
}

// idleCount is the number of idle connections, for metrics.
func (p *connPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// close closes the idle connections; those in use are closed when they
// come back.
func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	if !p.closed {
		close(p.done)
	}
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}
