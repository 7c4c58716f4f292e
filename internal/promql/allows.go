package promql

import (
	"github.com/prometheus/prometheus/model/labels"
)

// Allows reports whether a series with these labels is visible under the
// policy: it satisfies every matcher of at least one selector. A label the
// series does not have has the empty value, as in Prometheus.
func (e *Enforcer) Allows(lbls labels.Labels) bool { return e.allows(lbls.Get) }

// Visible is Allows for labels held in a map (alerts, rules and targets
// decoded from JSON).
func (e *Enforcer) Visible(lbls map[string]string) bool {
	return e.allows(func(name string) string { return lbls[name] })
}

// VisibleFunc is Allows for labels read through get, which returns the
// empty value for a label the series does not have (labels of an answer
// decoded on demand).
func (e *Enforcer) VisibleFunc(get func(name string) string) bool { return e.allows(get) }

func (e *Enforcer) allows(get func(string) string) bool {
	for _, sel := range e.selectors {
		if matchesAll(sel, get) {
			return true
		}
	}
	return false
}

func matchesAll(ms []*labels.Matcher, get func(string) string) bool {
	for _, m := range ms {
		if !m.Matches(get(m.Name)) {
			return false
		}
	}
	return true
}

// AllowsName reports whether some series named name can be visible under
// the policy: a selector whose matchers do not contradict
// {__name__="name"}. The other labels of such a series are unknown, so a
// selector that restricts them still allows the name. Contradictions
// Contradicts does not detect (disjoint regexes on one label) make the
// answer true, never false for a name a series could have.
func (e *Enforcer) AllowsName(name string) bool {
	eq := labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, name)
	for _, sel := range e.selectors {
		ms := make([]*labels.Matcher, 0, len(sel)+1)
		ms = append(ms, sel...)
		if !Contradicts(append(ms, eq)) {
			return true
		}
	}
	return false
}
