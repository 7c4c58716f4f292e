package e2e

// UTF-8 metric and label names (Prometheus 3 stores them by default):
// the oracle test's UTF-8 data, policies and corpus section are chosen
// here, and the endpoint-level checks follow.

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/promgate/promgate/internal/testenv"
)

type GenerateOptions = testenv.GenerateOptions

var GenerateWith = testenv.GenerateWith

// The corpus' UTF-8 section: between these lines, expressions on UTF-8
// names, which run only where the data has them.
const (
	utf8Directive    = "@utf8"
	utf8EndDirective = "@end utf8"
)

// utf8Selection keeps the oracle policies and corpus entries that the
// generation can run: all of them on Prometheus 3; on 2.x none that name
// UTF-8 labels, since its data has none (promtool 2.x cannot backfill them)
// and it cannot parse a quoted name.
func utf8Selection(utf8 bool, policies []*testPolicy, corpus []corpusEntry) ([]*testPolicy, []corpusEntry) {
	if utf8 {
		return policies, corpus
	}
	var ps []*testPolicy
	for _, p := range policies {
		if !p.utf8 {
			ps = append(ps, p)
		}
	}
	var cs []corpusEntry
	for _, e := range corpus {
		if !e.utf8 {
			cs = append(cs, e)
		}
	}
	return ps, cs
}

// utf8MetadataCases compare /api/v1/series, /api/v1/labels and label
// values on UTF-8 names, the names in the path both as written and in
// Prometheus' U__ escaping (model.EscapeName with ValueEncodingEscaping).
func utf8MetadataCases(p *testPolicy) []testCase {
	full := url.Values{"start": {strconv.Itoa(StartTime)}, "end": {strconv.Itoa(BaseTime)}}
	with := func(matches ...string) url.Values {
		v := url.Values{"start": full["start"], "end": full["end"]}
		if len(matches) > 0 {
			v["match[]"] = matches
		}
		return v
	}
	describe := func(path string, matches []string) string {
		if len(matches) == 0 {
			return path
		}
		return path + " match[]=" + strings.Join(matches, " match[]=")
	}
	var out []testCase
	for _, m := range [][]string{
		{`{"http.server.duration"}`},
		{`{"service.name"="cart"}`},
		{`{__name__=~"http\\..*"}`, `rpc_server_calls_total`},
		{`{"région"=~".+"}`},
	} {
		out = append(out, testCase{policy: p, kind: kindSeries, desc: "series", query: describe("/api/v1/series", m),
			method: http.MethodGet, path: "/api/v1/series", params: with(m...)})
	}
	for _, m := range [][]string{{`{"service.name"=~".+"}`}, {`{__name__=~"http\\..*", "http.request.method"="GET"}`}} {
		out = append(out, testCase{policy: p, kind: kindNames, desc: "labels", query: describe("/api/v1/labels", m),
			method: http.MethodPost, path: "/api/v1/labels", params: with(m...)})
	}
	for _, name := range []string{"service.name", "U__service_2e_name", "U__r_e9_gion", "http.request.method", "U__http_2e_response_2e_status__code"} {
		for _, m := range [][]string{nil, {`{job="otel"}`}, {`{"http.client.duration"}`}} {
			path := "/api/v1/label/" + name + "/values"
			out = append(out, testCase{policy: p, kind: kindNames, desc: "label values", query: describe(path, m),
				method: http.MethodGet, path: path, params: with(m...)})
		}
	}
	return out
}
