package alertmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/promgate/promgate/internal/jsonscan"
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

// The answers of GET /api/v2/alerts and /api/v2/alerts/groups are filtered
// in one pass over their text (internal/jsonscan): a kept alert goes out
// byte for byte, and only what decides is decoded, as encoding/json decoded
// it into the struct promgate read before (alerts_test.go holds the filter
// to that implementation): keys matched without regard to case, a label
// set or a status given twice merged, null read as nothing.

// The keys encoding/json read into the reference's structs (matched
// without regard to case).
var (
	alertFields  = jsonscan.NewFields("labels", "fingerprint", "status")
	statusFields = jsonscan.NewFields("silencedBy", "inhibitedBy")
	// The keys an alert or group rewritten must spell as Alertmanager does.
	statusField = jsonscan.NewFields("status")
	alertsField = jsonscan.NewFields("alerts")
)

// alert is a gettable alert of the answer: its bytes, and what enforcement
// reads.
type alert struct {
	raw []byte
	// fp is the fingerprint as written, quotes included (nil: none),
	// decoded only when asked for.
	fp                      []byte
	fpEscaped               bool
	silencedBy, inhibitedBy []string
}

func (a *alert) fingerprint() string {
	if a.fp == nil {
		return ""
	}
	s, _ := jsonscan.StringValue(a.fp, 0, len(a.fp), a.fpEscaped)
	return s
}

// alertScan decides on the alerts of one answer, with scratch space.
type alertScan struct {
	e *Enforcer
	// names are the labels the policy reads, lset their values for the
	// alert at hand: Allows reads no others.
	names []string
	lset  map[string]string
	// labels are the starts of the alert's label sets since the last null:
	// encoding/json merges a set given twice into one map.
	labels []int
	keys   []jsonscan.Span
}

func (e *Enforcer) newScan() *alertScan {
	s := &alertScan{e: e, lset: map[string]string{}}
	for _, sel := range e.selectors {
		for _, m := range sel {
			if !slices.Contains(s.names, m.Name) {
				s.names = append(s.names, m.Name)
			}
		}
	}
	return s
}

// alert reads the alert at b[vs], and reports whether the policy allows it.
func (s *alertScan) alert(b []byte, vs int) (a alert, end int, allowed bool, err error) {
	s.labels = s.labels[:0]
	switch b[vs] {
	case 'n':
		// encoding/json reads null as an alert without labels.
		end, err = jsonscan.SkipLiteral(b, vs, "null")
	case '{':
		end, err = jsonscan.WalkObject(b, vs, func(ks, ke int, escaped bool, at int) (int, error) {
			switch f, _ := alertFields.Match(b, ks, ke, escaped); f {
			case 0: // labels
				e, present, _, err := jsonscan.ScanLabels(b, at, &s.keys)
				if present {
					s.labels = append(s.labels, at)
				} else {
					s.labels = s.labels[:0]
				}
				return e, err
			case 1: // fingerprint
				switch b[at] {
				case '"':
					e, esc, err := jsonscan.SkipString(b, at)
					a.fp, a.fpEscaped = b[at:e], esc
					return e, err
				case 'n': // leaves the string as it was
					return jsonscan.SkipLiteral(b, at, "null")
				}
				return typeError(b, at, "a fingerprint")
			case 2: // status
				return readStatus(b, at, &a)
			}
			return jsonscan.SkipValue(b, at)
		})
	default:
		end, err = typeError(b, vs, "an alert")
	}
	if err != nil {
		return a, end, false, err
	}
	a.raw = b[vs:end]
	clear(s.lset)
	for _, name := range s.names {
		for i := len(s.labels) - 1; i >= 0; i-- {
			if v, ok := jsonscan.StringMember(b, s.labels[i], name); ok {
				s.lset[name] = v
				break
			}
		}
	}
	return a, end, s.e.Allows(s.lset), nil
}

// readStatus reads a status into a, as encoding/json decodes it into the
// struct it may already hold (a status given twice): null changes nothing.
func readStatus(b []byte, vs int, a *alert) (int, error) {
	switch b[vs] {
	case 'n':
		return jsonscan.SkipLiteral(b, vs, "null")
	case '{':
	default:
		return typeError(b, vs, "an alert status")
	}
	return jsonscan.WalkObject(b, vs, func(ks, ke int, escaped bool, vs int) (e int, err error) {
		switch f, _ := statusFields.Match(b, ks, ke, escaped); f {
		case 0: // silencedBy
			a.silencedBy, e, err = readIDs(b, vs, a.silencedBy)
		case 1: // inhibitedBy
			a.inhibitedBy, e, err = readIDs(b, vs, a.inhibitedBy)
		default:
			e, err = jsonscan.SkipValue(b, vs)
		}
		return e, err
	})
}

// readIDs reads the list of IDs at b[vs] as encoding/json decodes it into
// the []string it may already hold (ids, of a status given twice): null or
// [] drops it, and an element null keeps the string that was at its index.
func readIDs(b []byte, vs int, ids []string) ([]string, int, error) {
	switch b[vs] {
	case 'n':
		end, err := jsonscan.SkipLiteral(b, vs, "null")
		return nil, end, err
	case '[':
	default:
		end, err := typeError(b, vs, "a list of IDs")
		return ids, end, err
	}
	n := 0
	end, err := jsonscan.WalkArray(b, vs, func(s int) (int, error) {
		switch {
		case n < len(ids):
		case n < cap(ids):
			ids = ids[:n+1]
		default:
			ids = append(ids, "")
		}
		n++
		if b[s] == 'n' {
			return jsonscan.SkipLiteral(b, s, "null")
		}
		if b[s] != '"' {
			return typeError(b, s, "an ID")
		}
		var e int
		var err error
		ids[n-1], e, err = jsonscan.StringAt(b, s)
		return e, err
	})
	if n == 0 {
		return []string{}, end, err
	}
	return ids[:n], end, err
}

// typeError skips the value at b[vs] and returns the error of shape for it.
func typeError(b []byte, vs int, into string) (int, error) {
	end, err := jsonscan.SkipValue(b, vs)
	if err == nil {
		err = jsonscan.TypeError(b[vs], into)
	}
	return end, err
}

// alerts appends to out the alerts of the list at b[vs] that the policy
// allows, and returns the list's end and its length.
func (s *alertScan) alerts(b []byte, vs int, out *[]alert) (end, n int, err error) {
	end, err = jsonscan.WalkArray(b, vs, func(vs int) (int, error) {
		n++
		a, e, ok, err := s.alert(b, vs)
		if ok {
			*out = append(*out, a)
		}
		return e, err
	})
	return end, n, err
}

// readAnswer reads an answer that is a list (null: an empty one) with read,
// as one JSON text.
func readAnswer(body []byte, what string, read func(vs int) (int, error)) error {
	start := jsonscan.SkipSpace(body, 0)
	if start >= len(body) {
		return jsonscan.ErrEnd
	}
	var end int
	var err error
	switch body[start] {
	case 'n':
		end, err = jsonscan.SkipLiteral(body, start, "null")
	case '[':
		end, err = read(start)
	default:
		end, err = typeError(body, start, what)
	}
	if err == nil && jsonscan.SkipSpace(body, end) != len(body) {
		err = jsonscan.SyntaxAt(body, jsonscan.SkipSpace(body, end), "after top-level value")
	}
	return err
}

func addRefs(r *Refs, as []alert) {
	for _, a := range as {
		r.Silences = append(r.Silences, a.silencedBy...)
		r.Alerts = append(r.Alerts, a.inhibitedBy...)
	}
}

// hides reports whether v hides a reference of the alert.
func (a *alert) hides(v Visible) bool {
	for _, id := range a.silencedBy {
		if !v.Silences[id] {
			return true
		}
	}
	for _, fp := range a.inhibitedBy {
		if !v.Alerts[fp] {
			return true
		}
	}
	return false
}

// errSpelling is an alert or group that encoding/json reads under keys
// spelt otherwise than Alertmanager spells them, where promgate would have
// to rewrite it: what is under the other spelling could not be checked.
var errSpelling = errors.New("status, silencedBy, inhibitedBy or alerts spelt otherwise than by Alertmanager")

// encode appends the alert, with the references v does not allow removed.
func (a *alert) encode(out []byte, v Visible) ([]byte, error) {
	if !a.hides(v) {
		return append(out, a.raw...), nil
	}
	sil := slices.DeleteFunc(slices.Clone(a.silencedBy), func(id string) bool { return !v.Silences[id] })
	inh := slices.DeleteFunc(slices.Clone(a.inhibitedBy), func(fp string) bool { return !v.Alerts[fp] })
	// The members but status go out as they came, each key once (the
	// last, as encoding/json reads them); so do those of the last status,
	// but the two lists.
	raw := a.raw
	ms, status, err := members(raw, 0, statusField)
	if err != nil {
		return out, err
	}
	if status < 0 || raw[ms[status].VS] != '{' {
		// The last status is null: the lists came from an earlier one,
		// which encoding/json clients would not read.
		return out, errSpelling
	}
	sms, _, err := members(raw, ms[status].VS, statusFields)
	if err != nil {
		return out, err
	}
	s, _ := json.Marshal(nonNil(sil))
	i, _ := json.Marshal(nonNil(inh))
	st, err := jsonscan.WriteObject(nil, raw, sms, jsonscan.DropKeys("silencedBy", "inhibitedBy"),
		[]jsonscan.Member{{Key: "silencedBy", Value: s}, {Key: "inhibitedBy", Value: i}})
	if err != nil {
		return out, err
	}
	return jsonscan.WriteObject(out, raw, ms, jsonscan.DropKeys("status"), []jsonscan.Member{{Key: "status", Value: st}})
}

// members returns the members of the object at b[vs] and the index of the
// last one that is the first of fields (-1: none). A key that encoding/json
// reads as one of fields but spelt otherwise is errSpelling.
func members(b []byte, vs int, fields *jsonscan.Fields) ([]jsonscan.Span, int, error) {
	var ms []jsonscan.Span
	last := -1
	_, err := jsonscan.WalkObject(b, vs, func(ks, ke int, escaped bool, vs int) (int, error) {
		switch f, exact := fields.Match(b, ks, ke, escaped); {
		case f >= 0 && !exact:
			return vs, errSpelling
		case f == 0:
			last = len(ms)
		}
		e, err := jsonscan.SkipValue(b, vs)
		ms = append(ms, jsonscan.Span{KS: ks, KE: ke, VS: vs, VE: e, Escaped: escaped})
		return e, err
	})
	return ms, last, err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// encodeAlerts appends the alerts as a list, each encoded with encode.
func encodeAlerts(out []byte, as []alert, v Visible) ([]byte, error) {
	out = append(out, '[')
	for i := range as {
		if i > 0 {
			out = append(out, ',')
		}
		var err error
		if out, err = as[i].encode(out, v); err != nil {
			return out, err
		}
	}
	return append(out, ']'), nil
}

// size is the length of the alerts as they came, in a list.
func size(as []alert) int {
	n := 2
	for _, a := range as {
		n += len(a.raw) + 1
	}
	return n
}

// Alerts is a GET /api/v2/alerts answer with only the alerts a policy
// allows. It refers to the answer's bytes, which must not change.
type Alerts struct{ alerts []alert }

// FilterAlerts keeps the alerts of a GET /api/v2/alerts answer whose labels
// the policy allows.
func (e *Enforcer) FilterAlerts(body []byte) (*Alerts, error) {
	s := e.newScan()
	var as []alert
	err := readAnswer(body, "a list of alerts", func(vs int) (int, error) {
		end, _, err := s.alerts(body, vs, &as)
		return end, err
	})
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
	out, err := encodeAlerts(make([]byte, 0, size(l.alerts)), l.alerts, v)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Fingerprints returns the fingerprints of the kept alerts.
func (l *Alerts) Fingerprints() map[string]bool {
	fps := make(map[string]bool, len(l.alerts))
	for i := range l.alerts {
		fps[l.alerts[i].fingerprint()] = true
	}
	return fps
}

// group is one alert group of the answer: its bytes, its members and its
// alerts kept.
type group struct {
	raw        []byte
	from, to   int // its alerts in AlertGroups.alerts
	mfrom, mto int // its members in AlertGroups.members
	// whole is true when no alert of the group was dropped and its alerts
	// are given once: raw can go out as it came.
	whole bool
}

// AlertGroups is a GET /api/v2/alerts/groups answer with only the alerts a
// policy allows; groups left without alerts are dropped. It refers to the
// answer's bytes, which must not change.
type AlertGroups struct {
	body    []byte
	groups  []group
	alerts  []alert
	members []jsonscan.Span
}

var errNoAlerts = errors.New("alert group without alerts")

// FilterAlertGroups keeps, in each group of a GET /api/v2/alerts/groups
// answer, the alerts whose labels the policy allows, and the groups that
// keep at least one. A group's labels are the values of its alerts'
// group_by labels and its receiver is where those alerts are routed, so a
// group kept shows nothing its visible alerts do not.
//
// A group is read as encoding/json decoded it into a map: only the last
// "alerts" counts. An "alerts" spelt otherwise is refused (errSpelling):
// the alerts under it would go out unchecked.
func (e *Enforcer) FilterAlertGroups(body []byte) (*AlertGroups, error) {
	s := e.newScan()
	l := &AlertGroups{body: body}
	err := readAnswer(body, "a list of alert groups", func(vs int) (int, error) {
		return jsonscan.WalkArray(body, vs, func(gs int) (int, error) {
			switch body[gs] {
			case '{':
			case 'n':
				e, err := jsonscan.SkipLiteral(body, gs, "null")
				if err == nil {
					err = errNoAlerts
				}
				return e, err
			default:
				return typeError(body, gs, "an alert group")
			}
			from, mfrom := len(l.alerts), len(l.members)
			n := 0
			found, dup := false, false
			var alertsErr error
			ge, err := jsonscan.WalkObject(body, gs, func(ks, ke int, escaped bool, vs int) (e int, err error) {
				switch f, exact := alertsField.Match(body, ks, ke, escaped); {
				case f == 0 && exact:
					dup, found = found, true
					e, err = jsonscan.LastWins(body, vs, &alertsErr, func() (end int, err error) {
						l.alerts, n = l.alerts[:from], 0
						switch body[vs] {
						case 'n':
							return jsonscan.SkipLiteral(body, vs, "null")
						case '[':
							end, n, err = s.alerts(body, vs, &l.alerts)
							return end, err
						}
						return typeError(body, vs, "the alerts of a group")
					})
				case f == 0:
					return vs, errSpelling
				default:
					e, err = jsonscan.SkipValue(body, vs)
				}
				l.members = append(l.members, jsonscan.Span{KS: ks, KE: ke, VS: vs, VE: e, Escaped: escaped})
				return e, err
			})
			switch {
			case err != nil:
				return ge, err
			case alertsErr != nil:
				return ge, alertsErr
			case !found:
				return ge, errNoAlerts
			case len(l.alerts) == from:
				l.members = l.members[:mfrom]
			default:
				l.groups = append(l.groups, group{raw: body[gs:ge], from: from, to: len(l.alerts),
					mfrom: mfrom, mto: len(l.members), whole: n == len(l.alerts)-from && !dup})
			}
			return ge, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Refs returns what the kept alerts refer to.
func (l *AlertGroups) Refs() Refs {
	var r Refs
	addRefs(&r, l.alerts)
	return r
}

// Encode returns the answer, without the references v does not allow.
func (l *AlertGroups) Encode(v Visible) ([]byte, error) {
	whole := make([]bool, len(l.groups))
	n := 2
	for i, g := range l.groups {
		as := l.alerts[g.from:g.to]
		whole[i] = g.whole && !slices.ContainsFunc(as, func(a alert) bool { return a.hides(v) })
		if whole[i] {
			n += len(g.raw) + 1
			continue
		}
		n += size(as) + 12
		for _, m := range l.members[g.mfrom:g.mto] {
			if !jsonscan.KeyIs(l.body, m.KS, m.KE, m.Escaped, "alerts") {
				n += m.VE - m.KS + 1
			}
		}
	}
	out := make([]byte, 0, n)
	out = append(out, '[')
	for i, g := range l.groups {
		if i > 0 {
			out = append(out, ',')
		}
		if whole[i] {
			out = append(out, g.raw...)
			continue
		}
		// The other members as they came, each key once; then the
		// alerts kept.
		out = append(out, '{')
		var n int
		var err error
		if out, n, err = jsonscan.WriteMembers(out, l.body, l.members[g.mfrom:g.mto], jsonscan.DropKeys("alerts"), 0); err != nil {
			return nil, err
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, `"alerts":`...)
		if out, err = encodeAlerts(out, l.alerts[g.from:g.to], v); err != nil {
			return nil, err
		}
		out = append(out, '}')
	}
	return append(out, ']'), nil
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
