package prometheus

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/promgate/promgate/internal/jsonscan"
)

// The filters of alerts, rules and targets copy what a tenant may see byte
// for byte (filter.go). These tests hold them to the implementation they
// replaced, which decoded and encoded every object with encoding/json (kept
// below as the reference): on every answer, both fail or both give the same
// data once decoded.

// Reference implementation (promgate before the byte-level filters).

// alert is an alert of /api/v1/alerts and of rules; fields promgate does
// not read are kept verbatim.
type oldAlert struct {
	Labels labelSet `json:"labels"`
	rest   map[string]json.RawMessage
}

func (x *oldAlert) UnmarshalJSON(b []byte) error {
	if err := oldSplitLabels(b, "labels", &x.Labels, &x.rest); err != nil {
		return err
	}
	return oldSpelling(x.rest, "labels")
}
func (x oldAlert) MarshalJSON() ([]byte, error) { return oldJoinLabels(x.rest, "labels", x.Labels) }

// splitLabels decodes an object keeping one label-set field apart and the
// others raw, so that re-encoding changes nothing promgate did not filter.
func oldSplitLabels(b []byte, key string, lbls *labelSet, rest *map[string]json.RawMessage) error {
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

// oldSpelling refuses, as the filters do, an object with a key that Go's
// encoding/json reads as one of keys (without regard to case) but spelt
// otherwise: clients matching keys exactly would read another member.
func oldSpelling(rest map[string]json.RawMessage, keys ...string) error {
	for k := range rest {
		for _, d := range keys {
			if k != d && strings.EqualFold(k, d) {
				return jsonscan.ErrSpelling
			}
		}
	}
	return nil
}

func oldJoinLabels(rest map[string]json.RawMessage, key string, lbls labelSet) ([]byte, error) {
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

func oldFilterAlerts(in []oldAlert, allow func(labelSet) bool) []oldAlert {
	out := make([]oldAlert, 0, len(in))
	for _, x := range in {
		if allow(x.Labels) {
			out = append(out, x)
		}
	}
	return out
}

// rule is a rule of /api/v1/rules.
type oldRule struct {
	Labels labelSet
	Name   string
	Type   string
	Alerts []oldAlert
	rest   map[string]json.RawMessage
}

func (x *oldRule) UnmarshalJSON(b []byte) error {
	if err := oldSplitLabels(b, "labels", &x.Labels, &x.rest); err != nil {
		return err
	}
	if err := oldSpelling(x.rest, "labels", "name", "type", "alerts"); err != nil {
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

func (x oldRule) MarshalJSON() ([]byte, error) {
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
	return oldJoinLabels(rest, "labels", x.Labels)
}

type oldRuleGroup struct {
	Rules []oldRule
	rest  map[string]json.RawMessage
}

func (g *oldRuleGroup) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &g.rest); err != nil {
		return err
	}
	if err := oldSpelling(g.rest, "rules", "name", "file"); err != nil {
		return err
	}
	return json.Unmarshal(g.rest["rules"], &g.Rules)
}

func (g oldRuleGroup) MarshalJSON() ([]byte, error) {
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
func oldFilterRules(groups []oldRuleGroup, allow func(labelSet) bool) []oldRuleGroup {
	out := make([]oldRuleGroup, 0, len(groups))
	for _, g := range groups {
		var kept []oldRule
		for _, ru := range g.Rules {
			own := ru.Labels
			if ru.Type == "recording" {
				own = make(labelSet, len(ru.Labels)+1)
				for k, v := range ru.Labels {
					own[k] = v
				}
				own["__name__"] = ru.Name
			}
			alerts := oldFilterAlerts(ru.Alerts, allow)
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

// target is an active or dropped target.
type oldTarget struct {
	Labels     labelSet
	Discovered labelSet
	rest       map[string]json.RawMessage
}

func (x *oldTarget) UnmarshalJSON(b []byte) error {
	if err := oldSplitLabels(b, "labels", &x.Labels, &x.rest); err != nil {
		return err
	}
	if err := oldSpelling(x.rest, "labels", "discoveredLabels"); err != nil {
		return err
	}
	if raw, ok := x.rest["discoveredLabels"]; ok {
		return json.Unmarshal(raw, &x.Discovered)
	}
	return nil
}

func (x oldTarget) MarshalJSON() ([]byte, error) { return oldJoinLabels(x.rest, "labels", x.Labels) }

// visible decides on a target's labels, the labels its series carry. A
// dropped target has only its discovered labels (static labels of the
// configuration among them); without any it is nobody's.
func (x oldTarget) visible(allow func(labelSet) bool) bool {
	if x.Labels != nil {
		return allow(x.Labels)
	}
	return x.Discovered != nil && allow(x.Discovered)
}

// targetMetadata is an entry of /api/v1/targets/metadata.
type oldTargetMetadata struct {
	Target labelSet
	Metric string
	rest   map[string]json.RawMessage
}

func (x *oldTargetMetadata) UnmarshalJSON(b []byte) error {
	if err := oldSplitLabels(b, "target", &x.Target, &x.rest); err != nil {
		return err
	}
	if err := oldSpelling(x.rest, "target", "metric"); err != nil {
		return err
	}
	if raw, ok := x.rest["metric"]; ok {
		return json.Unmarshal(raw, &x.Metric)
	}
	return nil
}

func (x oldTargetMetadata) MarshalJSON() ([]byte, error) {
	return oldJoinLabels(x.rest, "target", x.Target)
}

func oldAlertsData(data json.RawMessage, allow func(labelSet) bool) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err == nil {
		if err := oldSpelling(top, "alerts"); err != nil {
			return nil, err
		}
	}
	var d struct {
		Alerts []oldAlert `json:"alerts"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	d.Alerts = oldFilterAlerts(d.Alerts, allow)
	return json.Marshal(d)
}

func oldRulesData(data json.RawMessage, allow func(labelSet) bool) ([]byte, error) {
	var d map[string]json.RawMessage
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	if err := oldSpelling(d, "groups", "groupNextToken"); err != nil {
		return nil, err
	}
	var groups []oldRuleGroup
	if err := json.Unmarshal(d["groups"], &groups); err != nil {
		return nil, err
	}
	// The upstream's page token is not passed on (promgate pages).
	delete(d, "groupNextToken")
	b, err := json.Marshal(oldFilterRules(groups, allow))
	if err != nil {
		return nil, err
	}
	d["groups"] = b
	return json.Marshal(d)
}

func oldTargetsData(data json.RawMessage, allow func(labelSet) bool) ([]byte, error) {
	var d map[string]json.RawMessage
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	if err := oldSpelling(d, "activeTargets", "droppedTargets", "droppedTargetCounts"); err != nil {
		return nil, err
	}
	for _, key := range []string{"activeTargets", "droppedTargets"} {
		raw, ok := d[key]
		if !ok {
			continue
		}
		var ts []oldTarget
		if err := json.Unmarshal(raw, &ts); err != nil {
			return nil, err
		}
		kept := make([]oldTarget, 0, len(ts))
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
	if _, ok := d["droppedTargetCounts"]; ok {
		// The tenant's own: the kept dropped targets by pool, and a zero
		// for each pool of a kept active target.
		type pooled struct {
			ScrapePool string `json:"scrapePool"`
		}
		counts := map[string]int{}
		for i, key := range []string{"activeTargets", "droppedTargets"} {
			var ts []pooled
			if raw, ok := d[key]; ok {
				if err := json.Unmarshal(raw, &ts); err != nil {
					return nil, err
				}
			}
			for _, t := range ts {
				if t.ScrapePool != "" {
					counts[t.ScrapePool] += i
				}
			}
		}
		b, err := json.Marshal(counts)
		if err != nil {
			return nil, err
		}
		d["droppedTargetCounts"] = b
	}
	return json.Marshal(d)
}

func oldTargetsMetadataData(data json.RawMessage, allow func(labelSet) bool, limit int) ([]byte, error) {
	var entries []oldTargetMetadata
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, err
	}
	kept := make([]oldTargetMetadata, 0, len(entries))
	for _, e := range entries {
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
	return json.Marshal(kept)
}

// Test cases.

func teamA(get func(string) string) bool { return get("team") == "a" }

// teamNotB allows label sets without a team too (nil among them).
func teamNotB(get func(string) string) bool { return get("team") != "b" }

// onMap is a policy over a decoded label set, for the reference.
func onMap(allow visibleFunc) func(labelSet) bool {
	return func(l labelSet) bool { return allow(func(n string) string { return l[n] }) }
}

// sameData compares old and new on one input.
func sameData(t *testing.T, what string, in []byte, old, new func([]byte) ([]byte, error)) {
	t.Helper()
	want, werr := old(in)
	got, gerr := func() (b []byte, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
				t.Errorf("%s: panic on %s: %v", what, in, p)
			}
		}()
		return new(in)
	}()
	if (werr != nil) != (gerr != nil) {
		t.Errorf("%s on %s:\nreference error %v\nnew error       %v\n(reference %s, new %s)", what, in, werr, gerr, want, got)
		return
	}
	if werr != nil {
		return
	}
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: reference output %s: %v", what, want, err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s on %s: output is not JSON: %s: %v", what, in, got, err)
		return
	}
	if !reflect.DeepEqual(w, g) {
		t.Errorf("%s on %s:\nreference %s\nnew       %s", what, in, want, got)
	}
}

// whole runs a new filter on data that is exactly one value, as the
// envelope gives it, and checks that it reads all of it.
func whole(t *testing.T, filter dataFilter) func([]byte) ([]byte, error) {
	return func(d []byte) ([]byte, error) {
		out, end, err := filter(nil, d)
		if err == nil && end != len(d) {
			t.Errorf("filter read %d bytes of %d: %s", end, len(d), d)
		}
		return out, err
	}
}

func checkAll(t *testing.T, in string) {
	t.Helper()
	// Both take the value as the envelope gives it: no space around.
	b := []byte(strings.TrimSpace(in))
	for name, allow := range map[string]visibleFunc{"teamA": teamA, "teamNotB": teamNotB} {
		sameData(t, "alerts/"+name, b, func(d []byte) ([]byte, error) { return oldAlertsData(d, onMap(allow)) },
			whole(t, func(out, d []byte) ([]byte, int, error) { return filterAlertsData(out, d, allow) }))
		sameData(t, "rules/"+name, b, func(d []byte) ([]byte, error) { return oldRulesData(d, onMap(allow)) },
			whole(t, func(out, d []byte) ([]byte, int, error) { return filterRulesData(out, d, allow, nil) }))
		sameData(t, "targets/"+name, b, func(d []byte) ([]byte, error) { return oldTargetsData(d, onMap(allow)) },
			whole(t, func(out, d []byte) ([]byte, int, error) { return filterTargetsData(out, d, allow) }))
		for _, limit := range []int{0, 1, 2} {
			sameData(t, fmt.Sprintf("targets metadata/%s/limit %d", name, limit), b,
				func(d []byte) ([]byte, error) { return oldTargetsMetadataData(d, onMap(allow), limit) },
				whole(t, func(out, d []byte) ([]byte, int, error) { return filterTargetsMetadataData(out, d, allow, limit) }))
		}
	}
}

var filterCases = []string{
	// Alerts.
	`{"alerts":[{"labels":{"alertname":"A","team":"a"},"annotations":{"s":"<b>&"},"state":"firing","activeAt":"2023-11-14T22:00:00Z","value":"1e+00"},{"labels":{"alertname":"B","team":"b"},"state":"firing","value":"1e+00"}]}`,
	`{"alerts":[]}`, `{"alerts":null}`, `{}`, `null`, `{"ALERTS":[{"labels":{"team":"b"}}]}`, `{"alerts":[null]}`,
	`{"alerts":[{"labels":null,"x":1}]}`, `{"alerts":[{"x":1}]}`, `{"alerts":[{"labels":{"team":"a","team":"b"}}]}`,
	`{"alerts":[{"labels":{"team":"b"},"labels":{"team":"a"}}]}`, `{"alerts":[{"labels":{"team":"a"},"labels":{"team":"b"}}]}`,
	`{"alerts":[{"labels":{"team":1}}]}`, `{"alerts":[{"labels":{"team":null}}]}`, `{"alerts":[{"labels":[]}]}`, `{"alerts":[1]}`,
	`{"alerts":{}}`, `{"alerts":[{"labels":{"te\u0061m":"\u0061"}}],"other":true}`, `{"alerts":[{"labels":{"team":"a\"b"}}]}`,
	` { "alerts" : [ { "labels" : { "team" : "a" } , "v" : [ 1 , 2.5e3 , -0 , true , false , null ] } ] } `,
	`{"alerts":[{"labels":{"team":"a"}},]}`, `{"alerts":[{"labels":{"team":"a"}}`, `{"alerts":[{"labels":{"team":"a"}}]`, `[]`, `"x"`, `1`,
	`{"alerts":[{"labels":{"team":"a"},"v":01}]}`, `{"alerts":[{"labels":{"team":"a"},"v":"\x"}]}`, `{"alerts":[{"labels":{"team":"\ud800"}}]}`,
	"{\"alerts\":[{\"labels\":{\"team\":\"a\xff\"}}]}",
	// Rules.
	`{"groups":[{"name":"g","file":"f","rules":[{"name":"r1","type":"alerting","labels":{"team":"a"},"alerts":[{"labels":{"team":"a"}},{"labels":{"team":"b"}}],"health":"ok"},{"name":"r2","type":"alerting","labels":{},"alerts":[{"labels":{"team":"b"}}]},{"name":"r3","type":"recording","labels":{"team":"a"}},{"name":"r4","type":"alerting","labels":{"team":"b"},"alerts":[{"labels":{"team":"a"}}]}],"interval":15}]}`,
	`{"groups":[{"name":"g","rules":[{"name":"r","type":"alerting","labels":{"team":"a"},"alerts":[]}]}]}`,
	`{"groups":[{"name":"g","rules":[{"name":"r","type":"alerting","labels":{"team":"a"},"alerts":null}]}]}`,
	`{"groups":[{"name":"g","rules":[{"name":"r","type":"alerting","labels":{"team":"a"},"alerts":[null]}]}]}`,
	`{"groups":[{"name":"g","rules":[null]}]}`, `{"groups":[null]}`, `{"groups":null}`, `{"groups":[]}`, `{}`,
	`{"groups":[{"name":"g"}]}`, `{"groups":[{"name":"g","rules":null}]}`, `{"groups":[{"rules":[{"type":"recording","name":"x"}]}]}`,
	`{"groups":[{"rules":[{"type":"recording","name":"x","labels":{"team":"a"}},{"type":"recording","name":"y"}]}]}`,
	`{"groups":[{"rules":[{"type":1}]}]}`, `{"groups":[{"rules":[{"name":null,"type":null,"labels":null}]}]}`,
	`{"groups":[{"rules":[{"labels":{"team":"a"},"alerts":[{"labels":{"team":"b"}}],"alerts":[{"labels":{"team":"a"}}]}]}]}`,
	`{"groups":[{"rules":[{"labels":{"team":"b"}}],"rules":[{"labels":{"team":"a"}}]}]}`,
	`{"groups":[{"rules":[{"labels":{"team":"a"}}]}],"groups":[]}`, `{"groups":[{"rules":{}}]}`, `{"groups":{}}`, `{"groups":[1]}`,
	`{"groups":[{"rules":[{"labels":{"team":"b"},"alerts":{}}]}]}`, `{"groups":[],"groupNextToken":"abc"}`,
	// Targets.
	`{"activeTargets":[{"labels":{"team":"a","job":"j"},"discoveredLabels":{"team":"a"},"health":"up"},{"labels":{"team":"b"}}],"droppedTargets":[{"discoveredLabels":{"team":"a"}},{"discoveredLabels":{"team":"b"}},{"labels":null,"discoveredLabels":{"team":"a"}},{}],"droppedTargetCounts":{"p":3}}`,
	`{"activeTargets":null}`, `{"activeTargets":[null]}`, `{"activeTargets":[{"labels":{}}]}`, `{"droppedTargets":[{"discoveredLabels":null}]}`,
	`{"activeTargets":[{"labels":{"team":"b"},"labels":{"team":"a"}}]}`, `{"activeTargets":[{"labels":{"team":"a"}}],"activeTargets":[]}`,
	`{"activeTargets":{}}`, `{"activeTargets":[{"labels":{"team":"a"},"discoveredLabels":3}]}`,
	// Targets metadata.
	`[{"target":{"team":"a","instance":"i"},"metric":"up","type":"gauge","help":"h","unit":""},{"target":{"team":"b"},"metric":"up"},{"target":{"team":"a"},"metric":"go_goroutines"}]`,
	`[null]`, `[{"metric":"x"}]`, `[{"target":null,"metric":null}]`, `[{"target":{"team":"b"},"target":{"team":"a"},"metric":"m"}]`,
	`[{"target":{"__name__":"x","team":"a"},"metric":""}]`, `[{"target":{"team":"a"},"metric":5}]`, `[{"target":{"team":"a"}},{"target":{"team":"a"}},{"target":{"team":"a"}}]`,
}

func TestFiltersAgreeWithReference(t *testing.T) {
	for _, in := range filterCases {
		checkAll(t, in)
	}
}

// TestFiltersAgreeOnRandomAnswers builds random answers of the shapes
// Prometheus sends, with nulls, repeated keys and odd strings among them.
// PROMGATE_FILTER_SEED=n runs 20000 rounds from seed n.
func TestFiltersAgreeOnRandomAnswers(t *testing.T) {
	seed, iterations := uint64(1), 1000
	if s, err := strconv.ParseUint(os.Getenv("PROMGATE_FILTER_SEED"), 10, 64); err == nil {
		seed, iterations = s, 20000
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	str := func() string {
		return []string{`"a"`, `"b"`, `""`, `"\u0061"`, `"x\"y"`, `"<&>"`, `null`, `"é"`}[rng.IntN(8)]
	}
	lbls := func() string {
		switch rng.IntN(10) {
		case 0:
			return `null`
		case 1:
			return `{}`
		}
		var kv []string
		for range rng.IntN(4) {
			k := []string{`"team"`, `"job"`, `"alertname"`, `"te\u0061m"`, `"__name__"`}[rng.IntN(5)]
			kv = append(kv, k+":"+str())
		}
		return "{" + strings.Join(kv, ",") + "}"
	}
	obj := func(fields map[string]func() string) string {
		var kv []string
		for k, f := range fields {
			if rng.IntN(6) == 0 {
				continue
			}
			kv = append(kv, fmt.Sprintf("%q:%s", k, f()))
			// A repeated key. Not alerts: encoding/json decodes a
			// repeated array into the same struct slice, merging
			// the alerts of both (the new filter keeps the last).
			if rng.IntN(20) == 0 && k != "alerts" {
				kv = append(kv, fmt.Sprintf("%q:%s", k, f()))
			}
		}
		rng.Shuffle(len(kv), func(i, j int) { kv[i], kv[j] = kv[j], kv[i] })
		return "{" + strings.Join(kv, ",") + "}"
	}
	list := func(n int, f func() string) func() string {
		return func() string {
			if rng.IntN(15) == 0 {
				return "null"
			}
			var xs []string
			for range rng.IntN(n) {
				if rng.IntN(20) == 0 {
					xs = append(xs, "null")
				} else {
					xs = append(xs, f())
				}
			}
			return "[" + strings.Join(xs, ",") + "]"
		}
	}
	alert := func() string {
		return obj(map[string]func() string{"labels": lbls, "state": str, "value": func() string { return `"1e+00"` }})
	}
	rule := func() string {
		return obj(map[string]func() string{
			"labels": lbls, "name": str, "alerts": list(4, alert),
			"type": func() string { return []string{`"alerting"`, `"recording"`, `null`}[rng.IntN(3)] },
		})
	}
	group := func() string {
		return obj(map[string]func() string{"name": str, "rules": list(5, rule)})
	}
	target := func() string {
		return obj(map[string]func() string{"labels": lbls, "discoveredLabels": lbls, "health": str})
	}
	meta := func() string {
		return obj(map[string]func() string{"target": lbls, "metric": str, "help": str})
	}
	for range iterations {
		checkAll(t, obj(map[string]func() string{"alerts": list(6, alert)}))
		checkAll(t, obj(map[string]func() string{"groups": list(4, group), "x": str}))
		checkAll(t, obj(map[string]func() string{"activeTargets": list(5, target), "droppedTargets": list(5, target), "droppedTargetCounts": func() string { return `{"p":1}` }}))
		checkAll(t, list(6, meta)())
		if t.Failed() {
			return
		}
	}
}

// rawUpstream answers every request with one body.
type rawUpstream struct {
	code int
	body string
	got  *http.Request
}

func (u *rawUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.got = r
	w.WriteHeader(u.code)
	io.WriteString(w, u.body)
}

func (u *rawUpstream) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (u *rawUpstream) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

func TestFilteredEnvelope(t *testing.T) {
	big := strings.Repeat(`{"labels":{"team":"b"},"annotations":{"summary":"padding padding padding"}},`, 20)
	for _, tc := range []struct {
		name      string
		code      int
		body      string
		gzip      bool
		wantCode  int
		want      string // JSON the client decodes
		wantBytes string // exact body, when set
	}{
		{name: "only data changes", code: 200,
			body:     `{"status":"success","data":{"alerts":[{"labels":{"team":"a"}},{"labels":{"team":"b"}}]},"warnings":["w"],"infos":["i"]}`,
			wantCode: 200, wantBytes: `{"status":"success","data":{"alerts":[{"labels":{"team":"a"}}]},"warnings":["w"],"infos":["i"]}`},
		{name: "spaces kept around data", code: 200,
			body:     "{ \"status\" : \"success\" ,\n \"data\" : {\"alerts\":[]} }\n",
			wantCode: 200, wantBytes: "{ \"status\" : \"success\" ,\n \"data\" : {\"alerts\":[]} }\n"},
		{name: "error passed on", code: 422,
			body:     `{"status":"error","errorType":"bad_data","error":"x"}`,
			wantCode: 422, wantBytes: `{"status":"error","errorType":"bad_data","error":"x"}`},
		// Go clients read "STATUS" as status, others do not: refused.
		{name: "status spelt otherwise", code: 200,
			body: `{"STATUS":"success","data":{"alerts":[{"labels":{"team":"b"}}]}}`, wantCode: 502},
		{name: "status twice, spelt otherwise", code: 200,
			body: `{"status":"error","STATUS":"success","data":{"alerts":[{"labels":{"team":"b"}}]}}`, wantCode: 502},
		{name: "data spelt otherwise", code: 200,
			body: `{"status":"success","data":{"alerts":[{"labels":{"team":"b"}}]},"Data":{"alerts":[{"labels":{"team":"a"}},{"labels":{"team":"b"}}]}}`, wantCode: 502},
		{name: "data spelt otherwise in an error", code: 500,
			body: `{"status":"error","error":"x","Data":{"alerts":[{"labels":{"team":"b"}}]}}`, wantCode: 502},
		{name: "labels spelt otherwise", code: 200,
			body: `{"status":"success","data":{"alerts":[{"labels":{"team":"a"},"Labels":{"team":"b"}}]}}`, wantCode: 502},
		{name: "data twice: rebuilt with the last only", code: 200,
			body:     `{"status":"success","data":{"alerts":[{"labels":{"team":"b"}}]},"data":{"alerts":[{"labels":{"team":"a"}},{"labels":{"team":"b"}}]}}`,
			wantCode: 200, wantBytes: `{"status":"success","data":{"alerts":[{"labels":{"team":"a"}}]}}`},
		// An answer that is not a success goes out without its data,
		// which is not filtered.
		{name: "error without its data", code: 500,
			body:     `{"status":"error","errorType":"internal","error":"x","data":{"alerts":[{"labels":{"team":"b"}}]},"warnings":["w"],"other":{"team":"b"}}`,
			wantCode: 500, wantBytes: `{"status":"error","errorType":"internal","error":"x","warnings":["w"]}`},
		{name: "no status, data dropped", code: 200,
			body: `{"data":{"alerts":[{"labels":{"team":"b"}}]}}`, wantCode: 200, wantBytes: `{}`},
		{name: "status not success, data dropped", code: 200,
			body: `{"status":"Success","data":{"alerts":[{"labels":{"team":"b"}}]}}`, wantCode: 200, wantBytes: `{"status":"Success"}`},
		{name: "error repeated, last kept", code: 400,
			body: `{"status":"error","error":"a","error":"b","data":1}`, wantCode: 400, wantBytes: `{"status":"error","error":"b"}`},
		{name: "nested too deep", code: 200,
			body: `{"status":"success","data":{"alerts":[{"labels":{"team":"a"},"x":` + strings.Repeat("[", 12<<20) + `}]}}`, wantCode: 502},
		{name: "nested too deep in an error", code: 500,
			body: `{"status":"error","data":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, wantCode: 502},
		{name: "nested to the limit", code: 200,
			body:     `{"status":"success","data":{"alerts":[{"labels":{"team":"a"},"x":` + strings.Repeat("[", 9990) + strings.Repeat("]", 9990) + `}]}}`,
			wantCode: 200, wantBytes: `{"status":"success","data":{"alerts":[{"labels":{"team":"a"},"x":` + strings.Repeat("[", 9990) + strings.Repeat("]", 9990) + `}]}}`},
		{name: "no data", code: 200, body: `{"status":"success"}`, wantCode: 502},
		{name: "broken JSON", code: 200, body: `{"status":"success","data":{"alerts":[}`, wantCode: 502},
		{name: "broken data", code: 200, body: `{"status":"success","data":{"alerts":[{"labels":{"team":1}}]}}`, wantCode: 502},
		{name: "gzip for a client that asks", code: 200, gzip: true,
			body:     `{"status":"success","data":{"alerts":[` + big + `{"labels":{"team":"a"}}]}}`,
			wantCode: 200, want: `{"status":"success","data":{"alerts":[{"labels":{"team":"a"}}]}}`},
		{name: "gzip for a long answer", code: 200, gzip: true,
			body:     `{"status":"success","data":{"alerts":[` + big + `{"labels":{"team":"a"}}]},"warnings":["` + strings.Repeat("w", 2000) + `"]}`,
			wantCode: 200, want: `{"status":"success","data":{"alerts":[{"labels":{"team":"a"}}]},"warnings":["` + strings.Repeat("w", 2000) + `"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &rawUpstream{code: tc.code, body: tc.body}
			api := New(up, Options{})
			req := httptest.NewRequest("GET", "/api/v1/alerts", nil)
			if tc.gzip {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			rec := httptest.NewRecorder()
			api.Handle(rec, req, "/api/v1/alerts", enforcer(t, `{team="a"}`))
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantCode, rec.Body)
			}
			if up.got.Header.Get("Accept-Encoding") != "" {
				t.Errorf("asked the upstream for %q", up.got.Header.Get("Accept-Encoding"))
			}
			if tc.wantCode == 502 {
				return
			}
			body := rec.Body.Bytes()
			if rec.Header().Get("Content-Encoding") == "gzip" {
				body = decoded(t, rec.Header(), body)
			} else if n := rec.Header().Get("Content-Length"); n != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %s for %d bytes", n, len(body))
			}
			if tc.gzip && len(body) > 1024 && rec.Header().Get("Content-Encoding") != "gzip" {
				t.Errorf("not compressed for a gzip client")
			}
			if tc.wantBytes != "" && string(body) != tc.wantBytes {
				t.Errorf("body\n%s\nwant\n%s", body, tc.wantBytes)
			}
			if tc.want != "" {
				var g, w any
				if err := json.Unmarshal(body, &g); err != nil {
					t.Fatalf("%s: %v", body, err)
				}
				_ = json.Unmarshal([]byte(tc.want), &w)
				if !reflect.DeepEqual(g, w) {
					t.Errorf("body\n%s\nwant\n%s", body, tc.want)
				}
			}
		})
	}
}

// FuzzFilters holds the scanner to encoding/json on arbitrary input (both
// accept a JSON text or both refuse it), and the filters to the reference
// on the values it accepts: both fail, or both give the same data.
func FuzzFilters(f *testing.F) {
	for _, c := range filterCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, in string) {
		b := []byte(in)
		start := jsonscan.SkipSpace(b, 0)
		end, err := jsonscan.SkipValue(b, start)
		if err == nil && jsonscan.SkipSpace(b, end) != len(b) {
			err = jsonscan.SyntaxAt(b, jsonscan.SkipSpace(b, end), "after top-level value")
		}
		if valid := json.Valid(b); valid != (err == nil) {
			t.Fatalf("%q: encoding/json says valid %v, the scanner %v", in, valid, err)
		}
		if err == nil {
			checkAll(t, in)
		}
	})
}

// oldEnvelope is how the reference handled the envelope: decoded into
// apiResponse, data filtered, encoded again; status or data spelt otherwise
// refused, and an answer that is not a success passed on with its status
// and errors only.
func oldEnvelope(raw []byte, allow visibleFunc) (out []byte, env envelope, err error) {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) == nil {
		if err := oldSpelling(top, "status", "data"); err != nil {
			return nil, failed, err
		}
	}
	var ar apiResponse
	if err := json.Unmarshal(raw, &ar); err != nil {
		return nil, failed, &jsonscan.SyntaxError{Msg: err.Error()}
	}
	if ar.Status != "success" {
		if top == nil {
			return []byte("null"), failed, nil
		}
		kept := map[string]json.RawMessage{}
		for _, k := range []string{"status", "errorType", "error", "warnings", "infos"} {
			if v, ok := top[k]; ok {
				kept[k] = v
			}
		}
		out, err = json.Marshal(kept)
		return out, failed, err
	}
	data, err := oldAlertsData(ar.Data, onMap(allow))
	if err != nil {
		return nil, filtered, err
	}
	ar.Data = data
	out, err = json.Marshal(ar)
	return out, filtered, err
}

// known keeps the members of an answer the reference wrote.
func known(b []byte) any {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	out := map[string]any{}
	for k, v := range m {
		switch k {
		case "status", "data", "errorType", "error", "warnings", "infos":
			out[k] = v
		}
	}
	return out
}

func sameEnvelope(t *testing.T, in string) {
	t.Helper()
	raw := []byte(in)
	want, wenv, werr := oldEnvelope(raw, teamA)
	filter := func(out, b []byte) ([]byte, int, error) { return filterAlertsData(out, b, teamA) }
	got, genv, gerr := filterEnvelope(nil, raw, filter)
	if gerr == nil && genv == rebuilt {
		// Written anew by answerRebuilt: that is the answer to compare.
		got, gerr = rebuildEnvelope(raw, filter)
		genv = filtered
	}
	if (werr != nil) != (gerr != nil) || werr != nil && jsonscan.IsSyntax(werr) != jsonscan.IsSyntax(gerr) {
		t.Fatalf("%q: reference error %v, new error %v", in, werr, gerr)
	}
	if werr != nil {
		return
	}
	if wenv != genv {
		t.Fatalf("%q: reference %v, new %v", in, wenv, genv)
	}
	if !reflect.DeepEqual(known(want), known(got)) {
		t.Fatalf("%q:\nreference %s\nnew       %s", in, want, got)
	}
}

func TestFilterEnvelopeAgreesWithReference(t *testing.T) {
	for _, in := range []string{
		`{"status":"success","data":{"alerts":[{"labels":{"team":"a"}},{"labels":{"team":"b"}}]},"warnings":["w"]}`,
		`{"data":{"alerts":[{"labels":{"team":"b"}}]},"status":"success"}`,
		`{"status":"error","errorType":"x","error":"y","data":{"alerts":3}}`,
		`{"status":"success","data":{"alerts":3}}`, `{"status":"success"}`, `null`, ` null `, `[]`, `"x"`, `{}`,
		`{"status":"success","data":{"alerts":[}}`, `{"status":"error","data":{"alerts":[}}`,
		`{"status":"success","status":null,"data":{}}`, `{"status":1,"data":{}}`, `{"Status":"success","data":null}`,
		`{"status":"success","data":{}} x`, `{"status":"success","data":{"alerts":[{"labels":{"team":"a"}}]}}` + "\n",
		`{"status":"success","data":{"alerts":[{"labels":{"team":"b"}}]},"data":{"alerts":[{"labels":{"team":"a"}},{"labels":{"team":"b"}}]}}`,
		`{"status":"success","warnings":["a"],"warnings":["b"],"data":{"alerts":[{"labels":{"team":"b"}}]}}`,
		`{"status":"success","STATUS":"error","data":{"alerts":[]}}`, `{"status":"error","Data":{"alerts":[]}}`,
		`{"status":"error","error":"x","data":{"alerts":[{"labels":{"team":"b"}}]},"extra":1}`,
		`{"status":"success","data":{"alerts":[{"labels":{"team":"a"},"Labels":{"team":"b"}}]}}`,
		`{"status":"success","data":{"Alerts":[{"labels":{"team":"b"}}]}}`,
	} {
		sameEnvelope(t, in)
	}
}

func FuzzFilterEnvelope(f *testing.F) {
	for _, c := range filterCases {
		f.Add(`{"status":"success","data":` + c + `}`)
	}
	f.Fuzz(func(t *testing.T, in string) { sameEnvelope(t, in) })
}

// TestFiltersRefuseOtherSpellings: a key a filter decides on, spelt so that
// Go clients (which match struct fields without regard to case) read it and
// others do not, is refused; so is every such key of an endpoint.
func TestFiltersRefuseOtherSpellings(t *testing.T) {
	alerts := func(out, d []byte) ([]byte, int, error) { return filterAlertsData(out, d, teamA) }
	rules := func(out, d []byte) ([]byte, int, error) { return filterRulesData(out, d, teamA, nil) }
	targets := func(out, d []byte) ([]byte, int, error) { return filterTargetsData(out, d, teamA) }
	tmeta := func(out, d []byte) ([]byte, int, error) { return filterTargetsMetadataData(out, d, teamA, 0) }
	for _, tc := range []struct {
		name   string
		filter dataFilter
		data   string
	}{
		{"alerts", alerts, `{"Alerts":[{"labels":{"team":"b"}}]}`},
		{"alerts twice", alerts, `{"alerts":[],"ALERTS":[{"labels":{"team":"b"}}]}`},
		{"alert labels", alerts, `{"alerts":[{"labels":{"team":"a"},"Labels":{"team":"b"}}]}`},
		{"alert labels alone", alerts, `{"alerts":[{"Labels":{"team":"b"}}]}`},
		{"alert labels folded", alerts, `{"alerts":[{"labels":{"team":"a"},"LABEL\u017f":{"team":"b"}}]}`},
		{"groups", rules, `{"groups":[],"Groups":[{"rules":[{"labels":{"team":"b"}}]}]}`},
		{"group rules", rules, `{"groups":[{"rules":[{"labels":{"team":"a"}}],"Rules":[{"labels":{"team":"b"}}]}]}`},
		{"group name", rules, `{"groups":[{"name":"g","NAME":"h","rules":[{"labels":{"team":"a"}}]}]}`},
		{"rule labels", rules, `{"groups":[{"rules":[{"labels":{"team":"a"},"labelS":{"team":"b"}}]}]}`},
		{"rule name", rules, `{"groups":[{"rules":[{"type":"recording","name":"a","Name":"b","labels":{"team":"a"}}]}]}`},
		{"rule type", rules, `{"groups":[{"rules":[{"type":"recording","Type":"alerting","name":"a","labels":{"team":"a"}}]}]}`},
		{"rule alerts", rules, `{"groups":[{"rules":[{"labels":{"team":"a"},"alerts":[],"Alerts":[{"labels":{"team":"b"}}]}]}]}`},
		{"rule alert labels", rules, `{"groups":[{"rules":[{"labels":{"team":"a"},"alerts":[{"labels":{"team":"a"},"Labels":{"team":"b"}}]}]}]}`},
		{"page token", rules, `{"groups":[],"GroupNextToken":"x"}`},
		{"active targets", targets, `{"activeTargets":[],"ActiveTargets":[{"labels":{"team":"b"}}]}`},
		{"dropped targets", targets, `{"droppedtargets":[{"discoveredLabels":{"team":"b"}}]}`},
		{"dropped target counts", targets, `{"DroppedTargetCounts":{"p":3}}`},
		{"target labels", targets, `{"activeTargets":[{"labels":{"team":"a"},"LABELS":{"team":"b"}}]}`},
		{"target discovered labels", targets, `{"droppedTargets":[{"discoveredLabels":{"team":"a"},"DiscoveredLabels":{"team":"b"}}]}`},
		{"metadata target", tmeta, `[{"target":{"team":"a"},"Target":{"team":"b"},"metric":"m"}]`},
		{"metadata metric", tmeta, `[{"target":{"team":"a"},"metric":"m","Metric":"n"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := tc.filter(nil, []byte(tc.data))
			if err != jsonscan.ErrSpelling {
				t.Errorf("%s: error %v, output %s; want %v", tc.data, err, out, jsonscan.ErrSpelling)
			}
		})
	}
}

// decoded is body as sent with header h, inflated when gzipped.
func decoded(t *testing.T, h http.Header, body []byte) []byte {
	t.Helper()
	if h.Get("Content-Encoding") != "gzip" {
		return body
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
