package promql

import (
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// anyName matches every series; it makes a selector acceptable as match[]
// when all its own matchers match the empty string.
var anyName = labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")

// Match returns the match[] selectors to send upstream for the client's
// match[] selectors: each combined with each policy selector, since
// Prometheus ORs match[]. Without client selectors (labels and label values
// allow none) the policy's selectors stand alone.
func (e *Enforcer) Match(match [][]*labels.Matcher) [][]*labels.Matcher {
	if len(match) == 0 {
		match = [][]*labels.Matcher{nil}
	}
	var out, pruned [][]*labels.Matcher
	seen := map[string]bool{}
	for _, m := range match {
		for _, sel := range e.selectors {
			ms := merge(m, sel)
			if !hasNonEmpty(ms) {
				ms = append(ms, anyName)
			}
			if Contradicts(ms) {
				pruned = append(pruned, ms)
				continue
			}
			if k := FormatSelector(ms); !seen[k] {
				seen[k] = true
				out = append(out, ms)
			}
		}
	}
	if len(out) == 0 {
		// Nothing can match: one contradictory selector answers empty.
		out = pruned[:1]
	}
	return out
}

func hasNonEmpty(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches("") {
			return true
		}
	}
	return false
}

// FormatSelector renders matchers as a PromQL selector that Prometheus 2.x
// parses: the metric name, if any, is written as a __name__ matcher.
func FormatSelector(ms []*labels.Matcher) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.String())
	}
	b.WriteByte('}')
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
