package server

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authFailures prometheus.Counter
	// The children of the vectors by label values, so that a request
	// does not format and hash its labels (both sets are small: handlers
	// are named by routeName, codes are the few a gateway answers).
	counters  sync.Map // requestKey -> prometheus.Counter
	observers sync.Map // handler -> prometheus.Observer
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
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "promgate_http_request_duration_seconds",
			Help:    "Time to serve a request, upstream included.",
			Buckets: prometheus.DefBuckets,
		}, []string{"handler"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "promgate_authentication_failures_total",
			Help: "Requests refused by authentication.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.authFailures)
	}
	return m
}

func (m *metrics) observe(handler string, code int, d time.Duration) {
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
	o.(prometheus.Observer).Observe(d.Seconds())
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
