// Package server wires promgate's pipeline: authenticate, resolve the
// policy, route, enforce, forward. It is the only package that knows all
// the others.
package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/promgate/promgate/internal/alertmanager"
	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/audit"
	"github.com/promgate/promgate/internal/auth"
	"github.com/promgate/promgate/internal/config"
	"github.com/promgate/promgate/internal/identity"
	"github.com/promgate/promgate/internal/limits"
	"github.com/promgate/promgate/internal/policy"
	promapi "github.com/promgate/promgate/internal/prometheus"
	"github.com/promgate/promgate/internal/promql"
	"github.com/promgate/promgate/internal/upstream"
)

// State is everything built from one configuration. A reload builds a new
// State and swaps it in; requests in flight finish with the old one.
type State struct {
	Auth       *auth.Authenticator
	Policies   *policy.Set
	Prometheus *upstream.Upstream
	PromAPI    *promapi.API
	// Alertmanager and AMAPI are nil when no Alertmanager is configured.
	Alertmanager *upstream.Upstream
	AMAPI        *alertmanager.API
	// PromQL is the language of the Prometheus upstream (nil: no features).
	PromQL *promql.Language
	// LimitsFor gives the limits of the identities a policy's rules match
	// (nil: no limits).
	LimitsFor func(rules []string) *limits.Limits

	// policyNames are the configuration's policies and metrics its
	// settings of promgate's metrics.
	policyNames []string
	metrics     config.Metrics
	// Audit writes the audit log; nil when it is off.
	Audit *audit.Logger

	mu    sync.Mutex
	cache map[string]*access // by user and groups; bounded
}

// access is the resolved, ready-to-use policy of one identity.
type access struct {
	policy    *policy.Policy
	selectors [][]*labels.Matcher // nil for allow_all
	enforcer  *promql.Enforcer    // nil for allow_all
	limits    *limits.Limits      // nil: none
}

const maxCachedIdentities = 10000

func (st *State) accessFor(id identity.Identity) (*access, error) {
	// Every part is length-prefixed, so no two identities share a key
	// whatever their names hold (auth refuses control characters, but the
	// key does not rely on it).
	var kb strings.Builder
	for _, part := range append([]string{id.User}, id.Groups...) {
		kb.WriteString(strconv.Itoa(len(part)))
		kb.WriteByte(':')
		kb.WriteString(part)
	}
	key := kb.String()
	st.mu.Lock()
	a, ok := st.cache[key]
	st.mu.Unlock()
	if ok {
		return a, nil
	}
	p, err := st.Policies.For(id)
	if err != nil {
		return nil, err
	}
	a = &access{policy: p}
	if st.LimitsFor != nil {
		a.limits = st.LimitsFor(p.Rules)
	}
	if !p.AllowAll {
		ms := make([][]*labels.Matcher, len(p.Selectors))
		for i, s := range p.Selectors {
			ms[i] = s
		}
		a.selectors = ms
		if a.enforcer, err = st.PromQL.New(ms); err != nil {
			return nil, err
		}
	}
	st.mu.Lock()
	if st.cache == nil || len(st.cache) >= maxCachedIdentities {
		st.cache = map[string]*access{}
	}
	st.cache[key] = a
	st.mu.Unlock()
	return a, nil
}

// Options are the server's settings that do not change on reload.
type Options struct {
	Logger *slog.Logger
	// RoutePrefix is the path promgate serves under ("" or "/prometheus").
	RoutePrefix string
	Registry    *prometheus.Registry
	// Reload rebuilds the state from the configuration; nil disables
	// /-/reload everywhere.
	Reload func() error
	// PublicReload serves /-/reload on the tenants' handler, to allow_all
	// identities only: the caller's address proves nothing, since a front
	// proxy on the same host makes every request come from 127.0.0.1. The
	// internal handler serves /-/reload whatever this says.
	PublicReload bool
	// MetricsForAdminsOnly serves /metrics on the tenants' handler to
	// allow_all identities only; set when an internal listener serves it
	// to the operator's scrapes.
	MetricsForAdminsOnly bool
}

// Server is promgate's HTTP handler.
type Server struct {
	opts        Options
	state       atomic.Pointer[State]
	metrics     *metrics
	promMetrics http.Handler // /metrics
	// limits is the users' admission state; it outlives reloads.
	limits *limits.Registry
}

// New returns a Server serving st.
func New(opts Options, st *State) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.RoutePrefix = strings.TrimSuffix(opts.RoutePrefix, "/")
	s := &Server{opts: opts, metrics: newMetrics(opts.Registry), limits: limits.NewRegistry(0)}
	s.promMetrics = promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{})
	s.metrics.configure(st)
	s.state.Store(st)
	if opts.Registry != nil {
		opts.Registry.MustRegister(idleConnsGauge(s, "prometheus", func(st *State) *upstream.Upstream { return st.Prometheus }))
		opts.Registry.MustRegister(idleConnsGauge(s, "alertmanager", func(st *State) *upstream.Upstream { return st.Alertmanager }))
	}
	return s
}

// idleConnsGauge reports the idle keep-alive connections of the current
// state's upstream of one role.
func idleConnsGauge(s *Server, role string, of func(*State) *upstream.Upstream) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "promgate_upstream_idle_connections",
		Help:        "Idle keep-alive connections to the upstream.",
		ConstLabels: prometheus.Labels{"upstream": role},
	}, func() float64 {
		if u := of(s.state.Load()); u != nil {
			return float64(u.IdleConns())
		}
		return 0
	})
}

// Swap serves st from now on. The old state's upstream connections close
// as the requests still using them finish.
func (s *Server) Swap(st *State) {
	s.metrics.configure(st)
	if old := s.state.Swap(st); old != nil && old != st {
		old.Close()
	}
}

// ServeHTTP runs the pipeline for one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if lg := s.state.Load().Audit; lg != nil {
		var aw *auditWriter
		aw, r = startAudit(w, r)
		w = aw
		defer aw.finish(lg)
	}
	start := time.Now()
	rec := &recorder{ResponseWriter: w, code: http.StatusOK}
	var info requestInfo
	if r.Body != nil && r.Body != http.NoBody {
		info.in = &countingBody{ReadCloser: r.Body}
		r.Body = info.in
	}
	handler := s.serve(rec, r, &info)
	s.metrics.observe(handler, rec.code, time.Since(start), &info, rec.written)
}

// serve handles r and returns the name of the handler for metrics, and
// notes what it learnt of the request in info.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, info *requestInfo) string {
	path, ok := strings.CutPrefix(r.URL.Path, s.opts.RoutePrefix)
	if !ok || (path != "" && path[0] != '/') {
		apierror.Write(w, apierror.New(apierror.NotFound, "not found: %s is outside %s", r.URL.Path, s.opts.RoutePrefix))
		return "other"
	}
	if path == "" {
		path = "/"
	}
	switch path {
	case "/-/healthy":
		writeText(w, "promgate is Healthy.\n")
		return "healthy"
	case "/-/ready":
		writeText(w, "promgate is Ready.\n")
		return "ready"
	case "/metrics":
		if !s.opts.MetricsForAdminsOnly {
			s.promMetrics.ServeHTTP(w, r)
			return "metrics"
		}
	}

	st := s.state.Load()
	id, err := st.Auth.Authenticate(r)
	if err != nil {
		if _, blocked := auth.RetryAfter(err); blocked {
			s.metrics.bruteForceBlocks.Inc()
		}
		s.metrics.authFailures.WithLabelValues(st.Auth.Attempted(r)).Inc()
		audit.From(r.Context()).Deny("authentication failed: " + err.Error())
		s.opts.Logger.Info("request refused", "reason", err.Error(), "remote", r.RemoteAddr, "path", path)
		if secs, ok := auth.RetryAfter(err); ok {
			w.Header().Set("Retry-After", strconv.Itoa(secs))
		}
		writeError(w, path, err)
		return "auth"
	}
	id.Groups = st.Policies.Groups(id)
	info.user = id.User
	ar := audit.From(r.Context())
	ar.SetIdentity(id.User, id.Groups, id.Method)
	acc, err := st.accessFor(id)
	if err != nil {
		if errors.Is(err, policy.ErrNoPolicy) {
			info.policy, info.denial = noPolicy, denyNoPolicy
			err = apierror.New(apierror.Forbidden, "user %q: %v", id.User, err)
			ar.Deny(noPolicyReason(id))
		}
		s.opts.Logger.Info("request refused", "user", id.User, "path", path, "reason", err.Error())
		writeError(w, path, err)
		return "policy"
	}
	info.policy = acc.policy.Rules[0]
	ar.SetPolicy(acc.policy.Rules, acc.policy.AllowAll)
	// The identity, and the caller's access for the label policy header
	// of GEM and Loki.
	r = r.WithContext(upstream.WithPolicy(identity.NewContext(r.Context(), id), acc.policy.AllowAll, acc.selectors))

	switch path {
	case "/-/whoami":
		if wantsHTML(r) {
			s.serveWhoamiPage(w, r, st, id)
			return "whoami"
		}
		writeWhoami(w, id, acc.policy)
		return "whoami"
	case "/-/reload":
		if !acc.policy.AllowAll {
			info.denial = denyAdminOnly
		}
		s.reload(w, r, acc)
		return "reload"
	case "/metrics":
		if !acc.policy.AllowAll {
			info.denial = denyAdminOnly
			apierror.Write(w, apierror.New(apierror.Forbidden, "promgate's metrics are for unrestricted users here; operators scrape the internal listener"))
			return "metrics"
		}
		s.promMetrics.ServeHTTP(w, r)
		return "metrics"
	}

	r, release, ok := s.admit(w, r, st, path, id, acc)
	if !ok {
		return "limits"
	}
	defer release()

	if amPath, ok := alertmanagerPath(path); ok {
		if st.AMAPI == nil {
			apierror.Write(w, apierror.New(apierror.NotFound, "no Alertmanager is configured"))
			return "alertmanager"
		}
		if acc.policy.AllowAll {
			passthrough(w, r, st.Alertmanager, amPath)
		} else {
			st.AMAPI.Handle(w, r, amPath, acc.selectors)
		}
		return "alertmanager"
	}
	if acc.policy.AllowAll {
		// Prometheus answers a wrong method in plain text; promgate's
		// clients get every error in the envelope.
		mw := &methodNotAllowedWriter{ResponseWriter: w, r: r, path: path}
		passthrough(mw, r, st.Prometheus, path)
		return "passthrough"
	}
	if redirectOnly(path) && forwardRedirect(w, r, st.Prometheus, path) {
		return "ui"
	}
	st.PromAPI.Handle(w, r, path, acc.enforcer)
	return routeName(path)
}

// writeError answers err in the format of the API the path belongs to, so
// that amtool shows promgate's refusals as it shows Alertmanager's.
func writeError(w http.ResponseWriter, path string, err error) {
	if _, ok := alertmanagerPath(path); ok {
		alertmanager.WriteError(w, err)
		return
	}
	apierror.Write(w, err)
}

// AlertmanagerPrefix is where Alertmanager is served, under promgate's own
// route prefix: amtool --alertmanager.url=http://promgate/alertmanager.
const AlertmanagerPrefix = "/alertmanager"

func alertmanagerPath(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, AlertmanagerPrefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	if rest == "" {
		rest = "/"
	}
	return rest, true
}

// passthrough sends an unrestricted identity's request upstream as asked.
func passthrough(w http.ResponseWriter, r *http.Request, up *upstream.Upstream, path string) {
	out := r.Clone(r.Context())
	auditPassthrough(out)
	out.URL.Path = path
	out.URL.RawPath = ""
	up.ServeHTTP(w, out)
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request, acc *access) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		apierror.Write(w, apierror.New(apierror.MethodNotAllowed, "reload needs POST or PUT"))
		return
	}
	if !acc.policy.AllowAll {
		apierror.Write(w, apierror.New(apierror.Forbidden, "reload is for unrestricted users"))
		return
	}
	if !s.opts.PublicReload || s.opts.Reload == nil {
		apierror.Write(w, apierror.New(apierror.Forbidden, "reload is not enabled on this listener"))
		return
	}
	s.runReload(w)
}

// runReload reloads the configuration and answers the outcome.
func (s *Server) runReload(w http.ResponseWriter) {
	if err := s.opts.Reload(); err != nil {
		apierror.Write(w, apierror.New(apierror.Internal, "reload failed: %v", err))
		return
	}
	writeText(w, "")
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(s))
}

func writeWhoami(w http.ResponseWriter, id identity.Identity, p *policy.Policy) {
	sels := make([]string, len(p.Selectors))
	for i, s := range p.Selectors {
		sels[i] = s.String()
	}
	body, _ := json.Marshal(map[string]any{
		"status": "success",
		"data": map[string]any{
			"user":      id.User,
			"groups":    id.Groups,
			"method":    id.Method,
			"allow_all": p.AllowAll,
			"selectors": sels,
			"policies":  p.Rules,
		},
	})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// recorder notes the status for metrics. Unwrap lets the reverse proxy
// reach the underlying writer's Flush.
type recorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
	written     int64 // body bytes
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.wroteHeader = true
	}
	n, err := r.ResponseWriter.Write(p)
	r.written += int64(n)
	return n, err
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
