package config

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/promgate/promgate/internal/limits"
)

// Limits is a limits: section, at the top level (the defaults) or in a
// policy (overriding them key by key). A key left out inherits; 0 (or an
// empty blocked_queries list) lifts the limit.
type Limits struct {
	MaxConcurrent  *int            `yaml:"max_concurrent"`
	MaxQueueWait   *Duration       `yaml:"max_queue_wait"`
	Rate           *float64        `yaml:"rate"`
	Burst          *int            `yaml:"burst"`
	UpstreamTime   *float64        `yaml:"upstream_time"`
	UpstreamBurst  *Duration       `yaml:"upstream_time_burst"`
	MaxRange       *Duration       `yaml:"max_range"`
	MaxLookback    *Duration       `yaml:"max_lookback"`
	MinStep        *Duration       `yaml:"min_step"`
	MaxPoints      *int            `yaml:"max_points"`
	MaxQueryLength *int            `yaml:"max_query_length"`
	BlockedQueries *[]BlockedQuery `yaml:"blocked_queries"`
	MaxSeries      *int            `yaml:"max_series"`

	blocked []limits.Blocked // compiled by the validator
}

// Duration is a duration as Prometheus writes them (30s, 5m, 1h30m, 7d).
type Duration time.Duration

// UnmarshalYAML reads a Duration; an error names its line.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := model.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (such as 30s, 5m, 1h30m, 7d)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// BlockedQuery refuses the queries its pattern matches (whole text), with
// the reason shown to the tenant.
type BlockedQuery struct {
	Pattern string `yaml:"pattern"`
	Reason  string `yaml:"reason"`
}

// DefaultMaxQueueWait is how long a request over max_concurrent waits for
// a slot when max_queue_wait is not set.
const DefaultMaxQueueWait = 100 * time.Millisecond

// limits validates one limits: section; where names it in messages.
func (v *validator) limits(l *Limits, where string, key, n *yaml.Node) {
	if l == nil {
		return
	}
	at := func(name string) int { return lineOf(field(n, name), key) }
	nonNegInt := func(name string, p *int) {
		if p != nil && *p < 0 {
			v.errorf(at(name), "%s.%s must not be negative (0 lifts the limit)", where, name)
		}
	}
	nonNegDur := func(name string, p *Duration) {
		if p != nil && *p < 0 {
			v.errorf(at(name), "%s.%s must not be negative (0 lifts the limit)", where, name)
		}
	}
	nonNegInt("max_concurrent", l.MaxConcurrent)
	nonNegInt("burst", l.Burst)
	nonNegInt("max_points", l.MaxPoints)
	nonNegInt("max_query_length", l.MaxQueryLength)
	nonNegInt("max_series", l.MaxSeries)
	nonNegDur("max_queue_wait", l.MaxQueueWait)
	nonNegDur("max_range", l.MaxRange)
	nonNegDur("max_lookback", l.MaxLookback)
	nonNegDur("min_step", l.MinStep)
	if l.Rate != nil && (*l.Rate < 0 || math.IsNaN(*l.Rate) || math.IsInf(*l.Rate, 0)) {
		v.errorf(at("rate"), "%s.rate must be a non-negative number of requests per second (0 lifts the limit)", where)
	}
	if l.Burst != nil && *l.Burst > 0 && (l.Rate == nil || *l.Rate == 0) {
		v.errorf(at("burst"), "%s.burst needs rate", where)
	}
	if l.UpstreamTime != nil && (*l.UpstreamTime < 0 || math.IsNaN(*l.UpstreamTime) || math.IsInf(*l.UpstreamTime, 0)) {
		v.errorf(at("upstream_time"), "%s.upstream_time must be a non-negative number of seconds of upstream time per second (0 lifts the limit)", where)
	}
	nonNegDur("upstream_time_burst", l.UpstreamBurst)
	if l.UpstreamBurst != nil && *l.UpstreamBurst > 0 && (l.UpstreamTime == nil || *l.UpstreamTime == 0) {
		v.errorf(at("upstream_time_burst"), "%s.upstream_time_burst needs upstream_time", where)
	}
	if l.MaxQueueWait != nil && time.Duration(*l.MaxQueueWait) > time.Minute {
		v.errorf(at("max_queue_wait"), "%s.max_queue_wait must be at most 1m: the queue is meant to be short", where)
	}
	if l.BlockedQueries == nil {
		return
	}
	bn := field(n, "blocked_queries")
	items := sequence(bn, len(*l.BlockedQueries))
	for i, b := range *l.BlockedQueries {
		line := lineOf(field(items[i], "pattern"), items[i], bn, key)
		if strings.TrimSpace(b.Pattern) == "" {
			v.errorf(line, "%s.blocked_queries #%d: pattern is required", where, i+1)
			continue
		}
		// Checked alone so that the message shows the pattern as written.
		if _, err := regexp.Compile(b.Pattern); err != nil {
			v.errorf(line, "%s.blocked_queries #%d: invalid pattern %q: %v", where, i+1, b.Pattern, err)
			continue
		}
		// Anchored: a pattern matches the whole query, as in Mimir.
		re := regexp.MustCompile("^(?:" + b.Pattern + ")$")
		l.blocked = append(l.blocked, limits.Blocked{Pattern: re, Reason: b.Reason})
	}
}

// allLimits validates the top-level limits and those of every policy.
func (v *validator) allLimits(cfg *Config, root *yaml.Node) {
	k, n := entry(root, "limits")
	v.limits(cfg.Limits, "limits", k, n)
	items := sequence(field(root, "policies"), len(cfg.Policies))
	for i := range cfg.Policies {
		p := &cfg.Policies[i]
		pk, pn := entry(items[i], "limits")
		v.limits(p.Limits, fmt.Sprintf("policy %q: limits", p.Name), pk, pn)
	}
}

// LimitsFor returns the effective limits of an identity whose matching
// policies are rules (in file order, as policy.Policy.Rules): each key is
// taken from the first of those policies that sets it, else from the
// top-level limits. nil when nothing is limited. The result is shared:
// callers must not change it.
func (c *Config) LimitsFor(rules []string) *limits.Limits {
	byName := make(map[string]*Limits, len(c.Policies))
	for i := range c.Policies {
		if c.Policies[i].Limits != nil {
			byName[c.Policies[i].Name] = c.Policies[i].Limits
		}
	}
	chain := make([]*Limits, 0, len(rules)+1)
	var ids []string
	for _, r := range rules {
		if l := byName[r]; l != nil {
			chain = append(chain, l)
			ids = append(ids, r)
		}
	}
	if c.Limits != nil {
		chain = append(chain, c.Limits)
	}
	out := &limits.Limits{MaxQueueWait: DefaultMaxQueueWait, ID: strings.Join(ids, "\x00")}
	setInt := func(dst *int, get func(*Limits) *int) {
		for _, l := range chain {
			if p := get(l); p != nil {
				*dst = *p
				return
			}
		}
	}
	setDur := func(dst *time.Duration, get func(*Limits) *Duration) {
		for _, l := range chain {
			if p := get(l); p != nil {
				*dst = time.Duration(*p)
				return
			}
		}
	}
	setInt(&out.MaxConcurrent, func(l *Limits) *int { return l.MaxConcurrent })
	setDur(&out.MaxQueueWait, func(l *Limits) *Duration { return l.MaxQueueWait })
	for _, l := range chain {
		if l.Rate != nil {
			out.Rate = *l.Rate
			break
		}
	}
	setInt(&out.Burst, func(l *Limits) *int { return l.Burst })
	for _, l := range chain {
		if l.UpstreamTime != nil {
			out.UpstreamTime = *l.UpstreamTime
			break
		}
	}
	setDur(&out.UpstreamTimeBurst, func(l *Limits) *Duration { return l.UpstreamBurst })
	setDur(&out.MaxRange, func(l *Limits) *Duration { return l.MaxRange })
	setDur(&out.MaxLookback, func(l *Limits) *Duration { return l.MaxLookback })
	setDur(&out.MinStep, func(l *Limits) *Duration { return l.MinStep })
	setInt(&out.MaxPoints, func(l *Limits) *int { return l.MaxPoints })
	setInt(&out.MaxQueryLength, func(l *Limits) *int { return l.MaxQueryLength })
	setInt(&out.MaxSeries, func(l *Limits) *int { return l.MaxSeries })
	for _, l := range chain {
		if l.BlockedQueries != nil {
			out.Blocked = l.blocked
			break
		}
	}
	// Admission state outlives a reload when the user's admission limits
	// did not change; the ID says which they are.
	out.ID = fmt.Sprintf("%s|%d|%s|%g|%d|%g|%s", out.ID, out.MaxConcurrent, out.MaxQueueWait, out.Rate, out.Burst, out.UpstreamTime, out.UpstreamTimeBurst)
	if !out.Admission() && !out.Guards() {
		return nil
	}
	return out
}
