package prometheus

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// UTF-8 names. Prometheus 3 stores and parses any UTF-8 metric and label
// name; Prometheus 2.x parses legacy names only. promgate parses with
// Prometheus 3's parser, and what it writes upstream (rewritten queries,
// match[] selectors) names a UTF-8 label quoted, which 2.x cannot parse. So
// before such text goes upstream, promgate asks the upstream once whether it
// parses a quoted label name; if it does not, the request is refused with a
// 400 naming the label, which may come from the policy rather than from the
// client's own text. Metric names need no check: they are written as
// __name__ matchers, which every version parses.

// utf8Probe is what the upstream is asked to parse: a quoted label name.
const utf8Probe = `{"promgate.probe"="1"}`

// probeTTL is how long a probe's verdict is trusted: an upgraded (or
// downgraded) upstream is noticed without a reload.
const probeTTL = time.Minute

type nameVerdict struct {
	utf8 bool
	at   time.Time
}

// names caches the upstream's verdict (nil: not asked yet).
type names struct{ v atomic.Pointer[nameVerdict] }

// legacyUpstream reports whether the upstream parses only legacy names. An
// upstream that gives no clear answer (no format_query endpoint, an error)
// is not assumed legacy: the request goes on and the upstream answers it.
func (a *API) legacyUpstream(r *http.Request) bool {
	if v := a.names.v.Load(); v != nil && time.Since(v.at) < probeTTL {
		return !v.utf8
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	g := r.WithContext(ctx)
	g.Method = http.MethodGet
	req := rebuild(g, "/api/v1/format_query", url.Values{"query": {utf8Probe}})
	req.Header.Del("Accept-Encoding")
	resp, err := a.up.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		a.names.v.Store(&nameVerdict{utf8: true, at: time.Now()})
	case http.StatusBadRequest:
		// Prometheus 2.x: "unexpected string" where a label name must be.
		a.names.v.Store(&nameVerdict{utf8: false, at: time.Now()})
		return true
	}
	return false
}

// knownUTF8 reports whether the upstream is known to parse UTF-8 names, so
// that nothing needs checking.
func (a *API) knownUTF8() bool {
	v := a.names.v.Load()
	return v != nil && v.utf8 && time.Since(v.at) < probeTTL
}

// errLegacyName is the refusal of a name a 2.x upstream cannot express.
func errLegacyName(name string) error {
	return apierror.New(apierror.BadData,
		"label name %q cannot be sent to this Prometheus: it parses only legacy label names ([a-zA-Z_][a-zA-Z0-9_]*); UTF-8 label names need Prometheus 3", name)
}

// checkQueryNames refuses rewritten queries that name a UTF-8 label when
// the upstream cannot parse them.
func (a *API) checkQueryNames(r *http.Request, exprs []string) error {
	if a.knownUTF8() {
		return nil
	}
	for _, q := range exprs {
		if !mayQuoteName(q) {
			continue
		}
		if name, ok := promql.QueryUTF8LabelName(q); ok && a.legacyUpstream(r) {
			return errLegacyName(name)
		}
	}
	return nil
}

// mayQuoteName is a cheap test before parsing: the printer writes a quoted
// label name before a match operator or in a label list, so a query without
// these sequences has none.
func mayQuoteName(q string) bool {
	return strings.Contains(q, `"=`) || strings.Contains(q, `"!`) ||
		strings.Contains(q, `("`) || strings.Contains(q, `, "`)
}

// checkLabelName decides on the NAME of /api/v1/label/NAME/values as
// Prometheus 3 reads it: "U__" introduces a name escaped with
// model.ValueEncodingEscaping (U__service_2e_name is service.name), so that
// clients can put any name in a path. The name is forwarded as the client
// wrote it, for the upstream to read as it reads it directly; the name
// filters nothing (match[] and the policy do), so no spelling can widen
// the answer.
func (a *API) checkLabelName(r *http.Request, name string) error {
	real := name
	if strings.HasPrefix(name, "U__") {
		real = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(real) {
		return apierror.New(apierror.BadData, "invalid label name: %q", real)
	}
	if !model.LegacyValidation.IsValidLabelName(real) && a.legacyUpstream(r) {
		return errLegacyName(real)
	}
	return nil
}
