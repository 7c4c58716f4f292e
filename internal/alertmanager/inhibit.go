package alertmanager

import (
	"errors"
	"fmt"

	amlabels "github.com/prometheus/alertmanager/pkg/labels"
)

// ErrInhibits is an alert that, though the policy allows it, could inhibit
// alerts the policy does not allow.
var ErrInhibits = errors.New("alert could inhibit alerts outside the policy")

// CheckInhibitions refuses alerts that would mute other tenants' alerts
// through an inhibit rule: a tenant may post an alert only if every alert
// it can inhibit is one the tenant sees. For each rule whose source
// matchers the alert satisfies, the alerts it inhibits are those that
// satisfy the target matchers and have the alert's values of the equal
// labels; those conditions must imply one of the policy's selectors
// (decided as silence ownership is). A rule with equal: [team] and a
// policy {team="a"} passes; a rule without equal labels, whose targets
// span teams, refuses its sources.
func (e *Enforcer) CheckInhibitions(c *Config, alerts []PostableAlert) error {
	for i, al := range alerts {
		for j, r := range c.inhibit {
			if !matchesAll(r.source, al.Labels) {
				continue
			}
			targets := amTerms(r.target)
			for _, n := range r.Equal {
				m, err := amlabels.NewMatcher(amlabels.MatchEqual, n, al.Labels[n])
				if err != nil {
					return err
				}
				targets = append(targets, amTerm(m))
			}
			if contradicts(targets) || e.impliedByAny(targets) {
				continue
			}
			return fmt.Errorf("%w: alert %d with labels %s is a source of inhibit rule %d, whose targets are not all in the policy %s",
				ErrInhibits, i, formatLabels(al.Labels), j, e.describe())
		}
	}
	return nil
}

// impliedByAny reports whether ts imply one of the policy's selectors.
func (e *Enforcer) impliedByAny(ts []term) bool {
	for _, sel := range e.terms {
		if impliesAll(ts, sel) {
			return true
		}
	}
	return false
}

// matchesAll reports whether labels satisfy every matcher, as Alertmanager
// matches: an absent label has the empty value.
func matchesAll(ms []*amlabels.Matcher, lset map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(lset[m.Name]) {
			return false
		}
	}
	return true
}
