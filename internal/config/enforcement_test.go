package config

import (
	"strings"
	"testing"
)

func TestEnforcement(t *testing.T) {
	const rest = `
authentication:
  basic_auth_users:
    alice: $2y$10$EYxs8IOG46m9CtpB/XlPxO1ei7E4BjAen0SUv6di7mD4keR/8JO6m
policies:
  - name: a
    subjects: ["user:alice"]
    selectors: ['{team="a"}']
`
	for _, tc := range []struct {
		name, upstreams string
		want            string // the value loaded
		wantErr         string // substring of the error
	}{
		{name: "default", upstreams: "upstreams: {prometheus: {url: http://p:8428}}", want: ""},
		{name: "rewrite", upstreams: "upstreams: {prometheus: {url: http://p:8428, enforcement: rewrite}}", want: "rewrite"},
		{name: "victoriametrics", upstreams: "upstreams: {prometheus: {url: http://p:8428, enforcement: victoriametrics}}", want: "victoriametrics"},
		{name: "unknown", upstreams: "upstreams: {prometheus: {url: http://p:8428, enforcement: VictoriaMetrics}}",
			wantErr: `line 1: upstreams.prometheus.enforcement: "VictoriaMetrics" is not one of rewrite, victoriametrics`},
		{name: "empty", upstreams: "upstreams: {prometheus: {url: http://p:8428, enforcement: ''}}",
			wantErr: `upstreams.prometheus.enforcement: "" is not one of rewrite, victoriametrics`},
		{name: "alertmanager", upstreams: "upstreams: {prometheus: {url: http://p:8428}, alertmanager: {url: http://a:9093, enforcement: rewrite}}",
			wantErr: `upstreams.alertmanager.enforcement applies to the prometheus upstream only`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.upstreams + rest))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Upstreams.Prometheus.Enforcement; got != tc.want {
				t.Errorf("enforcement = %q, want %q", got, tc.want)
			}
		})
	}
}
