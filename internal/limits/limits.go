// Package limits keeps one tenant from starving the others: admission
// (request rate, upstream time and concurrent requests, answered 429 with
// Retry-After) and
// query guards (range, lookback, step, points, length and blocked patterns,
// answered 422), per policy with a global default.
//
// Admission state is kept per user identity, as vmauth and Mimir limit per
// tenant: two users under one policy each get the policy's limits, so one
// user's flood does not use up a colleague's share. The state of a user idle
// for a while is dropped (see Registry), so memory follows the active users.
package limits

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Limits are the effective limits of one identity. The zero value limits
// nothing.
type Limits struct {
	// MaxConcurrent bounds the requests of one user in flight at once; a
	// request over it waits up to MaxQueueWait for a slot.
	MaxConcurrent int
	MaxQueueWait  time.Duration
	// Rate is requests per second (token bucket) with Burst tokens.
	Rate  float64
	Burst int
	// UpstreamTime is the seconds of upstream time per second a user may
	// spend on average, saved up to UpstreamTimeBurst: a bucket of time
	// that each request draws on by how long it was in flight, charged
	// when it ends. Request counts cannot tell a query of 1 ms from one
	// of 10 s; this bounds a user's share of the upstream's time.
	UpstreamTime      float64
	UpstreamTimeBurst time.Duration

	// Query guards, for /api/v1/query and /api/v1/query_range.
	MaxRange       time.Duration // end - start of a range query
	MaxLookback    time.Duration // how far before now a query may reach
	MinStep        time.Duration
	MaxPoints      int // points per series: (end-start)/step + 1
	MaxQueryLength int // bytes of the query text
	Blocked        []Blocked
	// MaxSeries bounds the series (or names, or values) of one answer of
	// /api/v1/query, /query_range, /series, /labels and label values: sent
	// upstream as limit where the upstream reads it, else applied by
	// promgate to the answer.
	MaxSeries int

	// ID tells apart the Limits of one configuration: admission state is
	// kept per user and ID, so a user whose groups change meets fresh state
	// with the right limits.
	ID string
}

// Blocked is a refused query pattern, as Mimir's blocked_queries.
type Blocked struct {
	// Pattern must match the whole query text.
	Pattern *regexp.Regexp
	Reason  string
}

// Admission reports whether rate, upstream time or concurrency is limited.
func (l *Limits) Admission() bool {
	return l != nil && (l.Rate > 0 || l.MaxConcurrent > 0 || l.UpstreamTime > 0)
}

// TimeBurst is UpstreamTimeBurst, or its default: a minute of
// UpstreamTime, at least a second.
func (l *Limits) TimeBurst() time.Duration {
	if l.UpstreamTimeBurst > 0 {
		return l.UpstreamTimeBurst
	}
	return max(time.Second, time.Duration(l.UpstreamTime*float64(time.Minute)))
}

// Guards reports whether any query guard is set.
func (l *Limits) Guards() bool {
	return l != nil && (l.MaxRange > 0 || l.MaxLookback > 0 || l.MinStep > 0 || l.MaxPoints > 0 ||
		l.MaxQueryLength > 0 || len(l.Blocked) > 0 || l.MaxSeries > 0)
}

// SeriesLimit is the limit of an answer whose client asked for client
// (0: none): the smaller of it and MaxSeries, so that a client can lower
// the limit but never raise it. 0 is no limit.
func (l *Limits) SeriesLimit(client int) int {
	if l == nil || l.MaxSeries == 0 || (client > 0 && client < l.MaxSeries) {
		return client
	}
	return l.MaxSeries
}

// Kind is how a refusal is answered.
type Kind int

const (
	// TooMany is rate or concurrency: 429 with Retry-After.
	TooMany Kind = iota
	// Guard is a query guard: 422.
	Guard
)

// Error is a request refused by a limit. Its message names the limit and
// its value, in words a tenant can act on.
type Error struct {
	Kind Kind
	// Limit is the configuration key, e.g. "max_range".
	Limit string
	Msg   string
	// RetryAfter is when a retry may succeed (TooMany only).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Msg }

// RetryAfterSeconds is RetryAfter for the Retry-After header: whole
// seconds, at least 1.
func (e *Error) RetryAfterSeconds() string {
	s := int(math.Ceil(e.RetryAfter.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

func guardError(limit, format string, args ...any) *Error {
	return &Error{Kind: Guard, Limit: limit, Msg: fmt.Sprintf(format, args...)}
}

// FormatDuration prints d for messages in the units of the configuration
// (30d, 1h30m); days are the largest unit, so 30d reads as written.
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	ms := d.Milliseconds()
	for _, u := range []struct {
		n    int64
		unit string
	}{{24 * 3600 * 1000, "d"}, {3600 * 1000, "h"}, {60 * 1000, "m"}, {1000, "s"}, {1, "ms"}} {
		if ms >= u.n {
			fmt.Fprintf(&b, "%d%s", ms/u.n, u.unit)
			ms %= u.n
		}
	}
	if b.Len() == 0 {
		return d.String()
	}
	return b.String()
}

// Describe says each limit of l, in the configuration's keys, for explain
// and /-/whoami: a tenant who meets a 429 or a 422 can read what it met.
// nil when nothing is limited.
func (l *Limits) Describe() []string {
	if l == nil {
		return nil
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if l.Rate > 0 {
		burst := l.Burst
		if burst <= 0 {
			burst = max(1, int(l.Rate+0.999999))
		}
		add("rate: %g requests per second, burst %d", l.Rate, burst)
	}
	if l.MaxConcurrent > 0 {
		add("max_concurrent: %d requests in flight; one over it waits up to %s (max_queue_wait)", l.MaxConcurrent, FormatDuration(l.MaxQueueWait))
	}
	if l.UpstreamTime > 0 {
		add("upstream_time: %g seconds of upstream time per second, saved up to %s (upstream_time_burst)", l.UpstreamTime, FormatDuration(l.TimeBurst()))
	}
	if l.MaxRange > 0 {
		add("max_range: %s (end - start of a range query)", FormatDuration(l.MaxRange))
	}
	if l.MaxLookback > 0 {
		add("max_lookback: %s (how far before now a query may read)", FormatDuration(l.MaxLookback))
	}
	if l.MinStep > 0 {
		add("min_step: %s", FormatDuration(l.MinStep))
	}
	if l.MaxPoints > 0 {
		add("max_points: %d points per series", l.MaxPoints)
	}
	if l.MaxQueryLength > 0 {
		add("max_query_length: %d bytes", l.MaxQueryLength)
	}
	if l.MaxSeries > 0 {
		add("max_series: %d series, names or values per answer", l.MaxSeries)
	}
	for _, b := range l.Blocked {
		reason := b.Reason
		if reason == "" {
			reason = "no reason given"
		}
		add("blocked_queries: %q: %s", b.Pattern.String(), reason)
	}
	return out
}
