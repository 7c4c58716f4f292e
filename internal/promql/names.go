package promql

import (
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Prometheus 3 accepts any UTF-8 metric or label name, written quoted
// ({"http.server.duration", "service.name"="x"}); Prometheus 2.x parses only
// legacy names ([a-zA-Z_][a-zA-Z0-9_]*). A metric name needs no new syntax:
// the printer writes a quoted one as a __name__ matcher, {__name__="a.b"},
// which 2.x parses. A label name does: in a matcher, a grouping or a
// vector matching it has no 2.x spelling. These functions find such a name
// in what promgate is about to send, so that a 2.x upstream gets a 400 that
// says why instead of a parse error about text the client never wrote (the
// name may come from the policy).

// UTF8LabelName returns the first label name of the expression that is not
// a legacy name, and whether there is one.
func UTF8LabelName(expr parser.Node) (string, bool) {
	var found string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if found != "" {
			return errStop
		}
		switch n := n.(type) {
		case *parser.VectorSelector:
			// A non-empty Name is printed as written, unquoted.
			if n.Name != "" && !model.LegacyValidation.IsValidMetricName(n.Name) {
				found = n.Name
			} else if name, ok := SelectorUTF8LabelName(n.LabelMatchers); ok {
				found = name
			}
		case *parser.AggregateExpr:
			found = firstUTF8(n.Grouping)
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil {
				if found = firstUTF8(vm.MatchingLabels); found == "" {
					found = firstUTF8(vm.Include)
				}
			}
		}
		if found != "" {
			return errStop
		}
		return nil
	})
	return found, found != ""
}

// QueryUTF8LabelName is UTF8LabelName of a query's text; a query that does
// not parse has none (the upstream reports the syntax error).
func QueryUTF8LabelName(q string) (string, bool) {
	expr, err := pql.ParseExpr(q)
	if err != nil {
		return "", false
	}
	return UTF8LabelName(expr)
}

// SelectorUTF8LabelName returns the first matcher's label name that is not a
// legacy name. __name__ is one; its value may be any metric name.
func SelectorUTF8LabelName(ms []*labels.Matcher) (string, bool) {
	for _, m := range ms {
		if !model.LegacyValidation.IsValidLabelName(m.Name) {
			return m.Name, true
		}
	}
	return "", false
}

func firstUTF8(names []string) string {
	for _, n := range names {
		if !model.LegacyValidation.IsValidLabelName(n) {
			return n
		}
	}
	return ""
}

type stopError struct{}

func (stopError) Error() string { return "stop" }

// errStop ends parser.Inspect early.
var errStop error = stopError{}
