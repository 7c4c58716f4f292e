package prometheus

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/jsonscan"
	"github.com/promgate/promgate/internal/limits"
)

// limitSince is the first Prometheus version that reads the limit
// parameter on path: 2.51 for series, label names and label values, 3.2
// for queries. ok false: path has no limit.
func limitSince(path string) (major, minor int, ok bool) {
	switch {
	case path == "/api/v1/series" || path == "/api/v1/labels" ||
		strings.HasPrefix(path, "/api/v1/label/") && strings.HasSuffix(path, "/values"):
		return 2, 51, true
	case path == "/api/v1/query" || path == "/api/v1/query_range":
		return 3, 2, true
	}
	return 0, 0, false
}

// seriesLimit applies the identity's max_series to a request for path
// whose parameters are vs: the smaller of it and the client's limit. It is
// sent upstream as limit where the upstream reads it (pushed); otherwise
// limit is dropped and promgate truncates the answer to n itself. n is 0
// when nothing is limited.
func (a *API) seriesLimit(r *http.Request, path string, vs url.Values) (n int, pushed bool, err error) {
	l := limits.FromContext(r.Context())
	if l == nil || l.MaxSeries == 0 {
		return 0, false, nil
	}
	major, minor, ok := limitSince(path)
	if !ok {
		return 0, false, nil
	}
	client := 0
	if s := vs.Get("limit"); s != "" {
		c, err := strconv.Atoi(s)
		if err != nil || c < 0 {
			return 0, false, apierror.New(apierror.BadData, "invalid parameter \"limit\": %q is not a non-negative integer", s)
		}
		client = c
	}
	n = l.SeriesLimit(client)
	if a.caps.atLeast(a, r, major, minor) {
		vs.Set("limit", strconv.Itoa(n))
		return n, true, nil
	}
	vs.Del("limit")
	return n, false, nil
}

// truncationWarning is Prometheus' own, so that a client reads the same
// answer from any upstream version.
const truncationWarning = "results truncated due to limit"

// serveTruncated answers a request to an upstream that does not read
// limit: its answer cut to the first n series (query results) or items
// (series, names, values), with Prometheus' warning when cut. Failures
// pass as the upstream gave them.
func (a *API) serveTruncated(w http.ResponseWriter, r *http.Request, path string, vs url.Values, n int) error {
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	f, err := a.fetch(r.WithContext(ctx), path, vs)
	if err != nil {
		return err
	}
	defer f.release()
	data, failure, err := envelopeData(f.raw)
	if err != nil {
		return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", f.code)
	}
	if failure != nil {
		writeJSON(w, r, f.code, f.raw)
		return nil
	}
	// Most answers are under the limit: counted without decoding, they
	// pass as they came.
	if count, err := entries(path, data); err == nil && count <= n {
		writeJSON(w, r, f.code, f.raw)
		return nil
	}
	var ar apiResponse
	if err := json.Unmarshal(f.raw, &ar); err != nil {
		return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", f.code)
	}
	data, cut, err := truncateData(path, ar.Data, n)
	if err != nil {
		return apierror.New(apierror.Upstream, "unexpected upstream answer on %s: %v", path, err)
	}
	if !cut {
		writeJSON(w, r, f.code, f.raw)
		return nil
	}
	ar.Data = data
	ar.Warnings = dedupe(append(ar.Warnings, truncationWarning))
	out, _ := json.Marshal(ar)
	writeJSON(w, r, f.code, out)
	return nil
}

// entries counts the entries of an answer's data on path without
// decoding them: the elements of the array, or a query's series (-1: a
// scalar or string, one value).
func entries(path string, data []byte) (int, error) {
	count := func(i int) (n, end int, err error) {
		end, err = jsonscan.WalkArray(data, i, func(vs int) (int, error) {
			n++
			return jsonscan.SkipValue(data, vs)
		})
		return n, end, err
	}
	i := jsonscan.SkipSpace(data, 0)
	if path != "/api/v1/query" && path != "/api/v1/query_range" {
		if i >= len(data) || data[i] != '[' {
			return 0, jsonscan.SyntaxAt(data, i, "looking for an array")
		}
		n, _, err := count(i)
		return n, err
	}
	if i >= len(data) || data[i] != '{' {
		return 0, jsonscan.SyntaxAt(data, i, "looking for an object")
	}
	n, typ := 0, ""
	_, err := jsonscan.WalkObject(data, i, func(ks, ke int, esc bool, vs int) (int, error) {
		switch {
		case jsonscan.KeyIs(data, ks, ke, esc, "resultType") && data[vs] == '"':
			s, end, err := jsonscan.StringAt(data, vs)
			typ = s
			return end, err
		case jsonscan.KeyIs(data, ks, ke, esc, "result") && data[vs] == '[':
			c, end, err := count(vs)
			n = c
			return end, err
		}
		return jsonscan.SkipValue(data, vs)
	})
	if typ != "vector" && typ != "matrix" {
		return -1, err
	}
	return n, err
}

// queryData is the data of a query answer, its result kept as sent.
type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// truncateData cuts the data of an answer on path to n entries; cut
// reports whether there were more. Scalars and strings are one value.
func truncateData(path string, data json.RawMessage, n int) (_ json.RawMessage, cut bool, err error) {
	if path != "/api/v1/query" && path != "/api/v1/query_range" {
		return truncateArray(data, n)
	}
	var qd queryData
	if err := json.Unmarshal(data, &qd); err != nil {
		return nil, false, err
	}
	if qd.ResultType != "vector" && qd.ResultType != "matrix" {
		return data, false, nil
	}
	if qd.Result, cut, err = truncateArray(qd.Result, n); err != nil || !cut {
		return data, false, err
	}
	out, err := json.Marshal(qd)
	return out, true, err
}

func truncateArray(data json.RawMessage, n int) (json.RawMessage, bool, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, false, err
	}
	if len(items) <= n {
		return data, false, nil
	}
	out, err := json.Marshal(items[:n])
	return out, true, err
}
