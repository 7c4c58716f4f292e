package alertmanager

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"strings"

	amlabels "github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/prometheus/model/labels"
)

// Errors of enforcement; the HTTP layer answers them with 403.
var (
	// ErrNotAllowed is an alert whose labels the policy does not allow.
	ErrNotAllowed = errors.New("alert outside the policy")
	// ErrContradicts is a silence whose own matchers exclude every alert
	// the policy allows: it could only silence other tenants' alerts.
	ErrContradicts = errors.New("silence matchers contradict the policy")
	// ErrNotOwned is a silence whose matchers do not imply one of the
	// policy's selectors, when promgate cannot add them (the policy has
	// several selectors).
	ErrNotOwned = errors.New("silence matchers must imply one of the policy's selectors")
)

// Enforcer decides, for one policy, which alerts a tenant sees and which
// silences are the tenant's. The policy is a union of selectors (Prometheus
// matchers, evaluated as Prometheus evaluates them); an alert is visible
// when its labels satisfy at least one selector.
//
// A silence belongs to the tenant when its matchers imply one of the
// selectors: every alert the silence can mute is then one the tenant sees,
// so it can neither mute nor reveal anything of another tenant. Implication
// is decided conservatively, matcher by matcher (see implies): when in
// doubt, a silence is not the tenant's.
//
// An Enforcer is immutable and safe for concurrent use.
type Enforcer struct {
	selectors [][]*labels.Matcher
	terms     [][]term
}

// NewEnforcer returns an Enforcer for a policy of selectors.
func NewEnforcer(selectors [][]*labels.Matcher) *Enforcer {
	e := &Enforcer{selectors: selectors, terms: make([][]term, len(selectors))}
	for i, sel := range selectors {
		for _, m := range sel {
			e.terms[i] = append(e.terms[i], promTerm(m))
		}
	}
	return e
}

// Allows reports whether an alert with these labels is visible. A label the
// alert does not have has the empty value, as in Prometheus and
// Alertmanager.
func (e *Enforcer) Allows(lset map[string]string) bool {
	for _, sel := range e.selectors {
		ok := true
		for _, m := range sel {
			if !m.Matches(lset[m.Name]) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// UpstreamFilters returns filter parameters for Alertmanager's alert
// listings that select a superset of the alerts the policy allows, so that
// Alertmanager writes and promgate reads only the tenant's share of a
// shared Alertmanager: the equality matchers of a policy of one selector
// (a union cannot be one filter). Filtering the answer stays with Allows;
// this only narrows what is fetched. Matchers whose text Alertmanager's
// parsers might read otherwise are left out (nil: no narrowing).
func (e *Enforcer) UpstreamFilters() []string {
	if len(e.selectors) != 1 {
		return nil
	}
	var fs []string
	for _, m := range e.selectors[0] {
		if m.Type == labels.MatchEqual && plainLabelName(m.Name) && plainValue(m.Value) {
			fs = append(fs, m.Name+`="`+m.Value+`"`)
		}
	}
	return fs
}

func plainLabelName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// plainValue is a value that needs no escaping in any matcher syntax.
func plainValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.:/@+", c) >= 0) {
			return false
		}
	}
	return true
}

// Owns reports whether a silence with these matchers belongs to the tenant:
// they imply at least one selector of the policy.
func (e *Enforcer) Owns(ms []*amlabels.Matcher) bool {
	return e.impliedByAny(amTerms(ms))
}

// Inject returns the matchers a new or updated silence is created with. A
// silence that is the tenant's is left as it is. Otherwise, with a policy
// of one selector, the selector's matchers that the silence does not
// already imply are added, so that it mutes only the tenant's alerts; a
// silence whose matchers contradict the selector is refused
// (ErrContradicts), since adding them would leave a silence that mutes
// nothing, which is not what was asked. With several selectors promgate
// cannot choose one: the silence must imply one itself (ErrNotOwned).
func (e *Enforcer) Inject(ms []*amlabels.Matcher) ([]*amlabels.Matcher, error) {
	if e.Owns(ms) {
		return ms, nil
	}
	if len(e.selectors) != 1 {
		return nil, fmt.Errorf("%w (%s); add the matchers of one of them", ErrNotOwned, e.describe())
	}
	out := append([]*amlabels.Matcher(nil), ms...)
	have := amTerms(ms)
	for i, t := range e.terms[0] {
		if t.matchesAll() || impliedBy(have, t) {
			continue
		}
		m, err := toAlertmanager(e.selectors[0][i])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if contradicts(amTerms(out)) {
		return nil, fmt.Errorf("%w %s: it could only mute alerts you may not see", ErrContradicts, e.describe())
	}
	if !e.Owns(out) {
		// Not expected: every matcher of the selector is in out.
		return nil, fmt.Errorf("%w (%s)", ErrNotOwned, e.describe())
	}
	return out, nil
}

// describe renders the policy's selectors for error messages: the tenant
// may know its own policy (promgate's /-/whoami shows it).
func (e *Enforcer) describe() string {
	parts := make([]string, len(e.selectors))
	for i, sel := range e.selectors {
		ms := make([]string, len(sel))
		for j, m := range sel {
			ms[j] = m.String()
		}
		parts[i] = "{" + strings.Join(ms, ", ") + "}"
	}
	return strings.Join(parts, " or ")
}

// toAlertmanager converts a policy matcher into a silence matcher that
// matches exactly the same values. Prometheus anchors regexes as
// ^(?s:re)$, where "." also matches a newline; Alertmanager as ^(?:re)$.
// A regex on which the two differ is written with the s flag.
func toAlertmanager(m *labels.Matcher) (*amlabels.Matcher, error) {
	v := m.Value
	if isRegex(m.Type) && canonical(v, syntax.Perl) != canonical(v, syntax.Perl|syntax.DotNL) {
		v = "(?s:" + v + ")"
	}
	return amlabels.NewMatcher(amlabels.MatchType(m.Type), m.Name, v)
}

// term is one label matcher of either dialect (a policy selector's or an
// Alertmanager silence's or route's), with what implication needs.
type term struct {
	name  string
	typ   labels.MatchType // the two packages number their types alike
	value string
	// match is the matcher's own semantics, in its dialect.
	match func(string) bool
	// canon is the regex as parsed by its dialect, simplified and printed:
	// two regexes with the same canon match the same values. canonNL is
	// the regex parsed with "." matching newlines too (for Prometheus
	// equal to canon), which matches a superset of canon's values. Both
	// are empty for equality matchers and unparsable regexes.
	canon, canonNL string
}

func promTerm(m *labels.Matcher) term {
	t := term{name: m.Name, typ: m.Type, value: m.Value, match: m.Matches}
	if isRegex(m.Type) {
		t.canon = canonical(m.Value, syntax.Perl|syntax.DotNL)
		t.canonNL = t.canon
	}
	return t
}

func amTerm(m *amlabels.Matcher) term {
	t := term{name: m.Name, typ: labels.MatchType(m.Type), value: m.Value, match: m.Matches}
	if isRegex(t.typ) {
		t.canon = canonical(m.Value, syntax.Perl)
		t.canonNL = canonical(m.Value, syntax.Perl|syntax.DotNL)
	}
	return t
}

func amTerms(ms []*amlabels.Matcher) []term {
	ts := make([]term, len(ms))
	for i, m := range ms {
		ts[i] = amTerm(m)
	}
	return ts
}

func isRegex(t labels.MatchType) bool {
	return t == labels.MatchRegexp || t == labels.MatchNotRegexp
}

func canonical(re string, flags syntax.Flags) string {
	p, err := syntax.Parse(re, flags)
	if err != nil {
		return ""
	}
	return p.Simplify().String()
}

// matchesAll reports whether t matches every value (=~".*" in Prometheus):
// it needs no silence matcher to be implied.
func (t term) matchesAll() bool {
	return t.typ == labels.MatchRegexp && t.canon != "" && t.canon == anything
}

var anything = canonical(".*", syntax.Perl|syntax.DotNL)

// set returns the values a regex matcher's regex matches when they are a
// finite set of literals (a|b|c), nil otherwise. A set of literals
// contains no ".", so both dialects agree on it.
func (t term) set() []string {
	if !isRegex(t.typ) {
		return nil
	}
	m, err := labels.NewMatcher(labels.MatchRegexp, "", t.value)
	if err != nil {
		return nil
	}
	return m.SetMatches()
}

func impliesAll(have, want []term) bool {
	for _, w := range want {
		if !w.matchesAll() && !impliedBy(have, w) {
			return false
		}
	}
	return true
}

func impliedBy(have []term, w term) bool {
	for _, h := range have {
		if implies(h, w) {
			return true
		}
	}
	return false
}

// implies reports whether every value a matches is one b matches, for
// matchers on the same label. It answers true only when that is certain:
//
//   - a is an equality: b matches a's value;
//   - a and b are the same matcher (for regexes: same parsed regex, with
//     the dialects' "." taken into account);
//   - a's regex is a finite set of literals, each of which b matches;
//   - b excludes one value (!=) that a does not match, or a finite set of
//     literals (!~ a|b) none of which a matches.
func implies(a, b term) bool {
	if a.name != b.name {
		return false
	}
	if a.typ == labels.MatchEqual {
		return b.match(a.value)
	}
	if a.typ == b.typ {
		switch a.typ {
		case labels.MatchNotEqual:
			if a.value == b.value {
				return true
			}
		case labels.MatchRegexp:
			// a's values ⊆ b's values.
			if a.canon != "" && (a.canon == b.canon || a.canonNL == b.canon) {
				return true
			}
		case labels.MatchNotRegexp:
			// b's regex values ⊆ a's regex values.
			if b.canon != "" && (b.canon == a.canon || b.canonNL == a.canon) {
				return true
			}
		}
	}
	if a.typ == labels.MatchRegexp {
		if set := a.set(); set != nil {
			for _, v := range set {
				if !b.match(v) {
					return false
				}
			}
			return true
		}
	}
	switch b.typ {
	case labels.MatchNotEqual:
		return !a.match(b.value)
	case labels.MatchNotRegexp:
		if set := b.set(); set != nil {
			for _, v := range set {
				if a.match(v) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// contradicts reports whether no value can satisfy all terms on some
// label: two equalities that differ, an equality another term rejects, or
// a matcher and its negation. Other impossible combinations are not found.
func contradicts(ts []term) bool {
	for i, a := range ts {
		for _, b := range ts[i+1:] {
			if a.name != b.name {
				continue
			}
			switch {
			case a.typ == labels.MatchEqual && !b.match(a.value),
				b.typ == labels.MatchEqual && !a.match(b.value):
				return true
			case inverse(a.typ, b.typ) && a.value == b.value && a.canon == b.canon:
				return true
			}
		}
	}
	return false
}

func inverse(a, b labels.MatchType) bool {
	switch a {
	case labels.MatchEqual:
		return b == labels.MatchNotEqual
	case labels.MatchNotEqual:
		return b == labels.MatchEqual
	case labels.MatchRegexp:
		return b == labels.MatchNotRegexp
	case labels.MatchNotRegexp:
		return b == labels.MatchRegexp
	}
	return false
}
