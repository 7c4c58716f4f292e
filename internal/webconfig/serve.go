package webconfig

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/promgate/promgate/internal/apierror"
)

// Server applies the current web configuration to a listener: TLS with the
// current certificates and client CAs on every new connection, and the
// configured response headers and rate limit on every request. Update
// swaps the configuration.
type Server struct {
	logger *slog.Logger
	tlsOn  bool
	http2  bool
	cur    atomic.Pointer[Config]
	tlsCur atomic.Pointer[tls.Config]
	now    func() time.Time
}

// NewServer returns a Server for c, which may be nil (no web configuration
// file: plain HTTP, no headers, no rate limit). Whether TLS is on, and
// HTTP/2 with it, is decided here for the life of the listener.
func NewServer(c *Config, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{logger: logger, tlsOn: c.TLS(), http2: c == nil || c.Web.HTTPConfig.HTTP2, now: time.Now}
	s.Update(c)
	return s
}

// Compatible reports why c cannot replace the current configuration
// without a restart, or nil.
func (s *Server) Compatible(c *Config) error {
	switch {
	case s.tlsOn && !c.TLS():
		return errors.New("the web configuration no longer enables TLS: turning TLS off needs a restart")
	case !s.tlsOn && c.TLS():
		return errors.New("the web configuration now enables TLS: turning TLS on needs a restart")
	}
	return nil
}

// Update serves c from now on; the caller checked Compatible. Connections
// already established keep their TLS session.
func (s *Server) Update(c *Config) {
	if c.TLS() {
		t := c.tls.Clone()
		t.NextProtos = s.nextProtos()
		s.tlsCur.Store(t)
	}
	if c != nil && c.Web.HTTPConfig.HTTP2 != s.http2 {
		s.logger.Warn("http_server_config.http2 changes only on restart", "http2", s.http2)
	}
	s.cur.Store(c)
}

func (s *Server) nextProtos() []string {
	if s.http2 {
		return []string{"h2", "http/1.1"}
	}
	return []string{"http/1.1"}
}

// Wrap returns next with the configuration's response headers and rate
// limit applied.
func (s *Server) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := s.cur.Load(); c != nil {
			for k, v := range c.Web.HTTPConfig.Header {
				w.Header().Set(k, v)
			}
			if c.limiter != nil && !c.limiter.allow(s.now()) {
				secs := max(1, int((c.limiter.every+time.Second-1)/time.Second))
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				apierror.Write(w, apierror.New(apierror.TooManyRequests, "rate limit exceeded (rate_limit of the web configuration)"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// MaxHeaderBytes bounds a request's line and headers together (Go's
// default is 1 MiB). Every header a client sends is held while its request
// is served, and some (a user name) reach per-client state; 256 KiB is far
// above any credential (a JWT is at most 16 KiB) and any GET query a UI
// sends, and long queries belong in a POST body, as Prometheus' own UI and
// Grafana send them. Larger requests are answered 431.
const MaxHeaderBytes = 256 << 10

// Serve accepts connections on l with srv, over TLS when the configuration
// enables it. Each TLS handshake uses the configuration current at that
// moment. An srv without MaxHeaderBytes gets MaxHeaderBytes.
func (s *Server) Serve(srv *http.Server, l net.Listener) error {
	if srv.MaxHeaderBytes == 0 {
		srv.MaxHeaderBytes = MaxHeaderBytes
	}
	if !s.tlsOn {
		s.logger.Info("TLS is disabled", "address", l.Addr().String())
		return srv.Serve(l)
	}
	if !s.http2 {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	srv.TLSConfig = &tls.Config{
		NextProtos: s.nextProtos(),
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.tlsCur.Load(), nil
		},
	}
	s.logger.Info("TLS is enabled", "address", l.Addr().String(), "http2", s.http2)
	return srv.ServeTLS(l, "", "")
}
