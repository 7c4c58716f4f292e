package promql

import (
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// simplify returns a policy's selectors with the same union in fewer
// terms, each step an identity of sets of series:
//
//   - a selector whose matchers include all of another's selects a subset
//     of that one's series: it is dropped (and so is a repeated one);
//   - selectors identical but for one equality on the same label,
//     C ∧ l="a", C ∧ l="b", ..., are one: C ∧ l=~"a|b|..." with the values
//     quoted, which Prometheus anchors, so that it matches exactly the
//     listed values (the empty one included: like l="", it matches a
//     series without the label).
//
// Every term of the union costs the upstream a selection and a set
// operation; a policy listing tenants one selector each becomes one
// selection. The order of the selectors that remain is kept.
func simplify(sels [][]*labels.Matcher) [][]*labels.Matcher {
	sels = dropSubsumed(sels)
	merged := mergeEqualities(sels)
	if len(merged) == len(sels) {
		return sels
	}
	return dropSubsumed(merged)
}

// matcherKey identifies a matcher by what it selects.
func matcherKey(m *labels.Matcher) string { return m.String() }

// dropSubsumed drops every selector whose matchers include all of another
// selector's; of identical ones, the first stays.
func dropSubsumed(sels [][]*labels.Matcher) [][]*labels.Matcher {
	sets := make([]map[string]bool, len(sels))
	for i, sel := range sels {
		sets[i] = make(map[string]bool, len(sel))
		for _, m := range sel {
			sets[i][matcherKey(m)] = true
		}
	}
	// subset reports whether every matcher of a is one of b.
	subset := func(a, b map[string]bool) bool {
		if len(a) > len(b) {
			return false
		}
		for k := range a {
			if !b[k] {
				return false
			}
		}
		return true
	}
	var out [][]*labels.Matcher
	for i, sel := range sels {
		dropped := false
		for j := range sels {
			if j == i || !subset(sets[j], sets[i]) {
				continue
			}
			// j selects all i does. Of two equal sets, keep the first.
			if len(sets[j]) < len(sets[i]) || j < i {
				dropped = true
				break
			}
		}
		if !dropped {
			out = append(out, sel)
		}
	}
	if len(out) == len(sels) {
		return sels
	}
	return out
}

// mergeEqualities unites the selectors that differ only in an equality on
// one label into one selector with a regex of the values (see simplify).
// A group takes the place of its first selector.
func mergeEqualities(sels [][]*labels.Matcher) [][]*labels.Matcher {
	type group struct {
		members []int
		rest    []*labels.Matcher // the matchers the members share
		label   string
		values  []string
	}
	groups := map[string]*group{}
	var order []string
	for i, sel := range sels {
		for k, m := range sel {
			if m.Type != labels.MatchEqual {
				continue
			}
			rest := slices.Concat(sel[:k], sel[k+1:])
			key := restKey(m.Name, rest)
			g, ok := groups[key]
			if !ok {
				g = &group{rest: rest, label: m.Name}
				groups[key] = g
				order = append(order, key)
			}
			g.members = append(g.members, i)
			g.values = append(g.values, m.Value)
		}
	}
	taken := make([]bool, len(sels))
	replace := map[int][]*labels.Matcher{} // first member -> merged selector
	for _, key := range order {
		g := groups[key]
		var values []string
		var first = -1
		for j, i := range g.members {
			if taken[i] {
				continue
			}
			if first < 0 {
				first = i
			}
			if !slices.Contains(values, g.values[j]) {
				values = append(values, g.values[j])
			}
		}
		if first < 0 || len(values) < 2 {
			continue
		}
		quoted := make([]string, len(values))
		for j, v := range values {
			quoted[j] = regexp.QuoteMeta(v)
		}
		re, err := labels.NewMatcher(labels.MatchRegexp, g.label, strings.Join(quoted, "|"))
		if err != nil {
			continue // quoted literals always compile; keep the selectors if not
		}
		for _, i := range g.members {
			taken[i] = true
		}
		replace[first] = append(slices.Clone(g.rest), re)
	}
	if len(replace) == 0 {
		return sels
	}
	var out [][]*labels.Matcher
	for i, sel := range sels {
		if m, ok := replace[i]; ok {
			out = append(out, m)
		} else if !taken[i] {
			out = append(out, sel)
		}
	}
	return out
}

// restKey names a group of mergeEqualities: the label of the equality and
// the other matchers, in any order.
func restKey(label string, rest []*labels.Matcher) string {
	keys := make([]string, len(rest))
	for i, m := range rest {
		keys[i] = matcherKey(m)
	}
	slices.Sort(keys)
	return label + "\xff" + strings.Join(keys, "\xff")
}
