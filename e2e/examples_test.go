package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

const (
	alertRulesFile = "../examples/prometheus/promgate-alerts.yml"
	dashboardFile  = "../examples/grafana/promgate-dashboard.json"
)

// grafanaVariables stand for the dashboard's variables so that its
// expressions parse as PromQL.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

var examplesParser = parser.NewParser(parser.Options{})

// dashboardExprs returns the PromQL of every panel target of the example
// dashboard, variables replaced.
func dashboardExprs(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, grafanaVariables.Replace(tg.Expr))
		}
	}
	return exprs
}

// ruleExprs returns the expressions of the example alerting rules.
func ruleExprs(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// metricNames returns the metric names expr selects, sorted.
func metricNames(t testing.TB, expr string) []string {
	t.Helper()
	x, err := examplesParser.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v", expr, err)
		return nil
	}
	var names []string
	parser.Inspect(x, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%s: a selector without a metric name", expr)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	slices.Sort(names)
	return slices.Compact(names)
}

// exampleMetricNames returns every metric the example rules and dashboard
// use, except Prometheus' own "up".
func exampleMetricNames(t testing.TB) []string {
	t.Helper()
	var names []string
	for _, e := range append(dashboardExprs(t), ruleExprs(t)...) {
		for _, n := range metricNames(t, e) {
			if n != "up" {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// The example alerting rules pass promtool, and their rule tests pass.
func TestExampleAlertRules(t *testing.T) {
	promtool := requireTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", alertRulesFile},
		{"test", "rules", filepath.Join(filepath.Dir(alertRulesFile), "promgate-alerts_test.yml")},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if n := len(ruleExprs(t)); n < 4 {
		t.Errorf("%d rules", n)
	}
}

// Every query of the example dashboard parses and names promgate's
// metrics; the e2e test of the metrics checks that promgate exports them.
func TestExampleDashboardParses(t *testing.T) {
	exprs := dashboardExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("%d queries", len(exprs))
	}
	for _, e := range exprs {
		for _, n := range metricNames(t, e) {
			if !strings.HasPrefix(n, "promgate_") {
				t.Errorf("%s: %s is not promgate's", e, n)
			}
		}
	}
}
