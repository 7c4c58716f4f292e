package promql

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// BenchmarkSimplify is the simplification of a policy of 64 selectors
// that cannot be simplified, and of one that becomes one regex.
func BenchmarkSimplify(b *testing.B) {
	for _, tc := range []struct {
		name string
		sel  func(i int) string
	}{
		{"kept", func(i int) string { return fmt.Sprintf(`{tenant="t0", instance!="absent-%d"}`, i) }},
		{"merged", func(i int) string { return fmt.Sprintf(`{tenant="t%d", env="prod"}`, i) }},
	} {
		var sels [][]*labels.Matcher
		for i := range 64 {
			ms, err := pql.ParseMetricSelector(tc.sel(i))
			if err != nil {
				b.Fatal(err)
			}
			sels = append(sels, ms)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				simplify(sels)
			}
		})
	}
}
