package prometheus

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/identity"
	"github.com/promgate/promgate/internal/promql"
)

// Endpoints whose answers list objects with labels (alerts, rules, targets,
// metadata) are filtered: promgate reads the whole answer, keeps what the
// policy allows and re-encodes only data; status, warnings and infos stay as
// Prometheus sent them.

var (
	alertsParams   = params{}
	rulesParams    = params{single: []string{"type", "exclude_alerts", "group_limit", "group_next_token"}, repeatable: []string{"rule_name[]", "rule_group[]", "group_name[]", "file[]", "match[]"}}
	targetsParams  = params{single: []string{"state", "scrapePool"}}
	tmetaParams    = params{single: []string{"match_target", "metric", "limit"}}
	metadataParams = params{single: []string{"limit", "limit_per_metric", "metric"}}
)

// labelSet is the predicate of a policy over a label set.
type labelSet = map[string]string

// fetched is an upstream answer read whole.
type fetched struct {
	code int
	raw  []byte
	env  apiResponse
}

// fetch sends a rebuilt request upstream and reads its answer for
// filtering, uncompressed.
func (a *API) fetch(r *http.Request, path string, vs url.Values) (*fetched, error) {
	req := rebuild(r, path, vs)
	// Ask for an identity-encoded answer: promgate must read it.
	req.Header.Del("Accept-Encoding")
	resp, err := a.up.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxMergeBytes))
	if err != nil {
		return nil, apierror.New(apierror.Upstream, "reading upstream answer: %v", err)
	}
	f := &fetched{code: resp.StatusCode, raw: raw}
	if err := json.Unmarshal(raw, &f.env); err != nil {
		return nil, apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", resp.StatusCode)
	}
	return f, nil
}

// filtered runs an endpoint whose answer is filtered: fetch, then, on
// success, replace data with what filter returns.
func (a *API) filtered(w http.ResponseWriter, r *http.Request, path string, vs url.Values, filter func(json.RawMessage) (any, error)) error {
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	f, err := a.fetch(r.WithContext(ctx), path, vs)
	if err != nil {
		return err
	}
	if f.env.Status != "success" {
		writeJSON(w, r, f.code, f.raw)
		return nil
	}
	data, err := filter(f.env.Data)
	if err != nil {
		return apierror.New(apierror.Upstream, "unexpected upstream answer on %s: %v", path, err)
	}
	f.env.Data, err = json.Marshal(data)
	if err != nil {
		return apierror.Wrap(apierror.Internal, err)
	}
	out, err := json.Marshal(f.env)
	if err != nil {
		return apierror.Wrap(apierror.Internal, err)
	}
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

// writeJSON answers body, gzip-compressed when the client accepts it.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if len(body) > 1024 && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		w.WriteHeader(code)
		gz := gzip.NewWriter(w)
		_, _ = gz.Write(body)
		_ = gz.Close()
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && !strings.Contains(strings.ReplaceAll(q, " ", ""), "q=0") {
			return true
		}
	}
	return false
}

// alert is an alert of /api/v1/alerts and of rules; fields promgate does
// not read are kept verbatim.
type alert struct {
	Labels labelSet `json:"labels"`
	rest   map[string]json.RawMessage
}

func (x *alert) UnmarshalJSON(b []byte) error { return splitLabels(b, "labels", &x.Labels, &x.rest) }
func (x alert) MarshalJSON() ([]byte, error)  { return joinLabels(x.rest, "labels", x.Labels) }

// splitLabels decodes an object keeping one label-set field apart and the
// others raw, so that re-encoding changes nothing promgate did not filter.
func splitLabels(b []byte, key string, lbls *labelSet, rest *map[string]json.RawMessage) error {
	if err := json.Unmarshal(b, rest); err != nil {
		return err
	}
	if raw, ok := (*rest)[key]; ok {
		if err := json.Unmarshal(raw, lbls); err != nil {
			return err
		}
	}
	return nil
}

func joinLabels(rest map[string]json.RawMessage, key string, lbls labelSet) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(rest))
	for k, v := range rest {
		out[k] = v
	}
	if lbls != nil {
		b, err := json.Marshal(lbls)
		if err != nil {
			return nil, err
		}
		out[key] = b
	}
	return json.Marshal(out)
}

func filterAlerts(in []alert, allow func(labelSet) bool) []alert {
	out := make([]alert, 0, len(in))
	for _, x := range in {
		if allow(x.Labels) {
			out = append(out, x)
		}
	}
	return out
}

func (a *API) alerts(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	allow := a.alertAllow(r, enf)
	return a.filtered(w, r, path, vs, func(data json.RawMessage) (any, error) {
		var d struct {
			Alerts []alert `json:"alerts"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, err
		}
		d.Alerts = filterAlerts(d.Alerts, allow)
		return d, nil
	})
}

// rule is a rule of /api/v1/rules.
type rule struct {
	Labels labelSet
	Name   string
	Type   string
	Alerts []alert
	rest   map[string]json.RawMessage
}

func (x *rule) UnmarshalJSON(b []byte) error {
	if err := splitLabels(b, "labels", &x.Labels, &x.rest); err != nil {
		return err
	}
	for key, dst := range map[string]any{"name": &x.Name, "type": &x.Type, "alerts": &x.Alerts} {
		if raw, ok := x.rest[key]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return err
			}
		}
	}
	return nil
}

func (x rule) MarshalJSON() ([]byte, error) {
	rest := x.rest
	if _, ok := rest["alerts"]; ok {
		b, err := json.Marshal(x.Alerts)
		if err != nil {
			return nil, err
		}
		rest = make(map[string]json.RawMessage, len(x.rest))
		for k, v := range x.rest {
			rest[k] = v
		}
		rest["alerts"] = b
	}
	return joinLabels(rest, "labels", x.Labels)
}

type ruleGroup struct {
	Rules []rule
	rest  map[string]json.RawMessage
}

func (g *ruleGroup) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &g.rest); err != nil {
		return err
	}
	return json.Unmarshal(g.rest["rules"], &g.Rules)
}

func (g ruleGroup) MarshalJSON() ([]byte, error) {
	rules, err := json.Marshal(g.Rules)
	if err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(g.rest))
	for k, v := range g.rest {
		out[k] = v
	}
	out["rules"] = rules
	return json.Marshal(out)
}

// filterRules keeps a rule when the series it produces are the tenant's
// (its labels, with its name as __name__ for a recording rule) or when one
// of its alerts is; of a kept rule only the tenant's alerts are shown.
// Groups left empty are dropped.
func filterRules(groups []ruleGroup, allow func(labelSet) bool) []ruleGroup {
	out := make([]ruleGroup, 0, len(groups))
	for _, g := range groups {
		var kept []rule
		for _, ru := range g.Rules {
			own := ru.Labels
			if ru.Type == "recording" {
				own = make(labelSet, len(ru.Labels)+1)
				for k, v := range ru.Labels {
					own[k] = v
				}
				own["__name__"] = ru.Name
			}
			alerts := filterAlerts(ru.Alerts, allow)
			if !allow(own) && len(alerts) == 0 {
				continue
			}
			if ru.Alerts != nil {
				ru.Alerts = alerts
			}
			kept = append(kept, ru)
		}
		if len(kept) > 0 {
			g.Rules = kept
			out = append(out, g)
		}
	}
	return out
}

func (a *API) rules(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	allow := a.alertAllow(r, enf)
	return a.filtered(w, r, path, vs, func(data json.RawMessage) (any, error) {
		var d map[string]json.RawMessage
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, err
		}
		var groups []ruleGroup
		if err := json.Unmarshal(d["groups"], &groups); err != nil {
			return nil, err
		}
		b, err := json.Marshal(filterRules(groups, allow))
		if err != nil {
			return nil, err
		}
		d["groups"] = b
		return d, nil
	})
}

// target is an active or dropped target.
type target struct {
	Labels     labelSet
	Discovered labelSet
	rest       map[string]json.RawMessage
}

func (x *target) UnmarshalJSON(b []byte) error {
	if err := splitLabels(b, "labels", &x.Labels, &x.rest); err != nil {
		return err
	}
	if raw, ok := x.rest["discoveredLabels"]; ok {
		return json.Unmarshal(raw, &x.Discovered)
	}
	return nil
}

func (x target) MarshalJSON() ([]byte, error) { return joinLabels(x.rest, "labels", x.Labels) }

// visible decides on a target's labels, the labels its series carry. A
// dropped target has only its discovered labels (static labels of the
// configuration among them); without any it is nobody's.
func (x target) visible(allow func(labelSet) bool) bool {
	if x.Labels != nil {
		return allow(x.Labels)
	}
	return x.Discovered != nil && allow(x.Discovered)
}

func (a *API) targets(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	allow := allowFunc(enf)
	return a.filtered(w, r, path, vs, func(data json.RawMessage) (any, error) {
		var d map[string]json.RawMessage
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, err
		}
		for _, key := range []string{"activeTargets", "droppedTargets"} {
			raw, ok := d[key]
			if !ok {
				continue
			}
			var ts []target
			if err := json.Unmarshal(raw, &ts); err != nil {
				return nil, err
			}
			kept := make([]target, 0, len(ts))
			for _, t := range ts {
				if t.visible(allow) {
					kept = append(kept, t)
				}
			}
			b, err := json.Marshal(kept)
			if err != nil {
				return nil, err
			}
			d[key] = b
		}
		// Counts of dropped targets per pool (newer Prometheus) would
		// tell what other tenants run.
		delete(d, "droppedTargetCounts")
		return d, nil
	})
}

// targetMetadata is an entry of /api/v1/targets/metadata.
type targetMetadata struct {
	Target labelSet
	Metric string
	rest   map[string]json.RawMessage
}

func (x *targetMetadata) UnmarshalJSON(b []byte) error {
	if err := splitLabels(b, "target", &x.Target, &x.rest); err != nil {
		return err
	}
	if raw, ok := x.rest["metric"]; ok {
		return json.Unmarshal(raw, &x.Metric)
	}
	return nil
}

func (x targetMetadata) MarshalJSON() ([]byte, error) { return joinLabels(x.rest, "target", x.Target) }

func (a *API) targetsMetadata(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	limit, err := takeLimit(vs)
	if err != nil {
		return err
	}
	allow := allowFunc(enf)
	return a.filtered(w, r, path, vs, func(data json.RawMessage) (any, error) {
		var entries []targetMetadata
		if err := json.Unmarshal(data, &entries); err != nil {
			return nil, err
		}
		kept := make([]targetMetadata, 0, len(entries))
		for _, e := range entries {
			// The series of this metric from this target carry the
			// target's labels and the metric's name.
			lbls := make(labelSet, len(e.Target)+1)
			for k, v := range e.Target {
				lbls[k] = v
			}
			if e.Metric != "" {
				lbls["__name__"] = e.Metric
			}
			if allow(lbls) && (limit <= 0 || len(kept) < limit) {
				kept = append(kept, e)
			}
		}
		return kept, nil
	})
}

// metadata keeps the metadata of metric names the tenant has series of:
// the names come from the label values of __name__ under the policy.
func (a *API) metadata(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	limit, err := takeLimit(vs)
	if err != nil {
		return err
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	names := url.Values{}
	if err := enforceMatch(names, enf); err != nil {
		return err
	}
	get := r.Clone(ctx)
	get.Method = http.MethodGet
	f, err := a.fetch(get, "/api/v1/label/__name__/values", names)
	if err != nil {
		return err
	}
	if f.env.Status != "success" {
		writeJSON(w, r, f.code, f.raw)
		return nil
	}
	var own []string
	if err := json.Unmarshal(f.env.Data, &own); err != nil {
		return apierror.New(apierror.Upstream, "unexpected upstream answer: %v", err)
	}
	mine := make(map[string]bool, len(own))
	for _, n := range own {
		mine[n] = true
	}
	return a.filtered(w, r.WithContext(ctx), path, vs, func(data json.RawMessage) (any, error) {
		var d map[string]json.RawMessage
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, err
		}
		kept := 0
		for _, name := range sortedNames(d) {
			if !mine[name] || (limit > 0 && kept >= limit) {
				delete(d, name)
				continue
			}
			kept++
		}
		return d, nil
	})
}

func allowFunc(enf *promql.Enforcer) func(labelSet) bool { return enf.Visible }

// alertAllow decides on alerts; with the PromAuthProxy-compatible option,
// an alert whose name starts with "<user>: " is also the user's.
func (a *API) alertAllow(r *http.Request, enf *promql.Enforcer) func(labelSet) bool {
	if !a.opts.AlertNamePrefix {
		return enf.Visible
	}
	id, _ := identity.FromContext(r.Context())
	prefix := id.User + ": "
	return func(l labelSet) bool {
		return enf.Visible(l) || (id.User != "" && strings.HasPrefix(l["alertname"], prefix))
	}
}

// takeLimit removes limit from the parameters sent upstream: a limit applied
// before filtering would count other tenants' entries.
func takeLimit(vs url.Values) (int, error) {
	s := vs.Get("limit")
	vs.Del("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, apierror.New(apierror.BadData, "invalid parameter \"limit\": %q is not a number", s)
	}
	return n, nil
}

func sortedNames(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
