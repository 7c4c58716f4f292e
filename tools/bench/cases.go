package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// benchCase is one request measured against every target. Direct
// Prometheus and nginx get directPath, the query as promgate sends it
// upstream for the tenant; promgate gets gatePath, the tenant's own query.
type benchCase struct {
	name, desc string
	directPath string
	gatePath   string
	// alertmanager cases go to Alertmanager directly and under
	// /alertmanager through nginx and promgate.
	alertmanager bool
	// filter turns direct's data into what the tenant may see; nil when
	// the rewritten query already selects only the tenant's series.
	filter func(any) any
	// queryBound: the query's own cost dominates (goal: ratio >= 0.95).
	queryBound bool
	// small: promgate's CPU per request must stay under 100µs.
	small bool
	// streamed: promgate streams the answer; its memory must not grow
	// with the answer.
	streamed bool
	// slow: tens of milliseconds of Prometheus' time per request. wrk's
	// connections would finish together, in bursts (the servers share one
	// CPU), and a burst more or less in a run is a large error: slow cases
	// run with few connections and for longer.
	slow bool
}

const tenant = "t0"

func query(path string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return path + "?" + v.Encode()
}

func cases() []*benchCase {
	t := strconv.Itoa(queryTime)
	sel := `{tenant="` + tenant + `"}`
	heavy := `sum by (mode) (rate(node_cpu_seconds_total%s[1h]))`
	rng := `sum by (instance) (rate(http_requests_total%s[5m]))`
	rangeArgs := []string{"start", strconv.Itoa(queryTime - 3600), "end", t, "step", "15"}
	return []*benchCase{
		{
			name: "small", desc: "up, 32 series",
			directPath: query("/api/v1/query", "query", "up"+sel, "time", t),
			gatePath:   query("/api/v1/query", "query", "up", "time", t),
			small:      true, streamed: true,
		},
		{
			name: "heavy", desc: "sum by (mode) (rate(2048 series[1h]))",
			directPath: query("/api/v1/query", "query", fmt.Sprintf(heavy, sel), "time", t),
			gatePath:   query("/api/v1/query", "query", fmt.Sprintf(heavy, ""), "time", t),
			queryBound: true, streamed: true, slow: true,
		},
		{
			name: "range", desc: "1h/15s, 32 series",
			directPath: query("/api/v1/query_range", append([]string{"query", fmt.Sprintf(rng, sel)}, rangeArgs...)...),
			gatePath:   query("/api/v1/query_range", append([]string{"query", fmt.Sprintf(rng, "")}, rangeArgs...)...),
			queryBound: true, streamed: true, slow: true,
		},
		{
			name: "series", desc: "512 series",
			directPath: query("/api/v1/series", "match[]", "http_requests_total"+sel, "start", strconv.Itoa(queryTime-300), "end", t),
			gatePath:   query("/api/v1/series", "match[]", "http_requests_total", "start", strconv.Itoa(queryTime-300), "end", t),
			streamed:   true,
		},
		{
			name: "large", desc: "instant, 2048 series",
			directPath: query("/api/v1/query", "query", "node_cpu_seconds_total"+sel, "time", t),
			gatePath:   query("/api/v1/query", "query", "node_cpu_seconds_total", "time", t),
			streamed:   true, slow: true,
		},
		{
			name: "rules", desc: "/api/v1/rules, filtered",
			directPath: "/api/v1/rules", gatePath: "/api/v1/rules",
			filter: filterRules,
		},
		{
			name: "alerts", desc: "/api/v1/alerts, filtered",
			directPath: "/api/v1/alerts", gatePath: "/api/v1/alerts",
			filter: filterAlerts,
		},
		{
			name: "am-alerts", desc: "Alertmanager /api/v2/alerts",
			directPath: "/api/v2/alerts", gatePath: "/api/v2/alerts",
			alertmanager: true, filter: filterAMAlerts,
		},
	}
}

// Expected answers of the restricted tenant, from direct's.

func labelsOf(x any) map[string]any {
	m, _ := x.(map[string]any)
	l, _ := m["labels"].(map[string]any)
	return l
}

func mine(x any) bool { return labelsOf(x)["tenant"] == tenant }

func keep(xs []any, f func(any) bool) []any {
	out := []any{}
	for _, x := range xs {
		if f(x) {
			out = append(out, x)
		}
	}
	return out
}

func filterAlerts(data any) any {
	d := data.(map[string]any)
	d["alerts"] = keep(d["alerts"].([]any), mine)
	return d
}

func filterAMAlerts(data any) any { return keep(data.([]any), mine) }

func filterRules(data any) any {
	d := data.(map[string]any)
	var groups []any
	for _, g := range d["groups"].([]any) {
		gm := g.(map[string]any)
		var rules []any
		for _, r := range gm["rules"].([]any) {
			rm := r.(map[string]any)
			alerts, hasAlerts := rm["alerts"].([]any)
			own := keep(alerts, mine)
			if !mine(r) && len(own) == 0 {
				continue
			}
			if hasAlerts {
				rm["alerts"] = own
			}
			rules = append(rules, rm)
		}
		if len(rules) > 0 {
			gm["rules"] = rules
			groups = append(groups, gm)
		}
	}
	if groups == nil {
		groups = []any{}
	}
	d["groups"] = groups
	return d
}

// answer is a fetched response.
type answer struct {
	code     int
	encoding string
	body     []byte // decompressed
	wire     int    // bytes on the wire
}

var checkClient = &http.Client{
	Timeout:   60 * time.Second,
	Transport: &http.Transport{DisableCompression: true},
}

func fetch(u string, headers []string, gz bool) (*answer, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	for _, h := range headers {
		k, v, _ := cutHeader(h)
		req.Header.Set(k, v)
	}
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := checkClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	a := &answer{code: resp.StatusCode, encoding: resp.Header.Get("Content-Encoding"), body: raw, wire: len(raw)}
	if a.encoding == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: bad gzip: %v", u, err)
		}
		if a.body, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("%s: bad gzip: %v", u, err)
		}
	} else if a.encoding != "" {
		return nil, fmt.Errorf("%s: unexpected Content-Encoding %q", u, a.encoding)
	}
	return a, nil
}

func cutHeader(h string) (string, string, bool) {
	for i := 0; i < len(h); i++ {
		if h[i] == ':' {
			j := i + 1
			for j < len(h) && h[j] == ' ' {
				j++
			}
			return h[:i], h[j:], true
		}
	}
	return h, "", false
}

// dataOf decodes the data of an answer: the "data" of a successful
// Prometheus API answer, the whole body of an Alertmanager one.
func dataOf(a *answer, alertmanager bool) (any, error) {
	if a.code != http.StatusOK {
		return nil, fmt.Errorf("status %d: %.300s", a.code, a.body)
	}
	var v any
	if err := json.Unmarshal(a.body, &v); err != nil {
		return nil, fmt.Errorf("unreadable JSON: %v", err)
	}
	if alertmanager {
		return v, nil
	}
	m, _ := v.(map[string]any)
	if m["status"] != "success" {
		return nil, fmt.Errorf("status %v: %.300s", m["status"], a.body)
	}
	return m["data"], nil
}

// volatile fields change between two reads of the same state (rule
// evaluation times, Alertmanager's refresh of an alert).
var volatile = map[string]bool{"lastEvaluation": true, "evaluationTime": true, "updatedAt": true, "endsAt": true}

// canonical renders data so that two answers with the same content compare
// equal: volatile fields dropped, arrays of objects (series, alerts, rules)
// sorted, since their order carries no meaning in these answers.
func canonical(v any) string {
	b, _ := json.Marshal(normalize(v))
	return string(b)
}

func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if !volatile[k] {
				out[k] = normalize(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		objects := true
		for i, e := range x {
			out[i] = normalize(e)
			if _, ok := e.(map[string]any); !ok {
				objects = false
			}
		}
		if objects {
			keys := make([]string, len(out))
			for i, e := range out {
				b, _ := json.Marshal(e)
				keys[i] = string(b)
			}
			sort.Sort(byKey{keys, out})
		}
		return out
	}
	return v
}

type byKey struct {
	keys []string
	vals []any
}

func (b byKey) Len() int           { return len(b.keys) }
func (b byKey) Less(i, j int) bool { return b.keys[i] < b.keys[j] }
func (b byKey) Swap(i, j int) {
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
	b.vals[i], b.vals[j] = b.vals[j], b.vals[i]
}
