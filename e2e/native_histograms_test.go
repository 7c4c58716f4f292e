package e2e

// Native histograms (Prometheus 3): the oracle test's native histogram
// data and corpus section are chosen here, and the paths that carry them
// outside PromQL answers follow: remote read (sampled and streamed
// chunks) and federate (the protobuf exposition format).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/promgate/promgate/internal/testenv"
)

// The corpus' native histogram section: between these lines, expressions
// on the native histogram series, which the data has on Prometheus 3 only
// (they are loaded by remote write, which 2.x takes only with a feature
// flag).
const (
	nativeDirective    = "@native_histograms"
	nativeEndDirective = "@end native_histograms"
)

// nativeSelection keeps the corpus entries the generation can run: all on
// Prometheus 3, none of the native histogram section on 2.x.
func nativeSelection(native bool, corpus []corpusEntry) []corpusEntry {
	if native {
		return corpus
	}
	var out []corpusEntry
	for _, e := range corpus {
		if !e.native {
			out = append(out, e)
		}
	}
	return out
}

// nativeFloor is what a policy's answers to the native histogram section
// must show, as floor for the whole corpus: answers with data, answers
// holding native histogram samples (not only the floats functions make of
// them), and answers the shared Prometheus gives otherwise. The figures
// are today's counts less about 10 %.
type nativeFloor struct {
	nonEmpty, histograms, differing int
}

// checkNativeFloor fails when the policy's answers to the native
// histogram section prove less than its nativeFloor.
func checkNativeFloor(t *testing.T, p *testPolicy, outcomes []outcome) {
	var nonEmpty, histograms, differing, total int
	for _, o := range outcomes {
		if o.c.policy != p || !o.c.native {
			continue
		}
		total++
		if o.nonEmpty {
			nonEmpty++
		}
		if o.histograms {
			histograms++
		}
		if o.differs {
			differing++
		}
	}
	f := p.nativeFloor
	t.Logf("policy %s, native histograms: %d of %d answers hold data (floor %d), %d hold histograms (floor %d), %d differ from the shared Prometheus' (floor %d)",
		p.id, nonEmpty, total, f.nonEmpty, histograms, f.histograms, differing, f.differing)
	if nonEmpty < f.nonEmpty || histograms < f.histograms {
		t.Errorf("policy %s: the native histogram section's answers hold data %d times (floor %d), histograms %d times (floor %d): the corpus or the data lost what it proves",
			p.id, nonEmpty, f.nonEmpty, histograms, f.histograms)
	}
	if differing < f.differing {
		t.Errorf("policy %s: only %d native histogram answers differ from the shared Prometheus', below the floor of %d", p.id, differing, f.differing)
	}
}

// holdsHistograms reports whether a successful query answer holds a
// native histogram sample.
func holdsHistograms(kind answerKind, r response) bool {
	var e envelope
	if kind != kindQuery || r.err != nil || json.Unmarshal(r.body, &e) != nil || e.Status != "success" {
		return false
	}
	var d queryData
	if json.Unmarshal(e.Data, &d) != nil {
		return false
	}
	series, err := normalizeResult(d.ResultType, d.Result)
	if err != nil {
		return false
	}
	for _, s := range series {
		for _, p := range s.points {
			if p.H != nil {
				return true
			}
		}
	}
	return false
}

// checkNativeSamples asserts that a Prometheus holds every native
// histogram sample of ds: as many per series as generated.
func checkNativeSamples(e endpoint, ds *testenv.Dataset) error {
	names := map[string]bool{}
	var want int
	for _, s := range ds.NativeSeries() {
		names[s.Name()] = true
		want += len(s.Histograms)
	}
	if want == 0 {
		return nil
	}
	var quoted []string
	for n := range names {
		quoted = append(quoted, regexpQuote(n))
	}
	// The range reaches back to the first sample: (t-2h-1m, t].
	q := fmt.Sprintf(`sum(count_over_time({__name__=~%q}[%ds]))`, strings.Join(quoted, "|"), testenv.Span+60)
	r := e.call(context.Background(), http.MethodGet, "/api/v1/query", url.Values{"query": {q}, "time": {strconv.Itoa(testenv.BaseTime)}})
	if r.err != nil {
		return r.err
	}
	var env struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value point `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil || env.Status != "success" || len(env.Data.Result) != 1 {
		return fmt.Errorf("native histogram check: %d %s", r.code, truncate(string(r.body), 300))
	}
	if got := env.Data.Result[0].Value.V; got != strconv.Itoa(want) {
		return fmt.Errorf("holds %s native histogram samples, generated %d", got, want)
	}
	return nil
}

// regexpQuote escapes the dots of a metric name for a PromQL regex.
func regexpQuote(s string) string { return strings.ReplaceAll(s, ".", `\.`) }

// TestCompareHistograms checks the oracle's comparison of native
// histogram samples without any server: a histogram differing in a
// bucket, a bound, its count or its kind is a difference.
func TestCompareHistograms(t *testing.T) {
	h := func(count, sum string, buckets ...string) string {
		var bs []string
		for _, b := range buckets {
			bs = append(bs, "["+b+"]")
		}
		return fmt.Sprintf(`{"count":%q,"sum":%q,"buckets":[%s]}`, count, sum, strings.Join(bs, ","))
	}
	base := h("6", "1.5", `0,"0.5","1","2"`, `0,"1","2","4"`)
	vector := func(sample string) json.RawMessage {
		return json.RawMessage(`{"resultType":"vector","result":[{"metric":{"a":"1"},` + sample + `}]}`)
	}
	matrix := func(values, histograms string) json.RawMessage {
		return json.RawMessage(`{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[` + values + `],"histograms":[` + histograms + `]}]}`)
	}
	for _, c := range []struct {
		name  string
		o, g  json.RawMessage
		equal bool
	}{
		{"same histogram", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + base + `]`), true},
		{"sum within tolerance", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("6", "1.5000000000001", `0,"0.5","1","2"`, `0,"1","2","4"`) + `]`), true},
		{"bucket count", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("6", "1.5", `0,"0.5","1","2"`, `0,"1","2","5"`) + `]`), false},
		{"bucket bound", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("6", "1.5", `0,"0.5","1","2"`, `0,"1","2.5","4"`) + `]`), false},
		{"boundary rule", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("6", "1.5", `3,"0.5","1","2"`, `0,"1","2","4"`) + `]`), false},
		{"a bucket less", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("6", "1.5", `0,"0.5","1","2"`) + `]`), false},
		{"count", vector(`"histogram":[10,` + base + `]`), vector(`"histogram":[10,` + h("7", "1.5", `0,"0.5","1","2"`, `0,"1","2","4"`) + `]`), false},
		{"histogram against float", vector(`"histogram":[10,` + base + `]`), vector(`"value":[10,"6"]`), false},
		{"matrix same", matrix(`[1,"2"]`, `[2,`+base+`]`), matrix(`[1,"2"]`, `[2,`+base+`]`), true},
		{"matrix histogram differs", matrix(``, `[2,`+base+`]`), matrix(``, `[2,`+h("6", "2", `0,"0.5","1","2"`, `0,"1","2","4"`)+`]`), false},
		{"matrix histogram missing", matrix(`[1,"2"]`, `[2,`+base+`]`), matrix(`[1,"2"]`, ``), false},
		{"matrix histogram time", matrix(``, `[2,`+base+`]`), matrix(``, `[3,`+base+`]`), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			diff := compareQueryData(c.o, c.g)
			if (diff == "") != c.equal {
				t.Errorf("equal %v, diff %q", c.equal, diff)
			}
		})
	}
	// An answer of histograms is told from one without.
	if !holdsHistograms(kindQuery, response{code: 200, body: []byte(`{"status":"success","data":` + string(vector(`"histogram":[10,`+base+`]`)) + `}`)}) ||
		holdsHistograms(kindQuery, response{code: 200, body: []byte(`{"status":"success","data":` + string(vector(`"value":[10,"1"]`)) + `}`)}) {
		t.Error("holdsHistograms")
	}
}
