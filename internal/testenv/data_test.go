package testenv

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// These tests check the generator without any server.

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
		k := s.Key()
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
		withoutName[LabelsKey(rest)] = append(withoutName[LabelsKey(rest)], s.Name())
	}
	// The oracle test relies on series that differ only in their name.
	if names := withoutName[`{team="a",x="1"}`]; len(names) != 3 {
		t.Errorf(`series {team="a",x="1"} have names %v, want foo_a, foo_b and foo_c`, names)
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

// The UTF-8 series come only when asked, after the others, and are written
// in a form Prometheus 3's OpenMetrics parser (promtool's backfill) reads
// back as the same label sets.
func TestGenerateUTF8Names(t *testing.T) {
	var plain, with bytes.Buffer
	if err := Generate().WriteOpenMetrics(&plain); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), `{"`) || strings.Contains(plain.String(), `."`) {
		t.Error("Generate wrote a quoted name: promtool 2.x cannot backfill it")
	}
	ds := GenerateWith(GenerateOptions{UTF8Names: true})
	if err := ds.WriteOpenMetrics(&with); err != nil {
		t.Fatal(err)
	}
	head := strings.TrimSuffix(plain.String(), "# EOF\n")
	if !strings.HasPrefix(with.String(), head) {
		t.Fatal("the UTF-8 series changed the others")
	}
	// The UTF-8 families alone, read back.
	extra := &Dataset{Families: ds.Families[len(Generate().Families):]}
	want := map[string]bool{}
	dotted := 0
	for _, s := range extra.AllSeries() {
		want[s.Key()] = true
		if strings.Contains(s.Name(), ".") {
			dotted++
		}
	}
	if dotted == 0 || len(want) == dotted {
		t.Fatalf("%d series, %d with a dotted name: want both kinds", len(want), dotted)
	}
	var om bytes.Buffer
	if err := extra.WriteOpenMetrics(&om); err != nil {
		t.Fatal(err)
	}
	p := textparse.NewOpenMetricsParser(om.Bytes(), labels.NewSymbolTable())
	got := map[string]bool{}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("OpenMetrics parser: %v", err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		var l labels.Labels
		p.Labels(&l)
		got[LabelsKey(l.Map())] = true
	}
	if len(got) != len(want) {
		t.Errorf("parsed %d series, wrote %d", len(got), len(want))
	}
	for k := range want {
		if !got[k] {
			t.Errorf("series %s not read back", k)
		}
	}
}
