package upstream

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// dialer opens connections to one upstream address, over TLS for an https
// upstream.
type dialer struct {
	addr   string // host:port
	host   string // the URL's host name, the TLS server name by default
	tls    *tlsSource
	dialer *net.Dialer
	// proxy is the host:port of the HTTP proxy the upstream is reached
	// through, "" for none; proxyHeader goes with its CONNECT.
	proxy       string
	proxyHeader http.Header
}

func newDialer(scheme, host string) *dialer {
	d := &dialer{addr: host, dialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}}
	hostname, port, err := net.SplitHostPort(host)
	if err != nil {
		hostname = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		port = map[bool]string{true: "443", false: "80"}[scheme == "https"]
		d.addr = net.JoinHostPort(hostname, port)
	}
	d.host = hostname
	if scheme == "https" {
		// The system's roots and the URL's host name cannot fail.
		d.tls, _ = newTLSSource(hostname, nil)
	}
	return d
}

// configureTLS applies an upstream's tls_config (https only).
func (d *dialer) configureTLS(tc *commoncfg.TLSConfig) error {
	if d.tls == nil {
		return nil
	}
	s, err := newTLSSource(d.host, tc)
	if err != nil {
		return err
	}
	d.tls = s
	return nil
}

// handshakeTimeout bounds a TLS handshake, as http.Transport's
// TLSHandshakeTimeout does.
const handshakeTimeout = 10 * time.Second

func (d *dialer) dial(ctx context.Context) (*conn, error) {
	addr := d.addr
	if d.proxy != "" {
		addr = d.proxy
	}
	nc, err := d.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if d.proxy != "" {
		if err := d.connect(ctx, nc); err != nil {
			nc.Close()
			return nil, err
		}
	}
	raw := rawConn(nc)
	if d.tls == nil {
		return &conn{nc: nc, raw: raw, br: bufio.NewReaderSize(nc, readBufferSize)}, nil
	}
	tc, err := d.tls.client(ctx, nc, raw)
	if err != nil {
		nc.Close()
		return nil, err
	}
	// alive reads through the TLS layer: raw is not peeked.
	return &conn{nc: tc, tls: tc, br: bufio.NewReaderSize(tc, readBufferSize)}, nil
}
