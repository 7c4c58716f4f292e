package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// An upstream behind an HTTP proxy (proxy_url, no_proxy,
// proxy_from_environment, proxy_connect_header) is reached through a
// CONNECT tunnel, for http:// and https:// upstreams alike: the tunnel is
// one TCP connection to the proxy, pooled, checked and reused like a direct
// one, TLS to the upstream inside it.

// configureProxy resolves the proxy of the upstream at target once: the
// upstream's address does not change.
func (d *dialer) configureProxy(pc *commoncfg.ProxyConfig, target *url.URL) error {
	fn := pc.Proxy()
	if fn == nil {
		return nil
	}
	p, err := fn(&http.Request{URL: target})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if p == nil {
		return nil // no_proxy names the upstream
	}
	if p.Scheme != "http" {
		return fmt.Errorf("proxy_url: promgate reaches proxies over http:// only, not %s://", p.Scheme)
	}
	d.proxy = p.Host
	if p.Port() == "" {
		d.proxy = net.JoinHostPort(p.Hostname(), "80")
	}
	d.proxyHeader = pc.GetProxyConnectHeader()
	if d.proxyHeader == nil {
		d.proxyHeader = http.Header{}
	}
	if p.User != nil {
		password, _ := p.User.Password()
		d.proxyHeader.Set("Proxy-Authorization", basicAuth(p.User.Username(), password))
	}
	return nil
}

// proxyConnectTimeout bounds the proxy's answer to CONNECT.
const proxyConnectTimeout = 10 * time.Second

// connect asks the proxy on nc for a tunnel to the upstream.
func (d *dialer) connect(ctx context.Context, nc net.Conn) error {
	deadline := time.Now().Add(proxyConnectTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	defer stop()
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: d.addr},
		Host:   d.addr,
		Header: d.proxyHeader,
	}
	if err := req.Write(nc); err != nil {
		return err
	}
	// One byte at a time would be slow; the proxy sends nothing after its
	// answer until the upstream speaks, which it does only when asked.
	br := bufio.NewReaderSize(nc, 1024)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &proxyError{status: resp.Status}
	}
	if br.Buffered() > 0 {
		return errors.New("the proxy sent bytes after its answer to CONNECT")
	}
	return nc.SetDeadline(time.Time{})
}

// proxyError is a proxy's refusal of a tunnel.
type proxyError struct{ status string }

func (e *proxyError) Error() string {
	return "upstream unavailable: the proxy refused the tunnel to the upstream (" + e.status + ")"
}
