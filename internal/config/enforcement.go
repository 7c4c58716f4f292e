package config

import (
	"go.yaml.in/yaml/v3"

	promapi "github.com/promgate/promgate/internal/prometheus"
)

// enforcement validates upstreams.prometheus.enforcement: rewrite (the
// default, any Prometheus-compatible upstream) or victoriametrics (the
// policy is handed down to VictoriaMetrics as extra_filters[]). An
// upstream of the other mode would answer a pushed-down request
// unfiltered, so the name must be exact.
func (v *validator) enforcement(where string, u *Upstream, key, n *yaml.Node, isAM bool) {
	e := field(n, "enforcement")
	if e == nil {
		return
	}
	line := lineOf(e, key, n)
	if isAM {
		v.errorf(line, "%s.enforcement applies to the prometheus upstream only", where)
		return
	}
	if _, err := promapi.ParseEnforcement(u.Enforcement); err != nil || u.Enforcement == "" {
		v.errorf(line, "%s.enforcement: %q is not one of %s, %s", where, u.Enforcement,
			promapi.EnforcementRewrite, promapi.EnforcementVictoriaMetrics)
	}
}
