package promql

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
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
	if len(sels) < 2 {
		return sels
	}
	sels = dropSubsumed(sels)
	merged := mergeEqualities(sels)
	if len(merged) == len(sels) {
		return sels
	}
	return dropSubsumed(merged)
}

// matcherKey identifies a matcher by what it selects.
type matcherKey struct {
	name, value string
	typ         labels.MatchType
}

func keyOf(m *labels.Matcher) matcherKey { return matcherKey{m.Name, m.Value, m.Type} }

// keysOf returns the distinct matchers of sel.
func keysOf(sel []*labels.Matcher) []matcherKey {
	out := make([]matcherKey, 0, len(sel))
	for _, m := range sel {
		if k := keyOf(m); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// dropSubsumed drops every selector whose matchers include all of another
// selector's; of identical ones, the first stays.
func dropSubsumed(sels [][]*labels.Matcher) [][]*labels.Matcher {
	keys := make([][]matcherKey, len(sels))
	n := 0
	for _, sel := range sels {
		n += len(sel)
	}
	with := make(map[matcherKey][]int, n) // the selectors that have a matcher
	for i, sel := range sels {
		keys[i] = keysOf(sel)
		for _, k := range keys[i] {
			with[k] = append(with[k], i)
		}
	}
	// shared[j] counts the matchers of j that selector i has too: j's
	// matchers are all among i's when it reaches len(keys[j]).
	shared := make([]int, len(sels))
	var touched []int
	var out [][]*labels.Matcher
	for i, sel := range sels {
		dropped := false
		for _, k := range keys[i] {
			for _, j := range with[k] {
				if shared[j] == 0 {
					touched = append(touched, j)
				}
				shared[j]++
				// j selects all i does. Of two equal sets, keep the first.
				if j != i && shared[j] == len(keys[j]) && (len(keys[j]) < len(keys[i]) || j < i) {
					dropped = true
				}
			}
		}
		for _, j := range touched {
			shared[j] = 0
		}
		touched = touched[:0]
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
	groups := make(map[string]*group, len(sels))
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
	keys := keysOf(rest)
	slices.SortFunc(keys, func(a, b matcherKey) int {
		return cmp.Or(strings.Compare(a.name, b.name), cmp.Compare(a.typ, b.typ), strings.Compare(a.value, b.value))
	})
	var b strings.Builder
	b.WriteString(label)
	for _, k := range keys {
		// Lengths first: no two lists of matchers write the same key.
		b.WriteByte(0xff)
		b.WriteString(strconv.Itoa(len(k.name)))
		b.WriteByte(':')
		b.WriteString(k.name)
		b.WriteByte(byte('0' + k.typ))
		b.WriteString(strconv.Itoa(len(k.value)))
		b.WriteByte(':')
		b.WriteString(k.value)
	}
	return b.String()
}
