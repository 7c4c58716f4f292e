package e2e

import "testing"

// TestOracleData checks each policy's oracle without any server (it runs in
// -short mode too): non-empty, a strict subset of the data (except
// allow_all), and for p4 holding both series of a pair that differs only in
// name, each allowed by a different selector.
func TestOracleData(t *testing.T) {
	ds := GenerateWith(GenerateOptions{UTF8Names: true, NativeHistograms: true}) // as on Prometheus 3, for the UTF-8 policies
	total := len(ds.AllSeries())
	for _, p := range testPolicies {
		sels, err := p.oracleSelectors()
		if err != nil {
			t.Fatalf("%s: %v", p.id, err)
		}
		n := len(ds.Filter(sels).AllSeries())
		t.Logf("%s: %d of %d series", p.id, n, total)
		switch {
		case p.allowAll && n != total:
			t.Errorf("%s: allow_all oracle has %d of %d series", p.id, n, total)
		case !p.allowAll && (n == 0 || n == total):
			t.Errorf("%s: oracle has %d of %d series, want a non-trivial subset", p.id, n, total)
		}
	}
	sels, _ := ParseSelectors(`{__name__=~"foo_a|foo_c", team="a"}`, `{__name__=~"foo_b|http_requests_total", team=~"a|b"}`)
	a := map[string]string{"__name__": "foo_a", "team": "a", "x": "1"}
	b := map[string]string{"__name__": "foo_b", "team": "a", "x": "1"}
	if !sels[0].Matches(a) || sels[1].Matches(a) || sels[0].Matches(b) || !sels[1].Matches(b) {
		t.Error("p4's selectors no longer split a name-only pair between them")
	}
	// The templated selector is exact: ns-alice, not ns-alice-dev.
	var p5 *testPolicy
	for _, p := range testPolicies {
		if p.id == "p5" {
			p5 = p
		}
	}
	p5sels, err := p5.oracleSelectors()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ds.Filter(p5sels).AllSeries() {
		if s.Labels["namespace"] != "ns-alice" {
			t.Fatalf("p5 oracle holds %s", s.Key())
		}
	}
}
