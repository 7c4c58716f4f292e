package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/promgate/promgate/internal/alertmanager"
	"github.com/promgate/promgate/internal/audit"
	"github.com/promgate/promgate/internal/auth"
	"github.com/promgate/promgate/internal/config"
	"github.com/promgate/promgate/internal/policy"
	promapi "github.com/promgate/promgate/internal/prometheus"
	"github.com/promgate/promgate/internal/promql"
	"github.com/promgate/promgate/internal/upstream"
)

// BuildOptions are settings of the state that come from flags.
type BuildOptions struct {
	MaxBodyBytes int64
	MaxIdleConns int
	// PublicPrefix is the path clients reach promgate under (the path of
	// --web.external-url, else the route prefix).
	PublicPrefix string
	// Auth is shared by the authenticators of successive configurations
	// (the failed-login counts survive a reload).
	Auth auth.Runtime
	// AuditFiles are the audit files of the process, kept across reloads
	// and reopened on SIGUSR1 (nil: files of this state's own).
	AuditFiles *audit.Files
}

// Build makes a State from a loaded configuration.
func Build(cfg *config.Config, o BuildOptions, logger *slog.Logger) (*State, error) {
	a, warnings, err := BuildAuth(cfg, o.Auth)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		logger.Warn("configuration: " + w)
	}
	pu := cfg.Upstreams.Prometheus
	if pu == nil {
		return nil, fmt.Errorf("no prometheus upstream configured")
	}
	u, backends, err := upstreamURLs(pu)
	if err != nil {
		return nil, fmt.Errorf("prometheus upstream: %w", err)
	}
	prom, err := upstream.New(servers(upstream.Options{
		URL:          u,
		Client:       &pu.HTTPClient,
		Timeout:      pu.Timeout,
		Headers:      headers(pu),
		HeaderNames:  headerNames(pu),
		Tenancy:      tenancy(pu),
		StripHeaders: a.IdentityHeaders(),
		MaxIdleConns: o.MaxIdleConns,
		PublicPrefix: o.PublicPrefix,
	}, pu, backends), logger.With("upstream", "prometheus"))
	if err != nil {
		return nil, err
	}
	// The PromQL the upstream accepts; Parse validated the names.
	lang, err := promql.NewLanguage(pu.Features)
	if err != nil {
		return nil, fmt.Errorf("upstreams.prometheus.features: %w", err)
	}
	// Parse validated the name.
	enforcement, err := promapi.ParseEnforcement(pu.Enforcement)
	if err != nil {
		return nil, fmt.Errorf("upstreams.prometheus.enforcement: %w", err)
	}
	st := &State{
		PromQL:     lang,
		Auth:       a,
		Policies:   policy.NewSet(cfg.Rules, cfg.Groups),
		Prometheus: prom,
		LimitsFor:  cfg.LimitsFor,
		PromAPI:    promapi.New(prom, promapi.Options{MaxBodyBytes: o.MaxBodyBytes, AlertNamePrefix: pu.AlertsByNamePrefix, Write: writeLimits(cfg.WriteLimits), Enforcement: enforcement}),
		metrics:    cfg.Metrics,
	}
	for _, r := range cfg.Rules {
		st.policyNames = append(st.policyNames, r.Name)
	}
	if amu := cfg.Upstreams.Alertmanager; amu != nil {
		u, backends, err := upstreamURLs(amu)
		if err != nil {
			return nil, fmt.Errorf("alertmanager upstream: %w", err)
		}
		am, err := upstream.New(servers(upstream.Options{
			URL:          u,
			Client:       &amu.HTTPClient,
			Timeout:      amu.Timeout,
			Headers:      headers(amu),
			HeaderNames:  headerNames(amu),
			Tenancy:      tenancy(amu),
			StripHeaders: a.IdentityHeaders(),
			MaxIdleConns: o.MaxIdleConns,
			PublicPrefix: strings.TrimSuffix(o.PublicPrefix, "/") + AlertmanagerPrefix,
			ErrorWriter:  alertmanagerErrorWriter,
		}, amu, backends), logger.With("upstream", "alertmanager"))
		if err != nil {
			return nil, err
		}
		st.Alertmanager = am
		mode := amu.Receivers
		if mode == "" {
			mode = "routed"
		}
		receivers, err := alertmanager.ParseReceiversMode(mode)
		if err != nil {
			return nil, err
		}
		st.AMAPI = alertmanager.New(am, alertmanager.Options{
			Receivers: receivers,
			Logger:    logger.With("upstream", "alertmanager"),
		})
	}
	if ac := cfg.Audit; ac != nil {
		files := o.AuditFiles
		if files == nil {
			files = audit.NewFiles()
		}
		if st.Audit, err = audit.NewLogger(ac.Destination, ac.Requests, files); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	return st, nil
}

// Close closes the upstreams' idle connections, and the others as they
// come back: a reload's new state has upstreams of its own.
func (st *State) Close() {
	if st.Prometheus != nil {
		st.Prometheus.Close()
	}
	if st.Alertmanager != nil {
		st.Alertmanager.Close()
	}
}

// headers renders an upstream's configured headers per user; nil when it
// has none.
func headers(u *config.Upstream) func(string) (http.Header, error) {
	if len(u.Headers) == 0 {
		return nil
	}
	return u.RenderHeaders
}

// headerNames are the headers promgate sets on the upstream's requests,
// which a client's copy must never reach: the configured ones and the
// tenancy headers of Mimir, GEM, Loki and Thanos, always.
func headerNames(u *config.Upstream) []string {
	names := make([]string, 0, len(u.Headers)+len(config.TenancyHeaders)+1)
	for name := range u.Headers {
		names = append(names, name)
	}
	names = append(names, config.TenancyHeaders...)
	if u.Tenancy != nil {
		names = append(names, u.Tenancy.Header)
	}
	return names
}

// tenancy is the upstream's tenancy, nil without one.
func tenancy(u *config.Upstream) *upstream.Tenancy {
	t := u.Tenancy
	if t == nil {
		return nil
	}
	return &upstream.Tenancy{Header: t.Header, Tenant: t.RenderTenant, LabelPolicy: t.LabelPolicyHeader}
}

// upstreamURLs parses the URL of an upstream and, when it lists several
// servers, all of them.
func upstreamURLs(u *config.Upstream) (*url.URL, []*url.URL, error) {
	first, err := url.Parse(u.URL)
	if err != nil {
		return nil, nil, err
	}
	if len(u.URLs) < 2 {
		return first, nil, nil
	}
	backends := make([]*url.URL, len(u.URLs))
	for i, raw := range u.URLs {
		if backends[i], err = url.Parse(raw); err != nil {
			return nil, nil, err
		}
	}
	return first, backends, nil
}

// servers adds to o the servers of an upstream of several and how they
// share the work.
func servers(o upstream.Options, u *config.Upstream, backends []*url.URL) upstream.Options {
	o.Backends = backends
	o.LoadBalancing = u.LoadBalancing
	o.FailTimeout = u.FailTimeout
	return o
}

// writeLimits maps the write_limits section to the API's limits; zero
// fields take the API's defaults.
func writeLimits(w *config.WriteLimits) promapi.WriteLimits {
	if w == nil {
		return promapi.WriteLimits{}
	}
	return promapi.WriteLimits{
		MaxBodyBytes:        int64(w.MaxBodySize),
		MaxDecodedBytes:     int64(w.MaxDecodedSize),
		MaxSeries:           w.MaxSeriesPerRequest,
		MaxLabelsPerSeries:  w.MaxLabelsPerSeries,
		MaxLabelNameLength:  w.MaxLabelNameLength,
		MaxLabelValueLength: w.MaxLabelValueLength,
	}
}
