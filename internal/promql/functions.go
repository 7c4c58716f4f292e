package promql

import "github.com/prometheus/prometheus/promql/parser"

// Prometheus 2.x calls double_exponential_smoothing holt_winters; the parser
// of Prometheus 3 no longer knows that name. Queries written for a 2.x
// upstream (Grafana dashboards of years) must still parse, so the old name
// is registered with its 2.x signature. The rewrite treats it like any
// function over a range vector.
func init() {
	if _, ok := parser.Functions["holt_winters"]; !ok {
		parser.Functions["holt_winters"] = &parser.Function{
			Name:       "holt_winters",
			ArgTypes:   []parser.ValueType{parser.ValueTypeMatrix, parser.ValueTypeScalar, parser.ValueTypeScalar},
			ReturnType: parser.ValueTypeVector,
		}
	}
}
