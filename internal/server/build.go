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
	u, err := url.Parse(pu.URL)
	if err != nil {
		return nil, fmt.Errorf("prometheus upstream: %w", err)
	}
	prom, err := upstream.New(upstream.Options{
		URL:          u,
		Timeout:      pu.Timeout,
		Headers:      headers(pu),
		HeaderNames:  headerNames(pu),
		StripHeaders: a.IdentityHeaders(),
		MaxIdleConns: o.MaxIdleConns,
		PublicPrefix: o.PublicPrefix,
	}, logger.With("upstream", "prometheus"))
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
		PromAPI:    promapi.New(prom, promapi.Options{MaxBodyBytes: o.MaxBodyBytes, AlertNamePrefix: pu.AlertsByNamePrefix, Enforcement: enforcement}),
		metrics:    cfg.Metrics,
	}
	for _, r := range cfg.Rules {
		st.policyNames = append(st.policyNames, r.Name)
	}
	if amu := cfg.Upstreams.Alertmanager; amu != nil {
		u, err := url.Parse(amu.URL)
		if err != nil {
			return nil, fmt.Errorf("alertmanager upstream: %w", err)
		}
		am, err := upstream.New(upstream.Options{
			URL:          u,
			Timeout:      amu.Timeout,
			Headers:      headers(amu),
			HeaderNames:  headerNames(amu),
			StripHeaders: a.IdentityHeaders(),
			MaxIdleConns: o.MaxIdleConns,
			PublicPrefix: strings.TrimSuffix(o.PublicPrefix, "/") + AlertmanagerPrefix,
			ErrorWriter:  alertmanagerErrorWriter,
		}, logger.With("upstream", "alertmanager"))
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

func headerNames(u *config.Upstream) []string {
	names := make([]string, 0, len(u.Headers))
	for name := range u.Headers {
		names = append(names, name)
	}
	return names
}
