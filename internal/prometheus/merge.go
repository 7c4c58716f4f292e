package prometheus

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/promgate/promgate/internal/apierror"
)

// maxMergeBytes bounds one upstream answer read for merging.
const maxMergeBytes = 256 << 20

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data,omitempty"`
	ErrorType string          `json:"errorType,omitempty"`
	Error     string          `json:"error,omitempty"`
	Warnings  []string        `json:"warnings,omitempty"`
	Infos     []string        `json:"infos,omitempty"`
}

type matrixData struct {
	ResultType string            `json:"resultType"`
	Result     []json.RawMessage `json:"result"`
}

type seriesHead struct {
	Metric map[string]string `json:"metric"`
}

// mergeMatrices answers an instant query for a bare range selector under a
// policy of several selectors: one upstream query per selector, and the
// series of all answers, each once. A series matching several selectors
// comes back identical from each.
//
// limit (0: none) bounds the merged answer, as the upstream bounds each
// part where it reads limit.
func (a *API) mergeMatrices(w http.ResponseWriter, r *http.Request, path string, vs url.Values, exprs []string, limit int) error {
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	r = r.WithContext(ctx)

	var (
		merged   []json.RawMessage
		seen     = map[string]bool{}
		warnings []string
		infos    []string
	)
	for _, q := range exprs {
		one := url.Values{}
		for k, v := range vs {
			one[k] = v
		}
		one.Set("query", q)
		req := rebuild(r, path, one)
		// Ask for an uncompressed answer: promgate reads it.
		req.Header.Del("Accept-Encoding")
		resp, err := a.up.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxMergeBytes))
		resp.Body.Close()
		if err != nil {
			return apierror.New(apierror.Upstream, "reading upstream answer: %v", err)
		}
		var ar apiResponse
		if err := json.Unmarshal(body, &ar); err != nil {
			return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", resp.StatusCode)
		}
		if ar.Status != "success" {
			// The first error is the answer, as Prometheus gives it,
			// without data (not filtered).
			_, failure, err := envelopeData(body)
			if err != nil || failure == nil {
				return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", resp.StatusCode)
			}
			writeRaw(w, resp.StatusCode, failure)
			return nil
		}
		var md matrixData
		if err := json.Unmarshal(ar.Data, &md); err != nil {
			return apierror.New(apierror.Upstream, "unreadable upstream data: %v", err)
		}
		for _, s := range md.Result {
			var h seriesHead
			if err := json.Unmarshal(s, &h); err != nil {
				return apierror.New(apierror.Upstream, "unreadable upstream series: %v", err)
			}
			if k := labelKey(h.Metric); !seen[k] {
				seen[k] = true
				merged = append(merged, s)
			}
		}
		warnings = append(warnings, ar.Warnings...)
		infos = append(infos, ar.Infos...)
	}
	if limit > 0 && len(merged) > limit {
		merged = merged[:limit]
		warnings = append(warnings, truncationWarning)
	}
	if merged == nil {
		merged = []json.RawMessage{}
	}
	data, _ := json.Marshal(matrixData{ResultType: "matrix", Result: merged})
	out, _ := json.Marshal(apiResponse{Status: "success", Data: data, Warnings: dedupe(warnings), Infos: dedupe(infos)})
	writeRaw(w, http.StatusOK, out)
	return nil
}

func writeRaw(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// labelKey is an unambiguous key for a label set.
func labelKey(m map[string]string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		b.WriteString(strconv.Quote(n))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[n]))
		b.WriteByte(',')
	}
	return b.String()
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
