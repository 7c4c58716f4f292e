package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// The rest of a configuration around an upstreams section under test.
const upstreamTestRest = `authentication:
  basic_auth_users:
    alice: $2y$10$CLeidEsEtvvnEm4b3lmxoOVi2QlArzONjPlxQr1HYrXBOGCON0CF2
policies:
  - {name: all, subjects: ["*"], allow_all: true}
`

func TestUpstreamURLs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		upstreams string
		wantURLs  []string
		wantLB    string
		wantFail  time.Duration
		wantErrs  []string
		notWant   []string
	}{
		{
			name:      "one URL",
			upstreams: "  prometheus:\n    url: http://a:9090\n",
			wantURLs:  []string{"http://a:9090"}, wantLB: LeastLoaded, wantFail: DefaultFailTimeout,
		},
		{
			name:      "a list",
			upstreams: "  prometheus:\n    url: [http://a:9090, http://b:9090]\n    load_balancing: first_available\n    fail_timeout: 30s\n",
			wantURLs:  []string{"http://a:9090", "http://b:9090"}, wantLB: FirstAvailable, wantFail: 30 * time.Second,
		},
		{
			name:      "a block list",
			upstreams: "  prometheus:\n    url:\n      - http://a:9090\n      - http://b:9090/prefix\n",
			wantURLs:  []string{"http://a:9090", "http://b:9090/prefix"}, wantLB: LeastLoaded, wantFail: DefaultFailTimeout,
		},
		{
			name:      "each URL checked, at its line; passwords not shown",
			upstreams: "  prometheus:\n    url:\n      - http://a:9090\n      - b:9090\n      - http://user:hunter2@a:9090/\n",
			wantErrs: []string{
				"line 5: upstreams.prometheus.url: must be an absolute http:// or https:// URL",
				"line 6: upstreams.prometheus.url: http://a:9090 is listed twice",
			},
			notWant: []string{"hunter2"},
		},
		{
			name:      "an empty list",
			upstreams: "  prometheus:\n    url: []\n",
			wantErrs:  []string{"line 3: upstreams.prometheus.url is required"},
		},
		{
			name:      "a mapping",
			upstreams: "  prometheus:\n    url: {a: b}\n",
			wantErrs:  []string{"line 3: url must be a URL or a list of URLs"},
		},
		{
			name:      "unknown load balancing, negative fail timeout",
			upstreams: "  prometheus:\n    url: [http://a:9090, http://b:9090]\n    load_balancing: round_robin\n    fail_timeout: -1s\n",
			wantErrs: []string{
				`line 4: upstreams.prometheus.load_balancing: "round_robin" is not one of least_loaded, first_available`,
				"line 5: upstreams.prometheus.fail_timeout must be positive, got -1s",
			},
		},
		{
			name:      "alertmanager cluster",
			upstreams: "  prometheus:\n    url: http://p:9090\n  alertmanager:\n    url: [http://a:9093, http://b:9093]\n",
			wantURLs:  []string{"http://p:9090"}, wantLB: LeastLoaded, wantFail: DefaultFailTimeout,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte("upstreams:\n" + tc.upstreams + upstreamTestRest))
			if len(tc.wantErrs) > 0 {
				if err == nil {
					t.Fatal("accepted")
				}
				for _, w := range tc.wantErrs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				for _, nw := range tc.notWant {
					if strings.Contains(err.Error(), nw) {
						t.Errorf("error %q shows %q", err, nw)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := cfg.Upstreams.Prometheus
			if !slices.Equal(p.URLs, tc.wantURLs) || p.URL != tc.wantURLs[0] || p.LoadBalancing != tc.wantLB || p.FailTimeout != tc.wantFail {
				t.Errorf("got %q (URL %q) %s %s, want %q %s %s", p.URLs, p.URL, p.LoadBalancing, p.FailTimeout, tc.wantURLs, tc.wantLB, tc.wantFail)
			}
			if am := cfg.Upstreams.Alertmanager; am != nil && (len(am.URLs) != 2 || am.URL != "http://a:9093") {
				t.Errorf("alertmanager URLs %q, URL %q", am.URLs, am.URL)
			}
		})
	}
}
