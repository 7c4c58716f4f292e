package promql

import "testing"

// Each Query is a lookup: the first of a text per Enforcer misses, the
// repeats hit; an invalid query misses every time (errors are not cached).
func TestCacheStats(t *testing.T) {
	e := mustEnforcer(t, `{team="a"}`)
	other := mustEnforcer(t, `{team="b"}`)
	for _, tc := range []struct {
		name                 string
		e                    *Enforcer
		query                string
		wantHits, wantMisses uint64
	}{
		{"first time", e, `up{job="cache-stats"}`, 0, 1},
		{"again", e, `up{job="cache-stats"}`, 1, 0},
		{"another policy rewrites anew", other, `up{job="cache-stats"}`, 0, 1},
		{"invalid", e, `up{`, 0, 1},
		{"invalid again", e, `up{`, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h0, m0 := CacheStats()
			_, _ = tc.e.Query(tc.query)
			h1, m1 := CacheStats()
			if h1-h0 != tc.wantHits || m1-m0 != tc.wantMisses {
				t.Errorf("hits +%d misses +%d, want +%d +%d", h1-h0, m1-m0, tc.wantHits, tc.wantMisses)
			}
		})
	}
}
