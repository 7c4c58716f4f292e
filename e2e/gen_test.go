package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

// These tests check the generator and the policies' oracle data without any
// server; they run in -short mode too.

func TestGenerateDeterministic(t *testing.T) {
	sum := func() string {
		h := sha256.New()
		if err := Generate().WriteOpenMetrics(h); err != nil {
			t.Fatal(err)
		}
		return string(h.Sum(nil))
	}
	if sum() != sum() {
		t.Fatal("two runs of Generate wrote different data")
	}
}

func TestGenerateShape(t *testing.T) {
	ds := Generate()
	all := ds.AllSeries()
	if n := len(all); n < 2000 || n > 5000 {
		t.Errorf("generated %d series, want a few thousand", n)
	}
	seen := map[string]bool{}
	withoutName := map[string][]string{} // label set without __name__ -> names
	for _, s := range all {
		k := s.key()
		if seen[k] {
			t.Fatalf("duplicate series %s", k)
		}
		seen[k] = true
		for i := 1; i < len(s.Samples); i++ {
			if s.Samples[i].T <= s.Samples[i-1].T {
				t.Fatalf("series %s: samples not in time order", k)
			}
		}
		if last := s.Samples[len(s.Samples)-1].T; last > BaseTime {
			t.Fatalf("series %s: sample after BaseTime", k)
		}
		rest := make(map[string]string, len(s.Labels))
		for n, v := range s.Labels {
			if n != "__name__" {
				rest[n] = v
			}
		}
		withoutName[labelsKey(rest)] = append(withoutName[labelsKey(rest)], s.Name())
	}
	// The oracle test relies on series that differ only in their name.
	if names := withoutName[`{team="a",x="1"}`]; len(names) != 3 {
		t.Errorf(`series {team="a",x="1"} have names %v, want foo_a, foo_b and foo_c`, names)
	}
}

// TestOracleData checks each policy's oracle: non-empty, a strict subset of
// the data (except allow_all), and for p4 holding both series of a pair that
// differs only in name, each allowed by a different selector.
func TestOracleData(t *testing.T) {
	ds := Generate()
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
			t.Fatalf("p5 oracle holds %s", s.key())
		}
	}
}

func TestWriteOpenMetrics(t *testing.T) {
	var buf bytes.Buffer
	if err := Generate().WriteOpenMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\n# EOF\n")) {
		t.Fatal("output does not end with # EOF")
	}
	// Each family appears once, its samples right after its # TYPE line.
	families := map[string]bool{}
	current := ""
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			current = strings.Fields(f)[0]
			if families[current] {
				t.Fatalf("family %s appears twice", current)
			}
			families[current] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, current) {
			t.Fatalf("sample %q outside its family (current %s)", line, current)
		}
	}
	if len(families) < 10 {
		t.Errorf("only %d families", len(families))
	}
}
