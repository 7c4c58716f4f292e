package config

import (
	"strings"
	"testing"
)

func TestMetricsSection(t *testing.T) {
	const base = "upstreams: {prometheus: {url: 'http://localhost:9090'}}\nauthentication: {trusted_header: {name: X-User, trusted_sources: [127.0.0.1/32]}}\npolicies: [{name: all, subjects: ['*'], allow_all: true}]\n"
	for _, tc := range []struct {
		name, yaml string
		want       Metrics
		err        string
	}{
		{"absent", "", Metrics{MaxUsers: DefaultMaxMetricsUsers}, ""},
		{"per user, default cap", "metrics: {per_user: true}\n", Metrics{PerUser: true, MaxUsers: DefaultMaxMetricsUsers}, ""},
		{"per user, cap", "metrics: {per_user: true, max_users: 5}\n", Metrics{PerUser: true, MaxUsers: 5}, ""},
		{"cap without per user", "metrics: {max_users: 5}\n", Metrics{}, "line 4: metrics.max_users needs metrics.per_user: true"},
		{"negative cap", "metrics: {per_user: true, max_users: -1}\n", Metrics{}, "between 1 and"},
		{"unknown field", "metrics: {per_tenant: true}\n", Metrics{}, "per_tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(base + tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Metrics != tc.want {
				t.Errorf("metrics %+v, want %+v", cfg.Metrics, tc.want)
			}
		})
	}
}
