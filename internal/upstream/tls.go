package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// TLS to an https upstream. The configuration is common/config's, built
// from tls_config as Prometheus builds a scrape's. Connections are kept
// alive like plain ones, and a new one resumes an earlier session (one
// round trip, no certificate chain to verify).
//
// An idle TLS connection cannot be checked by peeking at its socket as a
// plain one is: records nobody asked for at the HTTP level arrive there
// legitimately (TLS 1.3 session tickets, which a server may send after
// its answer), and bytes the TLS layer has already read are not there to
// peek. alive reads through the TLS layer instead, from a socket made
// non-blocking for that one read: the TLS layer processes what arrived
// (a ticket is stored in the session cache) and returns the application
// data, if any, which makes the connection unusable; with nothing more to
// read the socket answers at once and the connection is reused.

// tlsSource makes the TLS configuration of an upstream's connections.
type tlsSource struct {
	host string               // the URL's host name
	tc   *commoncfg.TLSConfig // nil: the system's roots

	mu      sync.Mutex
	cfg     *tls.Config
	caStamp fileStamp // of tc.CAFile when cfg was built
}

// sessionCacheSize holds the sessions of one upstream's connections (a
// server issues one or two tickets per connection).
const sessionCacheSize = 256

func newTLSSource(host string, tc *commoncfg.TLSConfig) (*tlsSource, error) {
	s := &tlsSource{host: host, tc: tc}
	if tc != nil && tc.CAFile != "" {
		s.caStamp = stampOf(tc.CAFile)
	}
	cfg, err := s.build()
	if err != nil {
		return nil, err
	}
	s.cfg = cfg
	return s, nil
}

func (s *tlsSource) build() (*tls.Config, error) {
	cfg := &tls.Config{}
	if s.tc != nil {
		var err error
		if cfg, err = commoncfg.NewTLSConfig(s.tc); err != nil {
			return nil, fmt.Errorf("tls_config: %w", err)
		}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.host
	}
	// The client certificate, if any, is read again at every handshake
	// (common/config's GetClientCertificate). A new CA gets a new cache:
	// a session resumed skips the verification the new CA would do.
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(sessionCacheSize)
	cfg.NextProtos = []string{"http/1.1"}
	return cfg, nil
}

// config returns the configuration for a new connection, built again when
// the CA file changed. A CA file that cannot be read or parsed any more
// leaves the last configuration in use (a file being rewritten).
func (s *tlsSource) config() *tls.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tc != nil && s.tc.CAFile != "" {
		if st := stampOf(s.tc.CAFile); st != s.caStamp {
			if cfg, err := s.build(); err == nil {
				s.cfg, s.caStamp = cfg, st
			}
		}
	}
	return s.cfg
}

// client runs the TLS handshake on nc.
func (s *tlsSource) client(ctx context.Context, nc net.Conn, raw syscall.RawConn) (*tlsConn, error) {
	t := &transportConn{Conn: nc, raw: raw}
	tc := tls.Client(t, s.config())
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, &handshakeError{err: err}
	}
	return &tlsConn{Conn: tc, transport: t}, nil
}

// tlsConn is a TLS connection with its transport, whose reads alive makes
// non-blocking.
type tlsConn struct {
	*tls.Conn
	transport *transportConn
}

// transportConn is the TCP connection under a TLS one. It follows the
// record framing of what it reads (a 5-byte header with the length, then
// the body), so that alive can tell whether the TLS layer holds part of a
// record: bytes the upstream sent unasked, of which more is to come.
type transportConn struct {
	net.Conn
	raw         syscall.RawConn // nil where reads cannot be non-blocking
	nonBlocking bool            // set by alive only, on a connection nobody else uses

	body   int     // bytes of the current record's body still to read
	header [5]byte // the next record's header, as far as read
	hlen   int
}

func (t *transportConn) Read(p []byte) (n int, err error) {
	switch {
	case !t.nonBlocking:
		n, err = t.Conn.Read(p)
	case t.raw == nil:
		return 0, errWouldBlock
	default:
		n, err = readNonBlocking(t.raw, p)
	}
	t.frame(p[:n])
	return n, err
}

// frame follows the records in p.
func (t *transportConn) frame(p []byte) {
	for len(p) > 0 {
		if t.body > 0 {
			k := min(t.body, len(p))
			t.body -= k
			p = p[k:]
			continue
		}
		k := copy(t.header[t.hlen:], p)
		t.hlen += k
		p = p[k:]
		if t.hlen == len(t.header) {
			t.body, t.hlen = int(t.header[3])<<8|int(t.header[4]), 0
		}
	}
}

// betweenRecords reports whether every byte read belongs to a whole
// record: the TLS layer, which processes whole records only, has nothing
// of the upstream's left to process.
func (t *transportConn) betweenRecords() bool { return t.body == 0 && t.hlen == 0 }

// errWouldBlock is a read with nothing to read. The TLS layer takes it as
// temporary (a net.Error whose Temporary is true): the connection stays
// usable, a record half read stays buffered.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "nothing to read" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// aliveTLS reports whether an idle TLS connection can be reused: no
// application data unread (in promgate's buffer or the TLS layer's), no
// part of a record, no close_notify, no end of stream. Records of the TLS
// layer's own are processed.
func aliveTLS(c *conn) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	t := c.tls
	t.transport.nonBlocking = true
	var b [1]byte
	n, err := t.Read(b[:])
	t.transport.nonBlocking = false
	return n == 0 && err == errWouldBlock && t.transport.betweenRecords()
}

// fileStamp tells a changed file from the same one.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi.ModTime(), fi.Size()}
}

// handshakeError is a failed TLS handshake with the upstream.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// reason says why the handshake failed, for the client's error: what to
// look at in the configuration, nothing of the upstream's address.
func (e *handshakeError) reason() string {
	var (
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		record  tls.RecordHeaderError
	)
	switch {
	case errors.As(e.err, &unknown):
		return "the upstream's certificate is signed by an unknown authority (tls_config.ca_file)"
	case errors.As(e.err, &host):
		return "the upstream's certificate is not valid for its host name (tls_config.server_name)"
	case errors.As(e.err, &invalid) && invalid.Reason == x509.Expired:
		return "the upstream's certificate has expired or is not yet valid"
	case errors.As(e.err, &invalid):
		return "the upstream's certificate is invalid: " + strings.TrimPrefix(invalid.Error(), "x509: ")
	case errors.As(e.err, &record):
		return "the upstream does not speak TLS (is its URL's scheme right?)"
	}
	if r := tlsAlert(e.err); r != "" {
		return r
	}
	return "the TLS handshake with the upstream failed"
}

// tlsAlert names an alert the upstream sent, "" for another error. Under
// TLS 1.3 a server that wants a client certificate says so after the
// client's handshake is over, when the answer is read.
func tlsAlert(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return fmt.Sprintf("the upstream refused the TLS connection (%v; tls_config.cert_file?)", op.Err)
	}
	return ""
}
