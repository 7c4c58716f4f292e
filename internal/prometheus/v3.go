package prometheus

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// Endpoints of Prometheus 3.x. Those not listed here nor in routes stay
// refused to restricted users (default deny), and are admin-only by
// decision:
//
//   - /api/v1/status/tsdb and /status/tsdb/blocks: head statistics (series
//     and label cardinalities, memory by label name, the top-N lists) are
//     computed over every tenant's series, and block metadata describes the
//     whole database. Recomputing them from the tenant's series alone could
//     give the series counts but not chunk counts, memory or blocks.
//   - /api/v1/scrape_pools/config, /api/v1/targets/relabel_steps,
//     /api/v1/status/self_metrics: configuration and the server's own
//     metrics.
var v3Routes = map[string]route{
	// Feature flags and the API's description: the same for every caller,
	// nothing stored.
	"/api/v1/features":     {params{}, (*API).pass, []string{http.MethodGet}},
	"/api/v1/openapi.yaml": {params{}, (*API).pass, []string{http.MethodGet}},
	// Cost estimates are computed from the series the query selects: the
	// rewritten query selects only the tenant's.
	"/api/v1/query_cost":       {costParams, (*API).queryCost, getPost},
	"/api/v1/query_range_cost": {rangeCostParams, (*API).queryCost, getPost},
	"/api/v1/scrape_pools":     {params{}, (*API).scrapePools, []string{http.MethodGet}},
	// Notifications: see notifications.go.
	"/api/v1/notifications":      {params{}, (*API).notifications, []string{http.MethodGet}},
	"/api/v1/notifications/live": {params{}, (*API).notificationsLive, []string{http.MethodGet}},
	// The search API: see search.go.
	"/api/v1/search/metric_names": {searchParams, matchHandler(false), getPost},
	"/api/v1/search/label_names":  {searchParams, matchHandler(false), getPost},
	"/api/v1/search/label_values": {searchParams, matchHandler(false), getPost},
}

// Per-query limits of the query-cost feature (max_series, ...) can only
// lower the operator's ceilings, and only for the caller's own query.
var (
	costParams      = params{single: []string{"query", "time", "timeout", "stats", "limit", "lookback_delta", "max_series", "max_samples_read", "max_query_duration"}}
	rangeCostParams = params{single: []string{"query", "start", "end", "step", "timeout", "stats", "limit", "lookback_delta", "max_series", "max_samples_read", "max_query_duration"}}
)

func init() {
	// One table in the end; a path registered twice is a programming error.
	for path, rt := range v3Routes {
		if _, dup := routes[path]; dup {
			panic("prometheus: route registered twice: " + path)
		}
		routes[path] = rt
	}
}

// queryCost answers the estimated cost of the rewritten query. A query
// rewritten into several (a bare range selector under a policy of several
// selectors, merged by promgate) costs the sum of its parts, as a client
// sending them one by one would be told.
func (a *API) queryCost(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	exprs, err := enf.Query(vs.Get("query"))
	if err != nil {
		return queryError(err)
	}
	if len(exprs) == 1 {
		vs.Set("query", exprs[0])
		a.up.ServeHTTP(w, rebuild(r, path, vs))
		return nil
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	r = r.WithContext(ctx)
	var (
		sum      costData
		warnings []string
		infos    []string
	)
	for _, q := range exprs {
		one := url.Values{}
		for k, v := range vs {
			one[k] = v
		}
		one.Set("query", q)
		f, err := a.fetch(r, path, one)
		if err != nil {
			return err
		}
		data, failure, err := envelopeData(f.raw)
		code := f.code
		var ar apiResponse
		if err == nil && failure == nil {
			err = json.Unmarshal(f.raw, &ar)
		}
		f.release()
		switch {
		case err != nil:
			return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", code)
		case failure != nil:
			writeJSON(w, r, code, failure)
			return nil
		}
		var c costData
		if err := json.Unmarshal(data, &c); err != nil {
			return apierror.New(apierror.Upstream, "unexpected upstream answer on %s: %v", path, err)
		}
		sum.Estimate.SeriesTouched += c.Estimate.SeriesTouched
		sum.Estimate.SamplesRead += c.Estimate.SamplesRead
		warnings = append(warnings, ar.Warnings...)
		infos = append(infos, ar.Infos...)
	}
	data, _ := json.Marshal(sum)
	out, _ := json.Marshal(apiResponse{Status: "success", Data: data, Warnings: dedupe(warnings), Infos: dedupe(infos)})
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

// costData is the answer of /api/v1/query_cost.
type costData struct {
	Estimate struct {
		SeriesTouched int64 `json:"seriesTouched"`
		SamplesRead   int64 `json:"samplesRead"`
	} `json:"estimate"`
}

// queryError is the answer to a query promgate cannot parse or rewrite.
func queryError(err error) error {
	var pe *promql.ParseError
	if errors.As(err, &pe) {
		return apierror.New(apierror.BadData, "invalid parameter \"query\": %v", pe.Err)
	}
	return apierror.Wrap(apierror.BadData, err)
}

// filteredIfThere is filtered for an endpoint older versions lack: their
// 404 (a plain-text page, not the API's envelope) is answered as a 404 in
// the envelope, rather than as an unreadable answer.
func (a *API) filteredIfThere(w http.ResponseWriter, r *http.Request, path string, vs url.Values, filter dataFilter) error {
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	f, err := a.fetch(r.WithContext(ctx), path, vs)
	if err != nil {
		return err
	}
	defer f.release()
	if f.code == http.StatusNotFound {
		if _, failure, err := envelopeData(f.raw); err != nil || failure == nil {
			return apierror.New(apierror.NotFound, "%s: the upstream does not have this endpoint", path)
		}
	}
	return a.answerFiltered(w, r, path, f, filter)
}
