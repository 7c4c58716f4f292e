package config

import (
	"strings"
	"testing"
	"time"
)

const limitsHead = `upstreams:
  prometheus:
    url: http://localhost:9090
authentication:
  trusted_header:
    name: X-User
    trusted_sources: [127.0.0.1]
`

func TestLimitsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string // after limitsHead, which is 7 lines
		want []string
	}{
		{"negatives", `limits:
  max_concurrent: -1
  rate: -2
  max_queue_wait: 2m
  max_points: -5
  max_series: -1
  upstream_time: -0.5
policies:
  - name: p
    subjects: [user:a]
    allow_all: true
`, []string{
			`line 14: limits.upstream_time must be a non-negative number of seconds of upstream time per second`,
			`line 9: limits.max_concurrent must not be negative`,
			`line 10: limits.rate must be a non-negative number`,
			`line 11: limits.max_queue_wait must be at most 1m`,
			`line 12: limits.max_points must not be negative`,
			`line 13: limits.max_series must not be negative`,
		}},
		{"policy limits", `policies:
  - name: p
    subjects: [user:a]
    allow_all: true
    limits:
      burst: 5
      max_queue_wait: 5m
      blocked_queries:
        - pattern: "up("
        - reason: no pattern
      upstream_time_burst: 10s
`, []string{
			`line 13: policy "p": limits.burst needs rate`,
			`line 14: policy "p": limits.max_queue_wait must be at most 1m`,
			`line 16: policy "p": limits.blocked_queries #1: invalid pattern "up(": error parsing regexp: missing closing ): ` + "`up(`",
			`line 17: policy "p": limits.blocked_queries #2: pattern is required`,
			`line 18: policy "p": limits.upstream_time_burst needs upstream_time`,
		}},
		{"unknown key", `limits:
  max_rate: 5
`, []string{`line 9: unknown field "max_rate" in Limits`}},
		{"wrong type", `limits:
  max_range: forever
`, []string{`line 9: "forever" is not a duration`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(limitsHead + tc.body))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLimitsFor(t *testing.T) {
	cfg, err := Parse([]byte(limitsHead + `limits:
  rate: 10
  max_concurrent: 4
  max_range: 30d
  max_series: 500
  upstream_time: 0.25
  blocked_queries:
    - pattern: 'count\(\{.*\}\)'
      reason: too expensive
policies:
  - name: team-a
    subjects: [user:a, user:ab]
    selectors: ['{team="a"}']
    limits:
      rate: 1
      burst: 2
      max_lookback: 1w
      upstream_time: 0.05
      upstream_time_burst: 3s
  - name: team-b
    subjects: [user:b, user:ab]
    selectors: ['{team="b"}']
    limits:
      rate: 100
      max_concurrent: 0
      max_series: 20
      blocked_queries: []
  - name: admins
    subjects: [user:root]
    allow_all: true
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rules                []string
		rate                 float64
		burst, maxConcurrent int
		maxRange, lookback   time.Duration
		blocked              int
		maxSeries            int
		upstreamTime         float64
		timeBurst            time.Duration
	}{
		{[]string{"team-a"}, 1, 2, 4, 30 * 24 * time.Hour, 7 * 24 * time.Hour, 1, 500, 0.05, 3 * time.Second},
		// The default burst: a minute of upstream_time.
		{[]string{"team-b"}, 100, 0, 0, 30 * 24 * time.Hour, 0, 0, 20, 0.25, 15 * time.Second},
		// The first policy that sets a key wins.
		{[]string{"team-a", "team-b"}, 1, 2, 0, 30 * 24 * time.Hour, 7 * 24 * time.Hour, 0, 20, 0.05, 3 * time.Second},
		{[]string{"admins"}, 10, 0, 4, 30 * 24 * time.Hour, 0, 1, 500, 0.25, 15 * time.Second},
	} {
		l := cfg.LimitsFor(tc.rules)
		if l == nil || l.Rate != tc.rate || l.Burst != tc.burst || l.MaxConcurrent != tc.maxConcurrent || l.MaxSeries != tc.maxSeries ||
			l.UpstreamTime != tc.upstreamTime || l.TimeBurst() != tc.timeBurst ||
			l.MaxRange != tc.maxRange || l.MaxLookback != tc.lookback || len(l.Blocked) != tc.blocked || l.MaxQueueWait != DefaultMaxQueueWait {
			t.Errorf("%v: got %+v", tc.rules, l)
		}
	}
	if got := cfg.LimitsFor([]string{"team-a"}); !got.Blocked[0].Pattern.MatchString(`count({job="x"})`) || got.Blocked[0].Pattern.MatchString(`sum(count({job="x"}))`) {
		t.Errorf("blocked pattern must match the whole query")
	}
	if a, b := cfg.LimitsFor([]string{"team-a"}), cfg.LimitsFor([]string{"team-b"}); a.ID == b.ID {
		t.Errorf("different limits share the ID %q", a.ID)
	}

	none, err := Parse([]byte(limitsHead + `policies:
  - name: p
    subjects: [user:a]
    allow_all: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if l := none.LimitsFor([]string{"p"}); l != nil {
		t.Errorf("no limits configured: got %+v", l)
	}
}
