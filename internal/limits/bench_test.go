package limits

import (
	"context"
	"regexp"
	"testing"
	"time"
)

// BenchmarkLimits is the limits' own work on one small query: admission
// (rate, upstream time and concurrency) and every query guard, the reach cached as for a
// dashboard's repeated query. Compare with BenchmarkLimits of package
// server, the whole small-query path.
func BenchmarkLimits(b *testing.B) {
	l := &Limits{Rate: 1e9, Burst: 1e9, MaxConcurrent: 1000, MaxQueueWait: time.Second, UpstreamTime: 1e9,
		MaxRange: 24 * time.Hour, MaxLookback: 30 * 24 * time.Hour, MinStep: time.Second, MaxPoints: 11000, MaxQueryLength: 4096,
		Blocked: []Blocked{{Pattern: regexp.MustCompile(`^(?:count\(\{.*\}\))$`)}}, ID: "bench"}
	reg := NewRegistry(0)
	ctx := context.Background()
	now := time.Now()
	q := Query{Text: `up`, Start: now, End: now, Now: now}
	b.ReportAllocs()
	for b.Loop() {
		release, err := reg.Admit(ctx, "alice", l)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.CheckQuery(q); err != nil {
			b.Fatal(err)
		}
		release()
	}
}
