package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// answerKind says how the data of a successful answer is compared.
type answerKind int

const (
	kindQuery  answerKind = iota // /api/v1/query, /api/v1/query_range
	kindSeries                   // /api/v1/series: a set of label sets
	kindNames                    // /api/v1/labels, /api/v1/label/NAME/values: a set of strings
)

// envelope is Prometheus' JSON answer.
type envelope struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// compareAnswers returns "" when the gateway's answer equals the oracle's,
// or a description of the first difference. Statuses must be equal; errors
// are equal when their errorType and message are (two errors are otherwise
// indistinguishable, and an error answer hides whatever the data would have
// shown); successful data is compared order-insensitively with float
// tolerance. Whether an error is expected at all is the caller's decision
// (see errorOutcome).
func compareAnswers(kind answerKind, oracle, gateway response) string {
	if oracle.err != nil {
		return "oracle request failed: " + oracle.err.Error()
	}
	if gateway.err != nil {
		return "gateway request failed: " + gateway.err.Error()
	}
	if oracle.code != gateway.code {
		return fmt.Sprintf("HTTP status: oracle %d, gateway %d", oracle.code, gateway.code)
	}
	var o, g envelope
	if err := json.Unmarshal(oracle.body, &o); err != nil {
		return "oracle answer is not JSON: " + err.Error()
	}
	if err := json.Unmarshal(gateway.body, &g); err != nil {
		return "gateway answer is not JSON: " + err.Error()
	}
	if o.Status != g.Status {
		return fmt.Sprintf("status: oracle %q, gateway %q", o.Status, g.Status)
	}
	if o.Status != "success" {
		if o.ErrorType != g.ErrorType {
			return fmt.Sprintf("errorType: oracle %q, gateway %q", o.ErrorType, g.ErrorType)
		}
		if canonicalError(o.Error) != canonicalError(g.Error) {
			return fmt.Sprintf("error: oracle %q, gateway %q", o.Error, g.Error)
		}
		return ""
	}
	switch kind {
	case kindQuery:
		return compareQueryData(o.Data, g.Data)
	case kindSeries:
		return compareSeriesData(o.Data, g.Data)
	default:
		return compareNamesData(o.Data, g.Data)
	}
}

// errorOutcome checks an answer against what the corpus declares: outside
// the errors section the oracle must succeed, since two equal errors prove
// nothing about filtering. Inside it an error is allowed (and compared by
// compareAnswers, message included); that each such expression fails at
// least once is checked over all outcomes (checkDeclaredErrors). It returns
// "" when the answer is allowed, or a description.
func errorOutcome(r response, errorAllowed bool) string {
	if r.err != nil {
		return "request failed: " + r.err.Error()
	}
	var e envelope
	if err := json.Unmarshal(r.body, &e); err != nil {
		return "answer is not JSON: " + err.Error()
	}
	if e.Status != "success" && !errorAllowed {
		return fmt.Sprintf("answered %d %s: %s, outside the corpus' errors section (rewrite the expression so that it returns data, or move it there)", r.code, e.ErrorType, e.Error)
	}
	return ""
}

// failed reports whether an answer is an error envelope.
func failed(r response) bool {
	var e envelope
	return r.err == nil && json.Unmarshal(r.body, &e) == nil && e.Status == "error"
}

// resultCount is the number of series, label sets or names of a successful
// answer; 0 for an error, a scalar or a string.
func resultCount(kind answerKind, r response) int {
	var e envelope
	if r.err != nil || json.Unmarshal(r.body, &e) != nil || e.Status != "success" {
		return 0
	}
	if kind != kindQuery {
		var list []json.RawMessage
		_ = json.Unmarshal(e.Data, &list)
		return len(list)
	}
	var d struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	}
	if json.Unmarshal(e.Data, &d) != nil || (d.ResultType != "vector" && d.ResultType != "matrix") {
		return 0
	}
	return len(d.Result)
}

// queryData is the data of a query answer; Result depends on ResultType.
type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// point is one [timestamp, "value"] pair of a query answer, or one
// [timestamp, {histogram}] pair (H set, V empty).
type point struct {
	T float64
	V string
	H *histogramValue
}

// histogramValue is a native histogram sample as the HTTP API writes it:
// count, sum, and its buckets as [boundary rule, lower, upper, count].
type histogramValue struct {
	Count   string               `json:"count"`
	Sum     string               `json:"sum"`
	Buckets [][4]json.RawMessage `json:"buckets"`
}

func (p *point) UnmarshalJSON(b []byte) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[0], &p.T); err != nil {
		return err
	}
	if v := strings.TrimSpace(string(raw[1])); strings.HasPrefix(v, "{") {
		p.H = &histogramValue{}
		return json.Unmarshal(raw[1], p.H)
	}
	return json.Unmarshal(raw[1], &p.V)
}

func (p point) String() string {
	if p.H == nil {
		return p.V
	}
	b, _ := json.Marshal(p.H)
	return string(b)
}

// samePoint compares two points' values: floats as sameValue does, or
// histograms: the same buckets (rule and bounds exactly), counts and sum
// as sameValue compares floats.
func samePoint(a, b point) bool {
	if (a.H == nil) != (b.H == nil) {
		return false
	}
	if a.H == nil {
		return sameValue(a.V, b.V)
	}
	x, y := a.H, b.H
	if !sameValue(x.Count, y.Count) || !sameValue(x.Sum, y.Sum) || len(x.Buckets) != len(y.Buckets) {
		return false
	}
	for i := range x.Buckets {
		for j := range 3 {
			if string(x.Buckets[i][j]) != string(y.Buckets[i][j]) {
				return false
			}
		}
		var cx, cy string
		if json.Unmarshal(x.Buckets[i][3], &cx) != nil || json.Unmarshal(y.Buckets[i][3], &cy) != nil || !sameValue(cx, cy) {
			return false
		}
	}
	return true
}

// normSeries is a vector element or matrix row, keyed by its label set.
type normSeries struct {
	key    string
	points []point
}

func compareQueryData(oRaw, gRaw json.RawMessage) string {
	var o, g queryData
	if err := json.Unmarshal(oRaw, &o); err != nil {
		return "oracle data: " + err.Error()
	}
	if err := json.Unmarshal(gRaw, &g); err != nil {
		return "gateway data: " + err.Error()
	}
	if o.ResultType != g.ResultType {
		return fmt.Sprintf("resultType: oracle %q, gateway %q", o.ResultType, g.ResultType)
	}
	oSeries, err := normalizeResult(o.ResultType, o.Result)
	if err != nil {
		return "oracle result: " + err.Error()
	}
	gSeries, err := normalizeResult(g.ResultType, g.Result)
	if err != nil {
		return "gateway result: " + err.Error()
	}
	exactValues := o.ResultType == "string"
	if len(oSeries) != len(gSeries) {
		return fmt.Sprintf("number of series: oracle %d, gateway %d%s",
			len(oSeries), len(gSeries), firstMissing(oSeries, gSeries))
	}
	for i := range oSeries {
		key := oSeries[i].key
		if key != gSeries[i].key {
			return fmt.Sprintf("series differ: oracle has %s, gateway has %s", key, gSeries[i].key)
		}
		op, gp := oSeries[i].points, gSeries[i].points
		if len(op) != len(gp) {
			return fmt.Sprintf("series %s: oracle %d points, gateway %d", key, len(op), len(gp))
		}
		for j := range op {
			if op[j].T != gp[j].T {
				return fmt.Sprintf("series %s point %d: oracle time %v, gateway %v", key, j, op[j].T, gp[j].T)
			}
			equal := samePoint(op[j], gp[j])
			if exactValues {
				equal = op[j].V == gp[j].V
			}
			if !equal {
				return fmt.Sprintf("series %s at %v: oracle %s, gateway %s", key, op[j].T, op[j], gp[j])
			}
		}
	}
	return ""
}

// firstMissing names one series that only one side has.
func firstMissing(o, g []normSeries) string {
	in := func(list []normSeries, key string) bool {
		i := sort.Search(len(list), func(i int) bool { return list[i].key >= key })
		return i < len(list) && list[i].key == key
	}
	for _, s := range o {
		if !in(g, s.key) {
			return "; only oracle has " + s.key
		}
	}
	for _, s := range g {
		if !in(o, s.key) {
			return "; only gateway has " + s.key
		}
	}
	return ""
}

// normalizeResult turns any result type into series sorted by label set;
// scalars and strings become one series with an empty key.
func normalizeResult(resultType string, raw json.RawMessage) ([]normSeries, error) {
	var out []normSeries
	switch resultType {
	case "vector":
		// A sample is a float ("value") or a native histogram
		// ("histogram"), never both.
		var v []struct {
			Metric    map[string]string `json:"metric"`
			Value     *point            `json:"value"`
			Histogram *point            `json:"histogram"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		for _, s := range v {
			if (s.Value == nil) == (s.Histogram == nil) {
				return nil, fmt.Errorf("vector sample %s has %s", labelsKey(s.Metric), map[bool]string{true: "neither value nor histogram", false: "both value and histogram"}[s.Value == nil])
			}
			p := s.Value
			if p == nil {
				p = s.Histogram
				if p.H == nil {
					return nil, fmt.Errorf("vector sample %s: histogram without a histogram", labelsKey(s.Metric))
				}
			}
			out = append(out, normSeries{key: labelsKey(s.Metric), points: []point{*p}})
		}
	case "matrix":
		// A series' floats ("values") and native histograms
		// ("histograms") are merged in time order.
		var m []struct {
			Metric     map[string]string `json:"metric"`
			Values     []point           `json:"values"`
			Histograms []point           `json:"histograms"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		for _, s := range m {
			for _, h := range s.Histograms {
				if h.H == nil {
					return nil, fmt.Errorf("matrix series %s: histograms without a histogram", labelsKey(s.Metric))
				}
			}
			points := append(s.Values, s.Histograms...)
			sort.SliceStable(points, func(i, j int) bool { return points[i].T < points[j].T })
			out = append(out, normSeries{key: labelsKey(s.Metric), points: points})
		}
	case "scalar", "string":
		var p point
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		out = append(out, normSeries{points: []point{p}})
	default:
		return nil, fmt.Errorf("unknown resultType %q", resultType)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, nil
}

// sameValue compares two sample values as Prometheus renders them: NaN
// equals NaN, infinities must have the same sign, and finite values may
// differ by a relative 1e-9. The relative tolerance absorbs the rounding of
// aggregations (avg, stddev, …) whose result depends on the order in which
// series are visited, which differs between a shared and an oracle TSDB; the
// absolute floor of 1e-12 does the same for results that should be 0.
func sameValue(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	switch {
	case math.IsNaN(x) || math.IsNaN(y):
		return math.IsNaN(x) && math.IsNaN(y)
	case math.IsInf(x, 0) || math.IsInf(y, 0):
		return x == y
	}
	diff := math.Abs(x - y)
	return diff <= 1e-12 || diff <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
}

func compareSeriesData(oRaw, gRaw json.RawMessage) string {
	var o, g []map[string]string
	if err := json.Unmarshal(oRaw, &o); err != nil {
		return "oracle data: " + err.Error()
	}
	if err := json.Unmarshal(gRaw, &g); err != nil {
		return "gateway data: " + err.Error()
	}
	keys := func(list []map[string]string) []string {
		out := make([]string, len(list))
		for i, m := range list {
			out[i] = labelsKey(m)
		}
		sort.Strings(out)
		return out
	}
	return compareStringSets("series", keys(o), keys(g))
}

func compareNamesData(oRaw, gRaw json.RawMessage) string {
	var o, g []string
	if err := json.Unmarshal(oRaw, &o); err != nil {
		return "oracle data: " + err.Error()
	}
	if err := json.Unmarshal(gRaw, &g); err != nil {
		return "gateway data: " + err.Error()
	}
	sort.Strings(o)
	sort.Strings(g)
	return compareStringSets("names", o, g)
}

// compareStringSets compares sorted lists and names the first extra or
// missing element.
func compareStringSets(what string, o, g []string) string {
	if slices.Equal(o, g) {
		return ""
	}
	var onlyO, onlyG []string
	for _, s := range o {
		if _, ok := slices.BinarySearch(g, s); !ok {
			onlyO = append(onlyO, s)
		}
	}
	for _, s := range g {
		if _, ok := slices.BinarySearch(o, s); !ok {
			onlyG = append(onlyG, s)
		}
	}
	return fmt.Sprintf("%s: oracle %d, gateway %d; only oracle: %s; only gateway: %s",
		what, len(o), len(g), truncate(strings.Join(onlyO, " "), 300), truncate(strings.Join(onlyG, " "), 300))
}

// truncate shortens s to about n bytes for failure messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("…(%d bytes)", len(s))
}

// duplicateSeries is the list of series in Prometheus' many-to-many and
// duplicate-labelset errors, which it prints in map order.
var duplicateSeries = regexp.MustCompile(`\[(\{[^\[\]]*\})\]`)

// canonicalError sorts the series listed in an error message, so that two
// errors naming the same series in another order compare equal.
func canonicalError(msg string) string {
	return duplicateSeries.ReplaceAllStringFunc(msg, func(list string) string {
		items := strings.Split(list[2:len(list)-2], "}, {")
		sort.Strings(items)
		return "[{" + strings.Join(items, "}, {") + "}]"
	})
}
