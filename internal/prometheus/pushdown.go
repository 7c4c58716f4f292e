package prometheus

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// Enforcement says how a restricted identity's requests are made to see
// only the policy's series.
type Enforcement int

const (
	// EnforceRewrite rewrites PromQL and match[] selectors (package
	// promql): any Prometheus-compatible upstream.
	EnforceRewrite Enforcement = iota
	// EnforceVictoriaMetrics hands the policy down to VictoriaMetrics: the
	// query goes upstream untouched and every policy selector is sent as
	// one extra_filters[], which VictoriaMetrics ORs and joins to every
	// series selector it evaluates. Tenants keep all of MetricsQL.
	EnforceVictoriaMetrics
)

// Enforcement names, as written in promgate.yml.
const (
	EnforcementRewrite         = "rewrite"
	EnforcementVictoriaMetrics = "victoriametrics"
)

// ParseEnforcement reads an enforcement name; "" is rewrite.
func ParseEnforcement(s string) (Enforcement, error) {
	switch s {
	case "", EnforcementRewrite:
		return EnforceRewrite, nil
	case EnforcementVictoriaMetrics:
		return EnforceVictoriaMetrics, nil
	}
	return 0, fmt.Errorf("%q is not one of %s, %s", s, EnforcementRewrite, EnforcementVictoriaMetrics)
}

// vmFilterParams are VictoriaMetrics' parameters that change which series
// a request selects: extra_filters and extra_filters[] are ORed together
// (a client's would widen the policy), extra_label is ANDed to each. The
// parameters of pushed-down requests are an allow-list (readForm), so none
// of them reaches the upstream from a client; they are deleted again
// before promgate adds its own, so that no later edit of a list can let
// one through.
var vmFilterParams = []string{"extra_filters", "extra_filters[]", "extra_label", "extra_label[]"}

// The parameters VictoriaMetrics reads on each pushed-down endpoint that
// cannot widen what the request selects. nocache, round_digits and
// latency_offset change how an answer is computed or cached, not which
// series it reads.
var (
	vmQueryParams = params{single: []string{"query", "time", "step", "timeout", "limit",
		"nocache", "round_digits", "latency_offset"}}
	vmRangeParams = params{single: []string{"query", "start", "end", "step", "timeout", "limit",
		"nocache", "round_digits", "latency_offset"}}
	vmMatchParams    = params{single: []string{"start", "end", "limit", "timeout"}, repeatable: []string{"match[]"}}
	vmFederateParams = params{single: []string{"start", "end", "max_lookback", "timeout"}, repeatable: []string{"match[]"}}
	// exportParams serve /api/v1/export in both modes: the JSON-lines
	// export of raw samples (its csv and native variants are not routed).
	exportParams = params{single: []string{"start", "end", "max_rows_per_line", "reduce_mem_usage", "timeout"},
		repeatable: []string{"match[]"}}
)

// pushdownRoutes are the endpoints whose policy VictoriaMetrics enforces
// itself in EnforceVictoriaMetrics mode; every other path keeps the
// handling of routes.
var pushdownRoutes = map[string]route{
	"/api/v1/query":       {vmQueryParams, (*API).pushQuery, getPost},
	"/api/v1/query_range": {vmRangeParams, (*API).pushQuery, getPost},
	"/api/v1/series":      {vmMatchParams, (*API).pushMatch, getPost},
	"/api/v1/labels":      {vmMatchParams, (*API).pushMatch, getPost},
	"/federate":           {vmFederateParams, (*API).pushMatch, getPost},
	"/api/v1/export":      {exportParams, (*API).pushMatch, getPost},
}

// pushdownRoute returns the pushed-down route of path, if it has one.
func pushdownRoute(path string) (route, string, bool) {
	if rt, ok := pushdownRoutes[path]; ok {
		return rt, path, true
	}
	if name, ok := labelValuesName(path); ok {
		return route{vmMatchParams, (*API).pushMatch, getPost}, "/api/v1/label/" + name + "/values", true
	}
	return route{}, "", false
}

// policyFilters renders the policy's selectors as VictoriaMetrics series
// selectors, one per extra_filters[]. A selector whose matchers all match
// the empty string gets __name__=~".+" (every series has a name), and
// selectors that cannot match are dropped, as for match[] (Enforcer.Match).
func policyFilters(enf *promql.Enforcer) ([]string, error) {
	if enf == nil {
		// A restricted identity always has an enforcer; without one there
		// is no policy to hand down, and nothing may be shown.
		return nil, apierror.New(apierror.Forbidden, "the policy selects no series")
	}
	sels := enf.Match(nil)
	if len(sels) == 0 {
		return nil, apierror.New(apierror.Forbidden, "the policy selects no series")
	}
	out := make([]string, len(sels))
	for i, ms := range sels {
		out[i] = promql.FormatSelector(ms)
	}
	return out, nil
}

// withPolicy removes every series-selecting VictoriaMetrics parameter from
// vs and adds the policy's selectors as extra_filters[].
func withPolicy(vs url.Values, filters []string) {
	for _, k := range vmFilterParams {
		vs.Del(k)
	}
	vs["extra_filters[]"] = filters
}

// pushQuery forwards a query or range query untouched, with the policy as
// extra_filters[]: promgate does not parse it, so any MetricsQL passes.
func (a *API) pushQuery(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	filters, err := policyFilters(enf)
	if err != nil {
		return err
	}
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	if err := checkGuards(r, path, vs); err != nil {
		return err
	}
	limit, pushed, err := a.seriesLimit(r, path, vs)
	if err != nil {
		return err
	}
	withPolicy(vs, filters)
	if limit > 0 && !pushed {
		return a.serveTruncated(w, r, path, vs, limit)
	}
	a.up.ServeHTTP(w, rebuild(r, path, vs))
	return nil
}

// pushMatch forwards series, labels, federate and export requests with
// their match[] untouched and the policy as extra_filters[]. The labels
// endpoints without match[] get the policy's selectors as match[] too:
// VictoriaMetrics run with -search.ignoreExtraFiltersAtLabelsAPI ignores
// extra_filters[] there unless match[] is given.
func (a *API) pushMatch(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	filters, err := policyFilters(enf)
	if err != nil {
		return err
	}
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	if len(vs["match[]"]) == 0 && (path == "/api/v1/labels" || isLabelValues(path)) {
		vs["match[]"] = filters
	}
	limit, pushed, err := a.seriesLimit(r, path, vs)
	if err != nil {
		return err
	}
	withPolicy(vs, filters)
	if limit > 0 && !pushed {
		return a.serveTruncated(w, r, path, vs, limit)
	}
	a.up.ServeHTTP(w, rebuild(r, path, vs))
	return nil
}

func isLabelValues(path string) bool {
	_, ok := labelValuesName(path)
	return ok
}

// export serves /api/v1/export in rewrite mode: match[] is required (as
// VictoriaMetrics requires it) and narrowed like the series endpoint's.
func (a *API) export(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	if len(vs["match[]"]) == 0 {
		return apierror.New(apierror.BadData, "missing `match[]` arg")
	}
	if err := a.enforceMatch(r, vs, enf); err != nil {
		return err
	}
	a.up.ServeHTTP(w, rebuild(r, path, vs))
	return nil
}

// Enforcement is the API's enforcement mode.
func (a *API) Enforcement() Enforcement { return a.opts.Enforcement }

// PolicyFilters are the extra_filters[] a restricted identity's requests
// carry in EnforceVictoriaMetrics mode (for explain).
func PolicyFilters(enf *promql.Enforcer) ([]string, error) { return policyFilters(enf) }
