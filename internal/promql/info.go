package promql

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// info(v, {selector}) adds to each series of v the labels of the info
// series (target_info unless the selector names others by __name__) that
// share its job and instance. Prometheus selects those info series itself:
// the query never names them as a selector promgate could rewrite, and every
// matcher of the second argument also chooses which labels are added, so
// the policy's matchers cannot be put there. The rewrite therefore decides
// per info metric name:
//
//   - the policy shows every series of each name (a selector that restricts
//     nothing but the name): the info series are the oracle's, only v is
//     rewritten;
//   - the policy shows no series of any name: on the oracle info() finds
//     nothing; the rewrite selects no info series, keeping what info()
//     does with the series it cannot enrich;
//   - otherwise (the policy shows some info series of a name, or the names
//     are not a finite set) another tenant's info series could add labels:
//     the query is refused.
func (e *Enforcer) rewriteInfo(n *parser.Call) (parser.Expr, error) {
	base, err := e.rewrite(n.Args[0])
	if err != nil {
		return nil, err
	}
	var sel *parser.VectorSelector
	var nameMatchers []*labels.Matcher
	if len(n.Args) > 1 {
		vs, ok := n.Args[1].(*parser.VectorSelector)
		if !ok {
			return nil, fmt.Errorf("%w: info() with a second argument that is not a selector", ErrUnsupported)
		}
		sel = vs
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				nameMatchers = append(nameMatchers, m)
			}
		}
	}
	names, finite := infoNames(nameMatchers)
	all, none := true, true
	for _, name := range names {
		switch e.showsName(name) {
		case showsAll:
			none = false
		case showsNone:
			all = false
		default:
			all, none = false, false
		}
	}
	if !finite {
		all, none = false, false
	}
	args := parser.Expressions{base}
	switch {
	case all:
		if sel != nil {
			args = append(args, sel)
		}
	case none:
		// No info series: a name matcher no name satisfies. The other
		// matchers stay, since they decide whether a series that finds no
		// info series is kept.
		c := parser.VectorSelector{PosRange: n.PosRange}
		if sel != nil {
			c = *sel
			c.Name = ""
		}
		c.LabelMatchers = append(append([]*labels.Matcher(nil), c.LabelMatchers...),
			labels.MustNewMatcher(labels.MatchNotRegexp, labels.MetricName, ".*"))
		args = append(args, &c)
	default:
		return nil, fmt.Errorf("info() %w: the policy shows only some of the info series it would join (another tenant's could add labels); select them explicitly and join with group_left", ErrUnenforceable)
	}
	return &parser.Call{Func: n.Func, Args: args, PosRange: n.PosRange}, nil
}

// infoNames returns the info metric names the __name__ matchers of info()'s
// second argument select, as Prometheus reads them (none: target_info; only
// negative ones: names ending in _info), when they are a finite set.
func infoNames(ms []*labels.Matcher) ([]string, bool) {
	if len(ms) == 0 {
		return []string{"target_info"}, true
	}
	var candidates []string
	found := false
	for _, m := range ms {
		switch {
		case m.Type == labels.MatchEqual:
			candidates, found = []string{m.Value}, true
		case m.Type == labels.MatchRegexp && len(m.SetMatches()) > 0:
			candidates, found = m.SetMatches(), true
		}
		if found {
			break
		}
	}
	if !found {
		return nil, false
	}
	var out []string
	for _, c := range candidates {
		if matchesAll(ms, func(string) string { return c }) {
			out = append(out, c)
		}
	}
	return out, true
}

type shows int

const (
	showsSome shows = iota
	showsAll
	showsNone
)

// showsName says whether the policy shows every series named name, none,
// or some.
func (e *Enforcer) showsName(name string) shows {
	eq := labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, name)
	none := true
	for _, sel := range e.selectors {
		onlyName := true
		for _, m := range sel {
			if m.Name != labels.MetricName || !m.Matches(name) {
				onlyName = false
			}
		}
		if onlyName {
			return showsAll
		}
		if !Contradicts(append(append([]*labels.Matcher(nil), sel...), eq)) {
			none = false
		}
	}
	if none {
		return showsNone
	}
	return showsSome
}
