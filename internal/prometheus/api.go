package prometheus

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// Upstream is the Prometheus behind promgate.
type Upstream interface {
	// ServeHTTP streams r's answer to w.
	http.Handler
	// Do returns the answer to r for merging.
	Do(r *http.Request) (*http.Response, error)
	WithTimeout(ctx context.Context) (context.Context, context.CancelFunc)
}

// DefaultMaxBodyBytes bounds urlencoded request bodies.
const DefaultMaxBodyBytes = 1 << 20

// Options configure the API.
type Options struct {
	// MaxBodyBytes bounds urlencoded request bodies.
	MaxBodyBytes int64
	// AlertNamePrefix makes alerts named "<user>: ..." the user's, as the
	// PromAuthProxy did, in addition to the policy.
	AlertNamePrefix bool
	// Write bounds write requests; zero fields take DefaultWriteLimits.
	Write WriteLimits
	// Enforcement is how queries and selectors are enforced (pushdown.go).
	Enforcement Enforcement
}

// API enforces policies on Prometheus' HTTP API.
type API struct {
	up      Upstream
	maxBody int64
	opts    Options
	caps    capabilities
	names   names // whether the upstream parses UTF-8 label names
	otlp    otlpSettingsCache
}

// New returns an API in front of up.
func New(up Upstream, opts Options) *API {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	opts.Write = opts.Write.withDefaults()
	return &API{up: up, maxBody: opts.MaxBodyBytes, opts: opts}
}

type handlerFunc func(a *API, w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error

type route struct {
	params  params
	handle  handlerFunc
	methods []string
}

var (
	getPost = []string{http.MethodGet, http.MethodPost}

	// stats and cost (3.16, query-cost) count what the rewritten query
	// reads: only the tenant's series. max_series, max_samples_read and
	// max_query_duration (query-cost) can only lower the operator's limits.
	// Thanos Query's own parameters are added by withThanos (thanos.go).
	queryParams = withThanos(params{single: []string{"query", "time", "timeout", "stats", "limit", "lookback_delta",
		"cost", "max_series", "max_samples_read", "max_query_duration"}}, thanosQuerySingle)
	rangeParams = withThanos(params{single: []string{"query", "start", "end", "step", "timeout", "stats", "limit", "lookback_delta",
		"cost", "max_series", "max_samples_read", "max_query_duration"}}, thanosQuerySingle)
	exemplarParams = params{single: []string{"query", "start", "end"}}
	matchParams    = withThanos(params{single: []string{"start", "end", "limit"}, repeatable: []string{"match[]"}}, thanosMatchSingle)
	formatParams   = params{single: []string{"query"}}
)

// routes are the only paths a restricted identity reaches. Everything
// else is refused (default deny) by Handle.
var routes = map[string]route{
	"/api/v1/query":            {queryParams, (*API).query, getPost},
	"/api/v1/query_range":      {rangeParams, (*API).query, getPost},
	"/api/v1/query_exemplars":  {exemplarParams, (*API).query, getPost},
	"/api/v1/series":           {matchParams, matchHandler(true), getPost},
	"/api/v1/labels":           {matchParams, matchHandler(false), getPost},
	"/federate":                {matchParams, (*API).federate, getPost},
	"/api/v1/format_query":     {formatParams, (*API).pass, getPost},
	"/api/v1/parse_query":      {formatParams, (*API).pass, getPost},
	"/api/v1/status/buildinfo": {params{}, (*API).pass, []string{http.MethodGet}},
	"/api/v1/alerts":           {alertsParams, filterHandler(filterAlertsData, true), []string{http.MethodGet}},
	"/api/v1/rules":            {rulesParams, (*API).rules, []string{http.MethodGet}},
	"/api/v1/targets":          {targetsParams, filterHandler(filterTargetsData, false), []string{http.MethodGet}},
	"/api/v1/targets/metadata": {tmetaParams, (*API).targetsMetadata, []string{http.MethodGet}},
	"/api/v1/metadata":         {metadataParams, (*API).metadata, []string{http.MethodGet}},
	"/api/v1/read":             {params{}, (*API).remoteRead, []string{http.MethodPost}},
	"/api/v1/write":            {params{}, (*API).remoteWrite, []string{http.MethodPost}},
	otlpPath:                   {params{}, (*API).otlpWrite, []string{http.MethodPost}},
	"/api/v1/export":           {exportParams, (*API).export, getPost},
}

// labelValues is /api/v1/label/NAME/values.
var labelValues = route{matchParams, (*API).labelValues, getPost}

// Handle serves one request of a restricted identity; path is the request
// path relative to promgate's route prefix. Only Handle's routes pass.
func (a *API) Handle(w http.ResponseWriter, r *http.Request, path string, enf *promql.Enforcer) {
	rt, ok := routes[path]
	if a.opts.Enforcement == EnforceVictoriaMetrics {
		if prt, p, pushed := pushdownRoute(path); pushed {
			rt, path, ok = prt, p, true
		}
	}
	if !ok {
		if name, isValues := labelValuesName(path); isValues {
			rt = labelValues
			// name is decoded (r.URL.Path): the URL built upstream
			// escapes it once, so the upstream reads this same name.
			path = "/api/v1/label/" + name + "/values"
			ok = true
		}
	}
	if !ok && isUI(path) {
		a.ui(w, r, path)
		return
	}
	if !ok {
		apierror.Write(w, apierror.New(apierror.Forbidden, "%s is not available to restricted users", path))
		return
	}
	if !allowed(rt.methods, r.Method) {
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		apierror.Write(w, apierror.New(apierror.MethodNotAllowed, "method %s not allowed on %s", r.Method, path))
		return
	}
	if err := rt.handle(a, w, r, path, rt.params, enf); err != nil {
		apierror.Write(w, err)
	}
}

func allowed(methods []string, m string) bool {
	for _, x := range methods {
		if x == m {
			return true
		}
	}
	return false
}

// labelValuesName extracts NAME from /api/v1/label/NAME/values. The name is
// not a filter (match[] is), but it must be one path segment so that the
// path forwarded is the one checked.
func labelValuesName(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/api/v1/label/")
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, "/values")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", false
	}
	return name, true
}

func (a *API) query(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	exprs, err := enf.Query(vs.Get("query"))
	if err != nil {
		var pe *promql.ParseError
		if errors.As(err, &pe) {
			return apierror.New(apierror.BadData, "invalid parameter \"query\": %v", pe.Err)
		}
		return apierror.Wrap(apierror.BadData, err)
	}
	if err := checkGuards(r, path, vs); err != nil {
		return err
	}
	if err := a.checkQueryNames(r, exprs); err != nil {
		return err
	}
	limit, pushed, err := a.seriesLimit(r, path, vs)
	if err != nil {
		return err
	}
	// A range query over a bare range selector is an error on Prometheus
	// whatever the selector (the first part's error is the answer);
	// VictoriaMetrics answers it, so its parts are merged too.
	if len(exprs) > 1 && (path == "/api/v1/query" || path == "/api/v1/query_range") {
		return a.mergeMatrices(w, r, path, vs, exprs, limit)
	}
	// An exemplar query over a bare range selector is an error upstream
	// whatever the selector: one is enough to get it.
	vs.Set("query", exprs[0])
	if limit > 0 && !pushed {
		return a.serveTruncated(w, r, path, vs, limit)
	}
	a.up.ServeHTTP(w, rebuild(r, path, vs))
	return nil
}

func matchHandler(required bool) handlerFunc {
	return func(a *API, w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
		vs, err := readForm(r, p, a.maxBody)
		if err != nil {
			return err
		}
		if required && len(vs["match[]"]) == 0 {
			// Prometheus' own answer, without asking it.
			return apierror.New(apierror.BadData, "no match[] parameter provided")
		}
		if err := a.enforceMatch(r, vs, enf); err != nil {
			return err
		}
		limit, pushed, err := a.seriesLimit(r, path, vs)
		if err != nil {
			return err
		}
		if limit > 0 && !pushed {
			return a.serveTruncated(w, r, path, vs, limit)
		}
		a.up.ServeHTTP(w, rebuild(r, path, vs))
		return nil
	}
}

func (a *API) labelValues(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	name, _ := labelValuesName(path)
	if err := a.checkLabelName(r, name); err != nil {
		return err
	}
	return matchHandler(false)(a, w, r, path, p, enf)
}

func (a *API) federate(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	if len(vs["match[]"]) == 0 {
		// Prometheus answers an empty exposition; so does promgate, and
		// without the policy's selectors, which would select everything
		// the tenant may see.
		w.Header().Set("Content-Type", emptyFederationFormat(r.Header))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	// Every series the upstream answers matches the narrowed match[]:
	// the answer is the tenant's in whatever format the upstream
	// negotiates with the client's Accept header (the text format, or the
	// protobuf ones that carry native histograms), and passes untouched.
	if err := a.enforceMatch(r, vs, enf); err != nil {
		return err
	}
	a.up.ServeHTTP(w, rebuild(r, path, vs))
	return nil
}

// emptyFederationFormat is the Content-Type of federate's empty answer:
// the format Prometheus 3 negotiates, among those its federate writes,
// when the client asks for a protobuf one (the formats of native
// histograms); the text format otherwise, as every version answers.
func emptyFederationFormat(h http.Header) string {
	f := expfmt.NegotiateAccept(h, expfmt.NewFormat(expfmt.TypeProtoDelim), expfmt.NewFormat(expfmt.TypeProtoText),
		expfmt.NewFormat(expfmt.TypeProtoCompact), expfmt.NewFormat(expfmt.TypeTextPlain))
	if f.FormatType() == expfmt.TypeTextPlain {
		return "text/plain; version=0.0.4; charset=utf-8"
	}
	return string(f)
}

func (a *API) pass(w http.ResponseWriter, r *http.Request, path string, p params, _ *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	a.up.ServeHTTP(w, rebuild(r, path, vs))
	return nil
}

// enforceMatch replaces the match[] values by their product with the
// policy's selectors. A UTF-8 label name in them is refused when the
// upstream cannot parse it.
func (a *API) enforceMatch(r *http.Request, vs url.Values, enf *promql.Enforcer) error {
	var in [][]*labels.Matcher
	for _, s := range vs["match[]"] {
		ms, err := pqlParser.ParseMetricSelector(s)
		if err != nil {
			return apierror.New(apierror.BadData, "invalid parameter \"match[]\": %v", err)
		}
		in = append(in, ms)
	}
	out := enf.Match(in)
	if !a.knownUTF8() {
		for _, ms := range out {
			if name, ok := promql.SelectorUTF8LabelName(ms); ok && a.legacyUpstream(r) {
				return errLegacyName(name)
			}
		}
	}
	sels := make([]string, len(out))
	for i, ms := range out {
		sels[i] = promql.FormatSelector(ms)
	}
	vs["match[]"] = sels
	return nil
}

var pqlParser = parser.NewParser(parser.Options{})
