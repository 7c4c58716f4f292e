package prometheus

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/jsonscan"
	"github.com/promgate/promgate/internal/promql"
)

// scrapePools serves /api/v1/scrape_pools: the pools of the targets the
// tenant sees on /api/v1/targets (active or dropped), in the upstream's
// order. A pool without a target of the tenant's is not named: its name is
// other tenants' configuration. /api/v1/targets?scrapePool= needs nothing
// more: Prometheus answers a pool it does not have as one without targets,
// so asking for another tenant's pool tells nothing.
func (a *API) scrapePools(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	r = r.WithContext(ctx)
	t, err := a.fetch(r, "/api/v1/targets", url.Values{})
	if err != nil {
		return err
	}
	defer t.release()
	data, failure, err := envelopeData(t.raw)
	switch {
	case err != nil:
		return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", t.code)
	case failure != nil:
		writeJSON(w, r, t.code, failure)
		return nil
	}
	kept, _, err := filterTargetsData(nil, data, allowFunc(enf))
	if err != nil {
		return apierror.New(apierror.Upstream, "unexpected upstream answer on /api/v1/targets: %v", err)
	}
	pools, err := targetPools(kept)
	if err != nil {
		return apierror.New(apierror.Upstream, "unexpected upstream answer on /api/v1/targets: %v", err)
	}
	return a.filteredIfThere(w, r, path, vs, func(out, b []byte) ([]byte, int, error) {
		return filterScrapePoolsData(out, b, pools)
	})
}

// targetPools returns the scrape pools of the targets of an answer of
// /api/v1/targets (filtered).
func targetPools(targets []byte) (map[string]bool, error) {
	type target struct {
		ScrapePool string `json:"scrapePool"`
	}
	var d struct {
		ActiveTargets  []target `json:"activeTargets"`
		DroppedTargets []target `json:"droppedTargets"`
	}
	if err := json.Unmarshal(targets, &d); err != nil {
		return nil, err
	}
	pools := map[string]bool{}
	for _, t := range append(d.ActiveTargets, d.DroppedTargets...) {
		pools[t.ScrapePool] = true
	}
	return pools, nil
}

// filterScrapePoolsData keeps the pools named in pools; the data has
// nothing else.
func filterScrapePoolsData(out, b []byte, pools map[string]bool) ([]byte, int, error) {
	end, err := jsonscan.SkipValue(b, 0)
	if err != nil {
		return out, end, err
	}
	var d struct {
		ScrapePools []string `json:"scrapePools"`
	}
	if err := json.Unmarshal(b[:end], &d); err != nil {
		return out, end, err
	}
	kept := []string{}
	for _, p := range d.ScrapePools {
		if pools[p] {
			kept = append(kept, p)
		}
	}
	enc, err := json.Marshal(struct {
		ScrapePools []string `json:"scrapePools"`
	}{kept})
	return append(out, enc...), end, err
}
