package server

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/internal/auth"
	"github.com/promgate/promgate/internal/config"
	"github.com/promgate/promgate/internal/promql"
	"github.com/promgate/promgate/internal/upstream"
)

// Label values that are not names from the configuration.
const (
	// noPolicy labels requests that resolved to no policy: health checks,
	// scrapes, refused logins, identities no policy names.
	noPolicy = "(none)"
	// otherUsers labels the users past metrics.max_users.
	otherUsers = "other"
	// noAnswer is the code of an upstream exchange that got no answer.
	noAnswer = "error"
)

// Reasons of promgate_policy_denials_total: a bounded set.
const (
	denyNoPolicy  = "no_policy"  // authenticated, but no policy names the identity
	denyForbidden = "forbidden"  // outside the policy: an endpoint, a series, a silence
	denyAdminOnly = "admin_only" // /metrics or /-/reload asked by a restricted identity
	denyLimit     = "limit"      // 429 after authentication: a request limit
)

// Durations are native histograms for a scraper that negotiates them
// (Prometheus with native histograms enabled), with classic buckets for
// every other.
func durationOpts(name, help string) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Name:                            name,
		Help:                            help,
		Buckets:                         prometheus.DefBuckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  100,
		NativeHistogramMinResetDuration: time.Hour,
	}
}

type metrics struct {
	requests         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	authFailures     *prometheus.CounterVec
	bruteForceBlocks prometheus.Counter

	// One policy is the label of a request: the first in configuration
	// order that names the identity (policy.Policy.Rules[0]). An identity
	// that several policies name is counted once, so that sums over
	// policies are the totals, at the price of the later policies not
	// seeing its requests.
	policyRequests *prometheus.CounterVec
	policyDenials  *prometheus.CounterVec
	policyDuration *prometheus.HistogramVec
	bytesIn        *prometheus.CounterVec
	bytesOut       *prometheus.CounterVec

	userRequests *prometheus.CounterVec
	userDuration *prometheus.HistogramVec

	upstreamRequests *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	// backends are the series of the servers of upstreams with several.
	backends *upstream.BackendMetrics

	// The children of the vectors by label values, so that a request
	// does not format and hash its labels (the sets are small: handlers
	// are named by routeName, codes are the few a gateway answers,
	// policies come from the configuration, users are capped).
	counters  sync.Map // requestKey -> prometheus.Counter
	observers sync.Map // handler -> prometheus.Observer
	policies  sync.Map // policy name -> *seriesSet
	upstreams sync.Map // upstream role -> *seriesSet

	// users holds the per-user series when metrics.per_user is on.
	usersMu  sync.Mutex
	users    sync.Map // user -> *seriesSet; at most maxUsers entries plus "other"
	nUsers   int
	maxUsers atomic.Int64 // 0: per-user series off
}

// seriesSet is the children of one label value (a policy, a user, an
// upstream) in the vectors labelled by it.
type seriesSet struct {
	duration prometheus.Observer
	in, out  prometheus.Counter // nil where not counted
	codes    sync.Map           // int -> prometheus.Counter
	vec      *prometheus.CounterVec
	name     string
}

func (s *seriesSet) code(code int) prometheus.Counter {
	c, ok := s.codes.Load(code)
	if !ok {
		label := noAnswer
		if code != 0 {
			label = strconv.Itoa(code)
		}
		c, _ = s.codes.LoadOrStore(code, s.vec.WithLabelValues(s.name, label))
	}
	return c.(prometheus.Counter)
}

type requestKey struct {
	handler string
	code    int
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_http_requests_total",
			Help: "Requests served, by handler and status code.",
		}, []string{"handler", "code"}),
		duration: prometheus.NewHistogramVec(durationOpts("promgate_http_request_duration_seconds",
			"Time to serve a request, upstream included."), []string{"handler"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_authentication_failures_total",
			Help: `Requests refused by authentication, by the method their credentials were for ("bearer": an API token or a JWT; "none": no credentials).`,
		}, []string{"method"}),
		bruteForceBlocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "promgate_authentication_blocked_total",
			Help: "Requests refused unchecked because their source or user had too many failed logins.",
		}),
		policyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_policy_requests_total",
			Help: `Requests by the first policy naming the identity ("(none)" before or without one) and status code.`,
		}, []string{"policy", "code"}),
		policyDenials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_policy_denials_total",
			Help: "Authenticated requests refused by promgate, by policy and reason (no_policy, forbidden, admin_only, limit).",
		}, []string{"policy", "reason"}),
		policyDuration: prometheus.NewHistogramVec(durationOpts("promgate_policy_request_duration_seconds",
			"Time to serve a request, upstream included, by policy."), []string{"policy"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_policy_request_bytes_total",
			Help: "Bytes of request bodies read, by policy.",
		}, []string{"policy"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_policy_response_bytes_total",
			Help: "Bytes of response bodies written, by policy.",
		}, []string{"policy"}),
		userRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_user_requests_total",
			Help: `Requests by authenticated user and status code, when metrics.per_user is on; users past metrics.max_users are "other".`,
		}, []string{"user", "code"}),
		userDuration: prometheus.NewHistogramVec(durationOpts("promgate_user_request_duration_seconds",
			"Time to serve a request by authenticated user, when metrics.per_user is on."), []string{"user"}),
		upstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_upstream_requests_total",
			Help: `Exchanges with an upstream by its status code ("error": no answer).`,
		}, []string{"upstream", "code"}),
		upstreamDuration: prometheus.NewHistogramVec(durationOpts("promgate_upstream_request_duration_seconds",
			"Time of an exchange with an upstream, to the end of its answer."), []string{"upstream"}),
		backends: upstream.NewBackendMetrics(),
	}
	// Every method is exported from the start, so that alerts on a rate
	// see the first failure.
	for _, method := range []string{"none", "malformed", auth.MethodBasic, "bearer", auth.MethodHeader, auth.MethodCertificate} {
		m.authFailures.WithLabelValues(method)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.authFailures, m.bruteForceBlocks,
			m.policyRequests, m.policyDenials, m.policyDuration, m.bytesIn, m.bytesOut,
			m.userRequests, m.userDuration, m.upstreamRequests, m.upstreamDuration, m.backends,
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "promgate_rewrite_cache_hits_total",
				Help: "Queries whose rewrite was found in the cache.",
			}, func() float64 { h, _ := promql.CacheStats(); return float64(h) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "promgate_rewrite_cache_misses_total",
				Help: "Queries parsed and rewritten anew.",
			}, func() float64 { _, mi := promql.CacheStats(); return float64(mi) }),
		)
	}
	return m
}

// requestInfo is what the pipeline learnt of a request, for metrics.
type requestInfo struct {
	policy string // "" before a policy is resolved
	user   string // "" before authentication
	denial string // a deny* reason, or "" (then derived from the status)
	in     *countingBody
}

func (m *metrics) observe(handler string, code int, d time.Duration, info *requestInfo, bytesOut int64) {
	k := requestKey{handler, code}
	c, ok := m.counters.Load(k)
	if !ok {
		c, _ = m.counters.LoadOrStore(k, m.requests.WithLabelValues(handler, strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
	o, ok := m.observers.Load(handler)
	if !ok {
		o, _ = m.observers.LoadOrStore(handler, m.duration.WithLabelValues(handler))
	}
	secs := d.Seconds()
	o.(prometheus.Observer).Observe(secs)

	p := m.policy(info.policy)
	p.code(code).Inc()
	p.duration.Observe(secs)
	if info.in != nil {
		if n := info.in.n.Load(); n > 0 {
			p.in.Add(float64(n))
		}
	}
	if bytesOut > 0 {
		p.out.Add(float64(bytesOut))
	}
	if info.policy != "" {
		reason := info.denial
		if reason == "" {
			// Upstreams answer neither 403 nor 429 themselves: promgate did.
			switch code {
			case http.StatusForbidden:
				reason = denyForbidden
			case http.StatusTooManyRequests:
				reason = denyLimit
			}
		}
		if reason != "" {
			m.policyDenials.WithLabelValues(info.policy, reason).Inc()
		}
	}
	if info.user != "" && m.maxUsers.Load() > 0 {
		u := m.user(info.user)
		u.code(code).Inc()
		u.duration.Observe(secs)
	}
}

// policy returns the series of a policy name ("" for noPolicy).
func (m *metrics) policy(name string) *seriesSet {
	if name == "" {
		name = noPolicy
	}
	if s, ok := m.policies.Load(name); ok {
		return s.(*seriesSet)
	}
	s, _ := m.policies.LoadOrStore(name, &seriesSet{
		name:     name,
		vec:      m.policyRequests,
		duration: m.policyDuration.WithLabelValues(name),
		in:       m.bytesIn.WithLabelValues(name),
		out:      m.bytesOut.WithLabelValues(name),
	})
	return s.(*seriesSet)
}

// user returns the series of a user, or of "other" past the cap.
func (m *metrics) user(name string) *seriesSet {
	if s, ok := m.users.Load(name); ok {
		return s.(*seriesSet)
	}
	m.usersMu.Lock()
	defer m.usersMu.Unlock()
	if s, ok := m.users.Load(name); ok {
		return s.(*seriesSet)
	}
	if int64(m.nUsers) >= m.maxUsers.Load() {
		name = otherUsers
		if s, ok := m.users.Load(name); ok {
			return s.(*seriesSet)
		}
	} else {
		m.nUsers++
	}
	s := &seriesSet{name: name, vec: m.userRequests, duration: m.userDuration.WithLabelValues(name)}
	m.users.Store(name, s)
	return s
}

// upstream returns the observer of an upstream's exchanges.
func (m *metrics) upstream(role string) func(code int, d time.Duration) {
	v, _ := m.upstreams.LoadOrStore(role, &seriesSet{
		name: role, vec: m.upstreamRequests, duration: m.upstreamDuration.WithLabelValues(role),
	})
	s := v.(*seriesSet)
	return func(code int, d time.Duration) {
		s.code(code).Inc()
		s.duration.Observe(d.Seconds())
	}
}

// configure adapts the metrics to the state about to serve: its upstreams
// report to them; the series of policies that are no longer configured
// are deleted (a request of the old state still in flight may bring one
// back until the next reload); the per-user series restart when their
// settings change. The vectors themselves are the process's and survive.
func (m *metrics) configure(st *State) {
	if st.Prometheus != nil {
		st.Prometheus.SetObserver(m.upstream("prometheus"))
	}
	if st.Alertmanager != nil {
		st.Alertmanager.SetObserver(m.upstream("alertmanager"))
	}
	m.backends.Use("prometheus", st.Prometheus)
	m.backends.Use("alertmanager", st.Alertmanager)
	keep := map[string]bool{noPolicy: true}
	for _, name := range st.policyNames {
		keep[name] = true
	}
	m.policies.Range(func(k, _ any) bool {
		if name := k.(string); !keep[name] {
			m.policies.Delete(name)
			for _, v := range []*prometheus.CounterVec{m.policyRequests, m.policyDenials, m.bytesIn, m.bytesOut} {
				v.DeletePartialMatch(prometheus.Labels{"policy": name})
			}
			m.policyDuration.DeletePartialMatch(prometheus.Labels{"policy": name})
		}
		return true
	})
	// Denials are counted without a cache (they are rare); their series
	// for vanished policies went above.

	var max int64
	if st.metrics.PerUser {
		max = int64(st.metrics.MaxUsers)
		if max == 0 {
			max = config.DefaultMaxMetricsUsers
		}
	}
	m.usersMu.Lock()
	defer m.usersMu.Unlock()
	if m.maxUsers.Load() != max {
		m.users.Range(func(k, _ any) bool { m.users.Delete(k); return true })
		m.nUsers = 0
		m.userRequests.Reset()
		m.userDuration.Reset()
		m.maxUsers.Store(max)
	}
}

// countingBody counts the bytes of a request body read.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64 // the upstream may stream the body from a goroutine of its own
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// routeName keeps the handler label bounded: known API paths by name,
// anything else as "other".
func routeName(path string) string {
	switch path {
	case "/api/v1/query", "/api/v1/query_range", "/api/v1/query_exemplars", "/api/v1/series",
		"/api/v1/labels", "/federate", "/api/v1/format_query", "/api/v1/parse_query", "/api/v1/status/buildinfo":
		return path
	}
	if strings.HasPrefix(path, "/api/v1/label/") {
		return "/api/v1/label/:name/values"
	}
	return "other"
}
