package alertmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

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
// in one pass over their text, declared with the objects they read
// (jsonscan.Object): an alert, its status and a group, by the keys promgate
// decides on. An object goes out byte for byte unless one of those keys is
// given twice: clients matching keys exactly (JavaScript, Python) read the
// last, Go's encoding/json into a struct merges them, so promgate decides
// on the last and writes the object anew with each key once. A decided key
// spelt otherwise ("Labels", which encoding/json reads and other clients do
// not) refuses the answer (jsonscan.ErrSpelling). alerts_test.go holds the
// filters to a reference built on encoding/json.
var (
	alertObject  = jsonscan.NewObject("labels", "fingerprint", "status")
	statusObject = jsonscan.NewObject("silencedBy", "inhibitedBy")
	// A group's labels and receiver are not decided on (they come from
	// its alerts), but say what the group is: given once, as its alerts.
	groupObject = jsonscan.NewObject("alerts", "labels", "receiver")
)

// The fields of alertObject, statusObject and groupObject.
const (
	alertLabels = iota
	alertFingerprint
	alertStatus
)

const (
	statusSilencedBy = iota
	statusInhibitedBy
)

const groupAlerts = 0

// alert is a gettable alert of the answer: its bytes, and what enforcement
// reads.
type alert struct {
	raw []byte
	// fp is the fingerprint as written, quotes included (nil: none),
	// decoded only when asked for.
	fp                      []byte
	fpEscaped               bool
	silencedBy, inhibitedBy []string
	// dup is a decided key of the alert or of its status given twice,
	// statusDup one of its status: written anew, each key once.
	dup, statusDup bool
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
	// labels is the start of the alert's label set (-1: none), keys its
	// members.
	labels int
	keys   []jsonscan.Span
	// Walks of the objects being read, one per level.
	groupW, alertW, statusW jsonscan.Walk
}

// scans keep alertScans' scratch space from one answer to the next.
var scans = sync.Pool{New: func() any { return &alertScan{lset: map[string]string{}} }}

// maxPooledSpans bounds the scratch space kept: a label set or an object
// with more members is rare.
const maxPooledSpans = 256

func (e *Enforcer) newScan() *alertScan {
	s := scans.Get().(*alertScan)
	s.e, s.names = e, s.names[:0]
	for _, sel := range e.selectors {
		for _, m := range sel {
			if !slices.Contains(s.names, m.Name) {
				s.names = append(s.names, m.Name)
			}
		}
	}
	return s
}

// release returns the scan to the pool.
func (s *alertScan) release() {
	s.e = nil
	clear(s.lset)
	for _, sp := range []*[]jsonscan.Span{&s.keys, &s.groupW.Spans, &s.alertW.Spans, &s.statusW.Spans} {
		if cap(*sp) > maxPooledSpans {
			*sp = nil
		}
	}
	scans.Put(s)
}

// alert reads the alert at b[vs], and reports whether the policy allows it.
func (s *alertScan) alert(b []byte, vs int) (a alert, end int, allowed bool, err error) {
	s.labels = -1
	switch b[vs] {
	case 'n':
		// encoding/json reads null as an alert without labels.
		end, err = jsonscan.SkipLiteral(b, vs, "null")
	case '{':
		end, err = alertObject.Walk(b, vs, &s.alertW, func(field, at int) (int, error) {
			switch field {
			case alertLabels:
				s.labels = -1
				e, present, _, err := jsonscan.ScanLabels(b, at, &s.keys)
				if present {
					s.labels = at
				}
				return e, err
			case alertFingerprint:
				a.fp = nil
				switch b[at] {
				case '"':
					e, esc, err := jsonscan.SkipString(b, at)
					a.fp, a.fpEscaped = b[at:e], esc
					return e, err
				case 'n':
					return jsonscan.SkipLiteral(b, at, "null")
				}
				return typeError(b, at, "a fingerprint")
			}
			return s.readStatus(b, at, &a)
		})
		a.dup = s.alertW.Dup || a.statusDup
	default:
		end, err = typeError(b, vs, "an alert")
	}
	if err != nil {
		return a, end, false, err
	}
	a.raw = b[vs:end]
	clear(s.lset)
	if s.labels >= 0 {
		for _, name := range s.names {
			if v, ok := jsonscan.LabelValue(b, s.keys, name); ok {
				s.lset[name] = v
			}
		}
	}
	return a, end, s.e.Allows(s.lset), nil
}

// readStatus reads a status into a, replacing an earlier one: null is a
// status without references.
func (s *alertScan) readStatus(b []byte, vs int, a *alert) (int, error) {
	a.silencedBy, a.inhibitedBy, a.statusDup = nil, nil, false
	switch b[vs] {
	case 'n':
		return jsonscan.SkipLiteral(b, vs, "null")
	case '{':
	default:
		return typeError(b, vs, "an alert status")
	}
	end, err := statusObject.Walk(b, vs, &s.statusW, func(field, at int) (e int, err error) {
		if field == statusSilencedBy {
			a.silencedBy, e, err = readIDs(b, at)
		} else {
			a.inhibitedBy, e, err = readIDs(b, at)
		}
		return e, err
	})
	a.statusDup = s.statusW.Dup
	return end, err
}

// readIDs reads the list of IDs at b[vs]; null is none, and an element
// null the empty ID, as encoding/json decodes them into a new []string.
func readIDs(b []byte, vs int) ([]string, int, error) {
	switch b[vs] {
	case 'n':
		end, err := jsonscan.SkipLiteral(b, vs, "null")
		return nil, end, err
	case '[':
	default:
		end, err := typeError(b, vs, "a list of IDs")
		return nil, end, err
	}
	ids := []string{}
	end, err := jsonscan.WalkArray(b, vs, func(s int) (int, error) {
		if b[s] != '"' && b[s] != 'n' {
			return typeError(b, s, "an ID")
		}
		id, e, err := jsonscan.StringAt(b, s)
		ids = append(ids, id)
		return e, err
	})
	return ids, end, err
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

// anew reports whether the alert goes out written anew.
func (a *alert) anew(v Visible) bool { return a.dup || a.hides(v) }

// encoder is scratch space for writing alerts anew.
type encoder struct {
	v             Visible
	alert, status jsonscan.Walk
}

func skipMember(b []byte) func(int, int) (int, error) {
	return func(_, vs int) (int, error) { return jsonscan.SkipValue(b, vs) }
}

// encode appends the alert: as it came, or with each key once (the last,
// as clients read them) and the references v does not allow removed.
func (c *encoder) encode(out []byte, a *alert) ([]byte, error) {
	hides := a.hides(c.v)
	if !hides && !a.dup {
		return append(out, a.raw...), nil
	}
	// Read when filtered: no error but of a broken invariant.
	raw := a.raw
	status := -1
	_, err := alertObject.Walk(raw, 0, &c.alert, func(field, vs int) (int, error) {
		if field == alertStatus {
			status = vs
		}
		return jsonscan.SkipValue(raw, vs)
	})
	if err != nil {
		return out, err
	}
	if !hides && !a.statusDup {
		return jsonscan.WriteObject(out, raw, c.alert.Spans, nil, nil)
	}
	// The status is written anew: the last one, an object (it has the
	// references or a key given twice). The members but the two lists go
	// out as they came, each key once.
	if status < 0 || raw[status] != '{' {
		return out, errors.New("alert status to write anew is not an object")
	}
	if _, err := statusObject.Walk(raw, status, &c.status, skipMember(raw)); err != nil {
		return out, err
	}
	var drop func(string) bool
	var add []jsonscan.Member
	if hides {
		sil := slices.DeleteFunc(slices.Clone(a.silencedBy), func(id string) bool { return !c.v.Silences[id] })
		inh := slices.DeleteFunc(slices.Clone(a.inhibitedBy), func(fp string) bool { return !c.v.Alerts[fp] })
		s, _ := json.Marshal(nonNil(sil))
		i, _ := json.Marshal(nonNil(inh))
		drop = jsonscan.DropKeys("silencedBy", "inhibitedBy")
		add = []jsonscan.Member{{Key: "silencedBy", Value: s}, {Key: "inhibitedBy", Value: i}}
	}
	st, err := jsonscan.WriteObject(nil, raw, c.status.Spans, drop, add)
	if err != nil {
		return out, err
	}
	return jsonscan.WriteObject(out, raw, c.alert.Spans, jsonscan.DropKeys("status"), []jsonscan.Member{{Key: "status", Value: st}})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// encodeAlerts appends the alerts as a list, each encoded with encode.
func (c *encoder) encodeAlerts(out []byte, as []alert) ([]byte, error) {
	out = append(out, '[')
	for i := range as {
		if i > 0 {
			out = append(out, ',')
		}
		var err error
		if out, err = c.encode(out, &as[i]); err != nil {
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
	defer s.release()
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
	c := &encoder{v: v}
	out, err := c.encodeAlerts(make([]byte, 0, size(l.alerts)), l.alerts)
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
	// whole is true when no alert of the group was dropped and its
	// decided keys are given once: raw can go out as it came.
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
func (e *Enforcer) FilterAlertGroups(body []byte) (*AlertGroups, error) {
	s := e.newScan()
	defer s.release()
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
			from := len(l.alerts)
			n := 0
			ge, err := groupObject.Walk(body, gs, &s.groupW, func(field, vs int) (end int, err error) {
				if field != groupAlerts {
					return jsonscan.SkipValue(body, vs)
				}
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
			switch {
			case err != nil:
				return ge, err
			case !s.groupW.Found(groupAlerts):
				return ge, errNoAlerts
			case len(l.alerts) > from:
				mfrom := len(l.members)
				l.members = append(l.members, s.groupW.Spans...)
				l.groups = append(l.groups, group{raw: body[gs:ge], from: from, to: len(l.alerts),
					mfrom: mfrom, mto: len(l.members), whole: n == len(l.alerts)-from && !s.groupW.Dup})
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
	c := &encoder{v: v}
	whole := make([]bool, len(l.groups))
	n := 2
	for i, g := range l.groups {
		as := l.alerts[g.from:g.to]
		whole[i] = g.whole && !slices.ContainsFunc(as, func(a alert) bool { return a.anew(v) })
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
		if out, err = c.encodeAlerts(out, l.alerts[g.from:g.to]); err != nil {
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
