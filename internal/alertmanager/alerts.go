package alertmanager

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// An alert Alertmanager returns refers to other objects by ID: the
// silences that mute it (status.silencedBy) and the fingerprints of the
// alerts that inhibit it (status.inhibitedBy). Those may be another
// tenant's, or an administrator's, so the references a tenant could not
// look up are removed; the alert's state ("suppressed") is left as it is,
// since it is a fact about the tenant's own alert. The answer then holds
// nothing but the tenant's alerts and IDs the tenant may read.

// Refs are the silences and alerts that visible alerts refer to.
type Refs struct {
	Silences []string // silence IDs
	Alerts   []string // alert fingerprints
}

// Visible says which referenced silences and alerts the tenant may see. A
// nil map is looked up as empty: nothing is visible.
type Visible struct {
	Silences map[string]bool
	Alerts   map[string]bool
}

// alert is one gettable alert: its bytes, and the fields enforcement reads.
type alert struct {
	raw         json.RawMessage
	labels      map[string]string
	fingerprint string
	silencedBy  []string
	inhibitedBy []string
}

func decodeAlert(raw json.RawMessage) (*alert, error) {
	var a struct {
		Labels      map[string]string `json:"labels"`
		Fingerprint string            `json:"fingerprint"`
		Status      struct {
			SilencedBy  []string `json:"silencedBy"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return &alert{raw: raw, labels: a.Labels, fingerprint: a.Fingerprint,
		silencedBy: a.Status.SilencedBy, inhibitedBy: a.Status.InhibitedBy}, nil
}

func (e *Enforcer) filterAlerts(raws []json.RawMessage) ([]*alert, error) {
	var out []*alert
	for _, raw := range raws {
		a, err := decodeAlert(raw)
		if err != nil {
			return nil, err
		}
		if e.Allows(a.labels) {
			out = append(out, a)
		}
	}
	return out, nil
}

func addRefs(r *Refs, as []*alert) {
	for _, a := range as {
		r.Silences = append(r.Silences, a.silencedBy...)
		r.Alerts = append(r.Alerts, a.inhibitedBy...)
	}
}

// encode returns the alert with the references v does not allow removed,
// and whether there were any.
func (a *alert) encode(v Visible) (json.RawMessage, bool, error) {
	sil := slices.DeleteFunc(slices.Clone(a.silencedBy), func(id string) bool { return !v.Silences[id] })
	inh := slices.DeleteFunc(slices.Clone(a.inhibitedBy), func(fp string) bool { return !v.Alerts[fp] })
	if len(sil) == len(a.silencedBy) && len(inh) == len(a.inhibitedBy) {
		return a.raw, false, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(a.raw, &fields); err != nil {
		return nil, false, err
	}
	var status map[string]json.RawMessage
	if err := json.Unmarshal(fields["status"], &status); err != nil {
		return nil, false, fmt.Errorf("alert status: %w", err)
	}
	status["silencedBy"], _ = json.Marshal(nonNil(sil))
	status["inhibitedBy"], _ = json.Marshal(nonNil(inh))
	var err error
	if fields["status"], err = json.Marshal(status); err != nil {
		return nil, false, err
	}
	raw, err := json.Marshal(fields)
	return raw, true, err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// encodeAlerts encodes alerts with encode, and says whether any changed.
func encodeAlerts(as []*alert, v Visible) ([]json.RawMessage, bool, error) {
	out := make([]json.RawMessage, len(as))
	changed := false
	for i, a := range as {
		raw, c, err := a.encode(v)
		if err != nil {
			return nil, false, err
		}
		out[i], changed = raw, changed || c
	}
	return out, changed, nil
}

// Alerts is a GET /api/v2/alerts answer with only the alerts a policy
// allows.
type Alerts struct{ alerts []*alert }

// FilterAlerts keeps the alerts of a GET /api/v2/alerts answer whose labels
// the policy allows.
func (e *Enforcer) FilterAlerts(body []byte) (*Alerts, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, err
	}
	as, err := e.filterAlerts(raws)
	if err != nil {
		return nil, err
	}
	return &Alerts{as}, nil
}

// Refs returns what the kept alerts refer to.
func (l *Alerts) Refs() Refs {
	var r Refs
	addRefs(&r, l.alerts)
	return r
}

// Encode returns the answer, without the references v does not allow.
func (l *Alerts) Encode(v Visible) ([]byte, error) {
	raws, _, err := encodeAlerts(l.alerts, v)
	if err != nil {
		return nil, err
	}
	return marshalRaw(raws), nil
}

// Fingerprints returns the fingerprints of the kept alerts.
func (l *Alerts) Fingerprints() map[string]bool {
	fps := make(map[string]bool, len(l.alerts))
	for _, a := range l.alerts {
		fps[a.fingerprint] = true
	}
	return fps
}

// group is one alert group: its other fields as they came, and its alerts.
type group struct {
	fields map[string]json.RawMessage
	alerts []*alert
	// whole is true when no alert of the group was dropped.
	whole bool
	raw   json.RawMessage
}

// AlertGroups is a GET /api/v2/alerts/groups answer with only the alerts a
// policy allows; groups left without alerts are dropped.
type AlertGroups struct{ groups []*group }

// FilterAlertGroups keeps, in each group of a GET /api/v2/alerts/groups
// answer, the alerts whose labels the policy allows, and the groups that
// keep at least one. A group's labels are the values of its alerts'
// group_by labels and its receiver is where those alerts are routed, so a
// group kept shows nothing its visible alerts do not.
func (e *Enforcer) FilterAlertGroups(body []byte) (*AlertGroups, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, err
	}
	var out []*group
	for _, raw := range raws {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, err
		}
		var alerts []json.RawMessage
		if err := json.Unmarshal(fields["alerts"], &alerts); err != nil {
			return nil, fmt.Errorf("alert group: %w", err)
		}
		kept, err := e.filterAlerts(alerts)
		if err != nil {
			return nil, err
		}
		if len(kept) == 0 {
			continue
		}
		out = append(out, &group{fields: fields, alerts: kept, whole: len(kept) == len(alerts), raw: raw})
	}
	return &AlertGroups{out}, nil
}

// Refs returns what the kept alerts refer to.
func (l *AlertGroups) Refs() Refs {
	var r Refs
	for _, g := range l.groups {
		addRefs(&r, g.alerts)
	}
	return r
}

// Encode returns the answer, without the references v does not allow.
func (l *AlertGroups) Encode(v Visible) ([]byte, error) {
	out := make([]json.RawMessage, len(l.groups))
	for i, g := range l.groups {
		raws, changed, err := encodeAlerts(g.alerts, v)
		if err != nil {
			return nil, err
		}
		if g.whole && !changed {
			out[i] = g.raw
			continue
		}
		fields := maps.Clone(g.fields)
		fields["alerts"] = marshalRaw(raws)
		if out[i], err = json.Marshal(fields); err != nil {
			return nil, err
		}
	}
	return marshalRaw(out), nil
}

// PostableAlert is one alert of POST /api/v2/alerts as promgate forwards
// it: rebuilt from the fields it read, so that Alertmanager reads the
// labels that were checked.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     string            `json:"startsAt,omitempty"`
	EndsAt       string            `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// CheckPostableAlerts reads the body of POST /api/v2/alerts and checks
// that the policy allows every alert's labels. One alert outside the policy
// refuses them all (ErrNotAllowed): Alertmanager would otherwise store the
// others, and a client retrying the batch could not tell which went in.
func (e *Enforcer) CheckPostableAlerts(body []byte) ([]PostableAlert, error) {
	if t := strings.TrimSpace(string(body)); t == "" || t == "null" {
		return nil, errRequired("alerts")
	}
	var alerts []*PostableAlert
	if err := json.Unmarshal(body, &alerts); err != nil {
		return nil, errParse("alerts", err)
	}
	out := make([]PostableAlert, len(alerts))
	for i, al := range alerts {
		if al == nil || al.Labels == nil {
			return nil, errRequired(fmt.Sprintf("%d.labels", i))
		}
		if !e.Allows(al.Labels) {
			return nil, fmt.Errorf("%w: alert %d with labels %s is not allowed by the policy %s",
				ErrNotAllowed, i, formatLabels(al.Labels), e.describe())
		}
		out[i] = *al
	}
	return out, nil
}

func formatLabels(ls map[string]string) string {
	ms := make([]string, 0, len(ls))
	for k, v := range ls {
		ms = append(ms, k+"="+strconv.Quote(v))
	}
	slices.Sort(ms)
	return "{" + strings.Join(ms, ", ") + "}"
}
