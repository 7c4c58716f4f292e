package upstream

import (
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// backend is one server of an upstream of several (an HA pair): a
// single-server Upstream with its own connections, and what the balancer
// knows of it.
type backend struct {
	u    *Upstream
	name string // its URL without credentials, for metrics and logs
	// inflight counts the exchanges chosen on it and not yet finished.
	inflight atomic.Int64
	// downUntil (Unix nanoseconds) leaves the server aside after a
	// failure; zero when healthy.
	downUntil atomic.Int64
	// stats are its counters; the nil fields count nothing.
	stats atomic.Pointer[backendStats]
}

type backendStats struct {
	requests, errors, retries prometheus.Counter
}

// noStats is the stats of a backend whose upstream reports to no metrics.
var noStats = &backendStats{}

// backendName is how a server is shown: its URL without user information
// (a password must not reach labels or logs) nor trailing slash.
func backendName(u *url.URL) string {
	c := *u
	c.User = nil
	return strings.TrimSuffix(c.String(), "/")
}

// healthy reports whether the server is not left aside at now.
func (b *backend) healthy(now int64) bool {
	d := b.downUntil.Load()
	return d == 0 || now >= d
}

// fail leaves the server aside for d: passive health, learnt from the
// requests themselves rather than from probes of its own.
func (b *backend) fail(d time.Duration) {
	now := time.Now()
	if was := b.downUntil.Swap(now.Add(d).UnixNano()); was == 0 || was <= now.UnixNano() {
		b.u.logger.Warn("upstream server failed: left aside", "for", d) // the logger names it
	}
}

// succeed makes a server that answered healthy again.
func (b *backend) succeed() {
	if b.downUntil.Load() != 0 && b.downUntil.Swap(0) != 0 {
		b.u.logger.Info("upstream server answers again")
	}
}

func (b *backend) count(c prometheus.Counter) {
	if c != nil {
		c.Inc()
	}
}

// BackendMetrics are the metrics of the servers of upstreams with several
// URLs, by upstream role and server. They belong to the process: the
// counters survive reloads, and each reload's upstreams report to them
// (Use).
type BackendMetrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	retries  *prometheus.CounterVec
	healthy  *prometheus.Desc

	mu      sync.Mutex
	current map[string]*Upstream       // role -> the upstream serving it
	names   map[string]map[string]bool // role -> servers with series
}

// NewBackendMetrics returns the metrics, to be registered.
func NewBackendMetrics() *BackendMetrics {
	labels := []string{"upstream", "backend"}
	return &BackendMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_upstream_backend_requests_total",
			Help: "Requests sent to one server of an upstream of several URLs, retries included.",
		}, labels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_upstream_backend_errors_total",
			Help: "Requests to one server of an upstream of several URLs that got no answer, or a 502, 503 or 504 of the server's own.",
		}, labels),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_upstream_backend_retries_total",
			Help: "Requests sent to this server after another server of the upstream failed them.",
		}, labels),
		healthy: prometheus.NewDesc("promgate_upstream_backend_healthy",
			"1 when the server of an upstream of several URLs takes requests, 0 while it is left aside after a failure (fail_timeout).",
			labels, nil),
		current: map[string]*Upstream{},
		names:   map[string]map[string]bool{},
	}
}

// Use makes u the upstream of role that the metrics follow, and deletes
// the series of servers it no longer has (the counters of those it keeps
// go on). u may be nil, or have a single server (then it has no series).
func (m *BackendMetrics) Use(role string, u *Upstream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := map[string]bool{}
	if u != nil && u.lb != nil {
		for _, b := range u.lb.backends {
			keep[b.name] = true
			b.stats.Store(&backendStats{
				requests: m.requests.WithLabelValues(role, b.name),
				errors:   m.errors.WithLabelValues(role, b.name),
				retries:  m.retries.WithLabelValues(role, b.name),
			})
		}
		m.current[role] = u
	} else {
		delete(m.current, role)
	}
	for name := range m.names[role] {
		if !keep[name] {
			for _, v := range []*prometheus.CounterVec{m.requests, m.errors, m.retries} {
				v.DeleteLabelValues(role, name)
			}
		}
	}
	m.names[role] = keep
}

// Describe implements prometheus.Collector.
func (m *BackendMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.errors.Describe(ch)
	m.retries.Describe(ch)
	ch <- m.healthy
}

// Collect implements prometheus.Collector.
func (m *BackendMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.errors.Collect(ch)
	m.retries.Collect(ch)
	now := time.Now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	for role, u := range m.current {
		for _, b := range u.lb.backends {
			v := 0.0
			if b.healthy(now) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(m.healthy, prometheus.GaugeValue, v, role, b.name)
		}
	}
}
