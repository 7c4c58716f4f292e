package prometheus

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"github.com/promgate/promgate/internal/jsonscan"
)

// The data filters of /api/v1/alerts, /rules, /targets and
// /targets/metadata. Each walks the upstream's data once; an object the
// tenant may see is copied as it is, unless encoding/json would have read
// it otherwise than it is written (a key given twice, a null label value):
// such an object is written anew, as the implementation these replace
// (which decoded and encoded every object) wrote it. filter_test.go holds
// them to that implementation. Label sets are not decoded: the policy reads
// the few labels it needs from the answer's text (see labelsAt).

// errMissing is a member that must be there and is not (encoding/json then
// reads nothing, and says so in the same words).
var errMissing = errors.New("unexpected end of JSON input")

// firstError returns the first error of errs that is not nil.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// labelsAt is a label set as the answer writes it, read on demand: the
// object at b[at], checked by jsonscan.ScanLabels (at < 0: no label set).
// metric, when set, stands for __name__ (the series of a recording rule,
// of a target's metric).
type labelsAt struct {
	b         []byte
	at, end   int
	members   []jsonscan.Span // the set's members, from ScanLabels
	metric    string
	hasMetric bool
}

func (l *labelsAt) set(b []byte, at, end int) {
	l.b, l.at, l.end, l.metric, l.hasMetric = b, at, end, "", false
	if at < 0 {
		l.members = l.members[:0]
	}
}

// get returns the value of a label ("" when the set does not have it),
// the last of several with the name, as encoding/json decodes them.
func (l *labelsAt) get(name string) string {
	if l.hasMetric && name == "__name__" {
		return l.metric
	}
	if l.at < 0 || l.b[l.at] != '{' {
		return ""
	}
	v, _ := jsonscan.LabelValue(l.b, l.members, name)
	return v
}

// decode returns the label set as encoding/json decodes it (nil when
// there is none).
func (l *labelsAt) decode() labelSet {
	if l.at < 0 || l.b[l.at] != '{' {
		return nil
	}
	var m labelSet
	_ = json.Unmarshal(l.b[l.at:l.end], &m) // checked by jsonscan.ScanLabels
	if m == nil {
		m = labelSet{}
	}
	return m
}

// visibleFunc is a policy over a label set read through get.
type visibleFunc = func(get func(name string) string) bool

// dataFilter appends to out what a tenant may see of the data b starts
// with, and returns where that data ends in b.
type dataFilter func(out, b []byte) (o []byte, end int, err error)

// labelFilter carries the policy and scratch space through one filtering.
type labelFilter struct {
	allow visibleFunc
	// The label sets being decided on, and their getters (bound once).
	labels, rule, disc          labelsAt
	getLabels, getRule, getDisc func(string) string
	spans, ruleSpans, top       []jsonscan.Span // members of the objects being decided on
	rules, alerts               []byte          // scratch for a group's rules, a rule's alerts
	lists                       [2][]byte
}

var labelFilters = sync.Pool{New: func() any {
	f := &labelFilter{}
	f.getLabels, f.getRule, f.getDisc = f.labels.get, f.rule.get, f.disc.get
	return f
}}

func newLabelFilter(allow visibleFunc) *labelFilter {
	f := labelFilters.Get().(*labelFilter)
	f.allow = allow
	return f
}

// release returns the filter to the pool, without holding on to the
// answer or to large buffers.
func (f *labelFilter) release() {
	f.allow = nil
	f.labels.set(nil, -1, -1)
	f.rule.set(nil, -1, -1)
	f.disc.set(nil, -1, -1)
	for _, b := range []*[]byte{&f.rules, &f.alerts, &f.lists[0], &f.lists[1]} {
		if cap(*b) > maxPooledBuffer {
			*b = nil
		}
	}
	labelFilters.Put(f)
}

// filterArray appends to out the array starting at b[vs] (or [] for null)
// with the elements keep accepts; keep appends an element it accepts and
// returns the element's end. same reports that every element was kept as
// it was written.
func filterArray(out, b []byte, vs int, keep func(out []byte, vs int) (o []byte, ve int, kept bool, err error)) (o []byte, end int, same bool, err error) {
	switch b[vs] {
	case 'n':
		end, err = jsonscan.SkipLiteral(b, vs, "null")
		return append(out, "[]"...), end, true, err
	case '[':
	default:
		end, err = jsonscan.SkipValue(b, vs)
		if err == nil {
			err = jsonscan.TypeError(b[vs], "an array")
		}
		return out, end, false, err
	}
	out = append(out, '[')
	same = true
	n := 0
	end, err = jsonscan.WalkArray(b, vs, func(s int) (int, error) {
		mark := len(out)
		if n > 0 {
			out = append(out, ',')
		}
		start := len(out)
		var e int
		var kept bool
		var err error
		if out, e, kept, err = keep(out, s); err != nil {
			return e, err
		}
		switch {
		case !kept:
			out = out[:mark]
			same = false
		case len(out)-start != e-s || !bytes.Equal(out[start:], b[s:e]):
			n++
			same = false
		default:
			n++
		}
		return e, nil
	})
	return append(out, ']'), end, same, err
}

// nullElement handles an element that is null: encoding/json decodes it as
// an object without labels, written {}.
func (f *labelFilter) nullElement(out, b []byte, vs int) ([]byte, int, bool, error) {
	end, err := jsonscan.SkipLiteral(b, vs, "null")
	f.labels.set(b, -1, -1)
	if err != nil || !f.allow(f.getLabels) {
		return out, end, false, err
	}
	return append(out, "{}"...), end, true, nil
}

// notObject is the error for an element that is neither object nor null.
func notObject(b []byte, vs int, what string) ([]byte, int, bool, error) {
	end, err := jsonscan.SkipValue(b, vs)
	if err == nil {
		err = jsonscan.TypeError(b[vs], what)
	}
	return nil, end, false, err
}

// labelMember reads a label-set member into l (the last one of several
// wins); errors of shape are kept in *slot (see jsonscan.LastWins).
func (f *labelFilter) labelMember(b []byte, s int, l *labelsAt, rewrite *bool, slot *error) (int, error) {
	return jsonscan.LastWins(b, s, slot, func() (int, error) {
		e, present, rw, err := jsonscan.ScanLabels(b, s, &l.members)
		at := s
		if !present {
			at = -1
		}
		l.set(b, at, e)
		*rewrite = rw
		return e, err
	})
}

// withLabels is the member key with the label set l as encoding/json
// writes it.
func withLabels(key string, l *labelsAt) jsonscan.Member {
	b, _ := json.Marshal(l.decode())
	return jsonscan.Member{Key: key, Value: b}
}

// alert keeps an alert (of /api/v1/alerts or of a rule) when its labels
// are the tenant's.
func (f *labelFilter) alert(out, b []byte, vs int) ([]byte, int, bool, error) {
	switch b[vs] {
	case 'n':
		return f.nullElement(out, b, vs)
	case '{':
	default:
		return notObject(b, vs, "an alert")
	}
	var labelsErr error
	dup, rewrite, seen := false, false, false
	f.labels.set(b, -1, -1)
	ms := f.spans[:0]
	end, err := jsonscan.WalkObject(b, vs, func(ks, ke int, escaped bool, s int) (int, error) {
		var e int
		var err error
		if jsonscan.KeyIs(b, ks, ke, escaped, "labels") {
			dup, seen = dup || seen, true
			e, err = f.labelMember(b, s, &f.labels, &rewrite, &labelsErr)
		} else {
			e, err = jsonscan.SkipValue(b, s)
		}
		ms = append(ms, jsonscan.Span{KS: ks, KE: ke, VS: s, VE: e, Escaped: escaped})
		return e, err
	})
	f.spans = ms
	if err == nil {
		err = labelsErr
	}
	if err != nil || !f.allow(f.getLabels) {
		return out, end, false, err
	}
	return f.kept(out, b, ms, vs, end, rewrite, dup)
}

// kept appends an element kept, b[vs:end] with members ms: with its
// label set written anew when the text is not how encoding/json writes it
// (rewrite), each key once when one is given twice (dup), else as it came.
func (f *labelFilter) kept(out, b []byte, ms []jsonscan.Span, vs, end int, rewrite, dup bool) ([]byte, int, bool, error) {
	var err error
	switch {
	case rewrite:
		out, err = jsonscan.WriteObject(out, b, ms, jsonscan.DropKeys("labels"), []jsonscan.Member{withLabels("labels", &f.labels)})
	case dup:
		out, err = jsonscan.WriteObject(out, b, ms, nil, nil)
	default:
		out = append(out, b[vs:end]...)
	}
	return out, end, true, err
}

// filterAlertsData keeps the alerts of /api/v1/alerts the tenant may see.
// The answer has only alerts: what else Prometheus may add is not passed
// on.
func filterAlertsData(out, data []byte, allow visibleFunc) ([]byte, int, error) {
	f := newLabelFilter(allow)
	defer f.release()
	out = append(out, `{"alerts":`...)
	mark := len(out)
	var end int
	var err, alertsErr error
	switch data[0] {
	case 'n':
		end, err = jsonscan.SkipLiteral(data, 0, "null")
	case '{':
		// Decoded into a struct by encoding/json: the key matches
		// without regard to case, the last one winning.
		end, err = jsonscan.WalkObject(data, 0, func(ks, ke int, escaped bool, vs int) (int, error) {
			key, err := jsonscan.StringValue(data, ks, ke, escaped)
			if err != nil {
				return vs, err
			}
			if !strings.EqualFold(key, "alerts") {
				return jsonscan.SkipValue(data, vs)
			}
			return jsonscan.LastWins(data, vs, &alertsErr, func() (e int, err error) {
				out, e, _, err = filterArray(out[:mark], data, vs, func(out []byte, s int) ([]byte, int, bool, error) {
					return f.alert(out, data, s)
				})
				return e, err
			})
		})
		if err == nil {
			err = alertsErr
		}
	default:
		end, err = jsonscan.SkipValue(data, 0)
		if err == nil {
			err = jsonscan.TypeError(data[0], "the alerts")
		}
	}
	if err != nil {
		return out, end, err
	}
	if len(out) == mark {
		out = append(out, "[]"...)
	}
	return append(out, '}'), end, nil
}

// ruleFields are the members of a rule that decide on it.
var ruleFields = [...]string{"labels", "name", "type", "alerts"}

// rule keeps a rule when the series it produces are the tenant's (its
// labels, with its name as __name__ for a recording rule) or when one of
// its alerts is; of a kept rule only the tenant's alerts are shown.
func (f *labelFilter) keepRule(out, b []byte, vs int, scratch *[]byte) ([]byte, int, bool, error) {
	switch b[vs] {
	case 'n':
		return f.nullElement(out, b, vs)
	case '{':
	default:
		return notObject(b, vs, "a rule")
	}
	var (
		name, typ            string
		alerts               = (*scratch)[:0]
		hasAlerts, sameAlert bool
		nAlerts              int
		dup, rewrite         bool
		seen                 [len(ruleFields)]bool
		errs                 [len(ruleFields)]error
		ms                   = f.ruleSpans[:0]
	)
	f.rule.set(b, -1, -1)
	end, err := jsonscan.WalkObject(b, vs, func(ks, ke int, escaped bool, s int) (int, error) {
		field := -1
		for i, k := range ruleFields {
			if jsonscan.KeyIs(b, ks, ke, escaped, k) {
				field = i
				dup, seen[i] = dup || seen[i], true
				break
			}
		}
		var e int
		var err error
		switch field {
		case 0:
			e, err = f.labelMember(b, s, &f.rule, &rewrite, &errs[0])
		case 1:
			e, err = jsonscan.LastWins(b, s, &errs[1], func() (e int, err error) {
				name, e, err = jsonscan.StringAt(b, s)
				return e, err
			})
		case 2:
			e, err = jsonscan.LastWins(b, s, &errs[2], func() (e int, err error) {
				typ, e, err = jsonscan.StringAt(b, s)
				return e, err
			})
		case 3:
			e, err = jsonscan.LastWins(b, s, &errs[3], func() (e int, err error) {
				hasAlerts = b[s] != 'n'
				nAlerts = 0
				alerts, e, sameAlert, err = filterArray(alerts[:0], b, s, func(out []byte, s int) ([]byte, int, bool, error) {
					out, e, kept, err := f.alert(out, b, s)
					if kept {
						nAlerts++
					}
					return out, e, kept, err
				})
				return e, err
			})
		default:
			e, err = jsonscan.SkipValue(b, s)
		}
		ms = append(ms, jsonscan.Span{KS: ks, KE: ke, VS: s, VE: e, Escaped: escaped})
		return e, err
	})
	*scratch, f.ruleSpans = alerts, ms
	if err == nil {
		err = firstError(errs[:]...)
	}
	if err != nil {
		return out, end, false, err
	}
	var add []jsonscan.Member
	if rewrite {
		add = append(add, withLabels("labels", &f.rule))
	}
	if typ == "recording" {
		f.rule.metric, f.rule.hasMetric = name, true
	}
	if !f.allow(f.getRule) && nAlerts == 0 {
		return out, end, false, nil
	}
	changedAlerts := hasAlerts && !sameAlert
	if changedAlerts {
		add = append(add, jsonscan.Member{Key: "alerts", Value: alerts})
	}
	if dup || len(add) > 0 {
		out, err = jsonscan.WriteObject(out, b, ms, func(k string) bool {
			return rewrite && k == "labels" || changedAlerts && k == "alerts"
		}, add)
		return out, end, true, err
	}
	return append(out, b[vs:end]...), end, true, nil
}

// group keeps a rule group with the rules the tenant may see; a group left
// empty is dropped.
func (f *labelFilter) group(out, b []byte, gs int, rules, alerts *[]byte) ([]byte, int, bool, error) {
	switch b[gs] {
	case '{':
	case 'n':
		e, err := jsonscan.SkipLiteral(b, gs, "null")
		if err == nil {
			err = errMissing // a group without rules
		}
		return out, e, false, err
	default:
		return notObject(b, gs, "a rule group")
	}
	var (
		ms                          []jsonscan.Span
		hasRules, same, dup, exists bool
		rulesErr                    error
	)
	ge, err := jsonscan.WalkObject(b, gs, func(ks, ke int, escaped bool, s int) (int, error) {
		var e int
		var err error
		if jsonscan.KeyIs(b, ks, ke, escaped, "rules") {
			dup, exists = exists, true
			e, err = jsonscan.LastWins(b, s, &rulesErr, func() (e int, err error) {
				hasRules = b[s] != 'n'
				*rules, e, same, err = filterArray((*rules)[:0], b, s, func(out []byte, rs int) ([]byte, int, bool, error) {
					return f.keepRule(out, b, rs, alerts)
				})
				return e, err
			})
		} else {
			e, err = jsonscan.SkipValue(b, s)
		}
		ms = append(ms, jsonscan.Span{KS: ks, KE: ke, VS: s, VE: e, Escaped: escaped})
		return e, err
	})
	if err == nil {
		err = rulesErr
	}
	switch {
	case err != nil:
		return out, ge, false, err
	case !exists:
		return out, ge, false, errMissing
	case len(*rules) == 2: // []: nothing left
		return out, ge, false, nil
	case same && hasRules && !dup:
		return append(out, b[gs:ge]...), ge, true, nil
	}
	out, err = jsonscan.WriteObject(out, b, ms, jsonscan.DropKeys("rules"), []jsonscan.Member{{Key: "rules", Value: *rules}})
	return out, ge, true, err
}

// filterRulesData keeps the rules the tenant may see.
func filterRulesData(out, data []byte, allow visibleFunc) ([]byte, int, error) {
	switch data[0] {
	case '{':
	case 'n':
		end, err := jsonscan.SkipLiteral(data, 0, "null")
		if err == nil {
			err = errMissing // no groups
		}
		return out, end, err
	default:
		end, err := jsonscan.SkipValue(data, 0)
		if err == nil {
			err = jsonscan.TypeError(data[0], "the rules")
		}
		return out, end, err
	}
	f := newLabelFilter(allow)
	defer f.release()
	out = append(out, `{"groups":`...)
	mark := len(out)
	found := false
	var groupsErr error
	top := f.top[:0]
	end, err := jsonscan.WalkObject(data, 0, func(ks, ke int, escaped bool, vs int) (int, error) {
		if !jsonscan.KeyIs(data, ks, ke, escaped, "groups") {
			e, err := jsonscan.SkipValue(data, vs)
			top = append(top, jsonscan.Span{KS: ks, KE: ke, VS: vs, VE: e, Escaped: escaped})
			return e, err
		}
		found = true
		return jsonscan.LastWins(data, vs, &groupsErr, func() (e int, err error) {
			out, e, _, err = filterArray(out[:mark], data, vs, func(out []byte, gs int) ([]byte, int, bool, error) {
				return f.group(out, data, gs, &f.rules, &f.alerts)
			})
			return e, err
		})
	})
	f.top = top
	if err == nil {
		err = groupsErr
	}
	if err == nil && !found {
		err = errMissing
	}
	if err != nil {
		return out, end, err
	}
	out, _, err = jsonscan.WriteMembers(out, data, top, nil, 1)
	return append(out, '}'), end, err
}

// target keeps a target on its labels, the labels its series carry; a
// dropped target has only its discovered labels (static labels of the
// configuration among them); without any it is nobody's.
func (f *labelFilter) target(out, b []byte, vs int) ([]byte, int, bool, error) {
	switch b[vs] {
	case 'n':
		end, err := jsonscan.SkipLiteral(b, vs, "null")
		return out, end, false, err
	case '{':
	default:
		return notObject(b, vs, "a target")
	}
	var dup, rewrite, rewriteDisc bool
	var seen [2]bool
	var errs [2]error
	f.labels.set(b, -1, -1)
	f.disc.set(b, -1, -1)
	ms := f.spans[:0]
	end, err := jsonscan.WalkObject(b, vs, func(ks, ke int, escaped bool, s int) (int, error) {
		var e int
		var err error
		switch {
		case jsonscan.KeyIs(b, ks, ke, escaped, "labels"):
			dup, seen[0] = dup || seen[0], true
			e, err = f.labelMember(b, s, &f.labels, &rewrite, &errs[0])
		case jsonscan.KeyIs(b, ks, ke, escaped, "discoveredLabels"):
			dup, seen[1] = dup || seen[1], true
			e, err = f.labelMember(b, s, &f.disc, &rewriteDisc, &errs[1])
		default:
			e, err = jsonscan.SkipValue(b, s)
		}
		ms = append(ms, jsonscan.Span{KS: ks, KE: ke, VS: s, VE: e, Escaped: escaped})
		return e, err
	})
	f.spans = ms
	if err == nil {
		err = firstError(errs[:]...)
	}
	if err != nil {
		return out, end, false, err
	}
	hasLabels, hasDisc := f.labels.at >= 0, f.disc.at >= 0
	if !(hasLabels && f.allow(f.getLabels) || !hasLabels && hasDisc && f.allow(f.getDisc)) {
		return out, end, false, nil
	}
	return f.kept(out, b, ms, vs, end, rewrite, dup)
}

// filterTargetsData keeps the active and dropped targets the tenant may
// see.
func filterTargetsData(out, data []byte, allow visibleFunc) ([]byte, int, error) {
	switch data[0] {
	case 'n':
		end, err := jsonscan.SkipLiteral(data, 0, "null")
		return append(out, "null"...), end, err
	case '{':
	default:
		end, err := jsonscan.SkipValue(data, 0)
		if err == nil {
			err = jsonscan.TypeError(data[0], "the targets")
		}
		return out, end, err
	}
	f := newLabelFilter(allow)
	defer f.release()
	keys := [...]string{"activeTargets", "droppedTargets"}
	var found [len(keys)]bool
	var errs [len(keys)]error
	top := f.top[:0]
	end, err := jsonscan.WalkObject(data, 0, func(ks, ke int, escaped bool, vs int) (int, error) {
		for i, key := range keys {
			if jsonscan.KeyIs(data, ks, ke, escaped, key) {
				found[i] = true
				return jsonscan.LastWins(data, vs, &errs[i], func() (e int, err error) {
					f.lists[i], e, _, err = filterArray(f.lists[i][:0], data, vs, func(out []byte, s int) ([]byte, int, bool, error) {
						return f.target(out, data, s)
					})
					return e, err
				})
			}
		}
		e, err := jsonscan.SkipValue(data, vs)
		top = append(top, jsonscan.Span{KS: ks, KE: ke, VS: vs, VE: e, Escaped: escaped})
		return e, err
	})
	f.top = top
	if err == nil {
		err = firstError(errs[:]...)
	}
	if err != nil {
		return out, end, err
	}
	var add []jsonscan.Member
	for i, key := range keys {
		if found[i] {
			add = append(add, jsonscan.Member{Key: key, Value: f.lists[i]})
		}
	}
	// Counts of dropped targets per pool (newer Prometheus) would tell what
	// other tenants run.
	out, err = jsonscan.WriteObject(out, data, top, jsonscan.DropKeys("droppedTargetCounts"), add)
	return out, end, err
}

// filterTargetsMetadataData keeps the entries of /api/v1/targets/metadata
// whose series are the tenant's: the target's labels with the metric's
// name. limit (<= 0: none) applies after filtering.
func filterTargetsMetadataData(out, data []byte, allow visibleFunc, limit int) ([]byte, int, error) {
	f := newLabelFilter(allow)
	defer f.release()
	n := 0
	out, end, _, err := filterArray(out, data, 0, func(out []byte, vs int) ([]byte, int, bool, error) {
		var metric string
		var dup, rewrite bool
		var seen [2]bool
		var errs [2]error
		ms := f.spans[:0]
		end := vs
		f.labels.set(data, -1, -1)
		switch data[vs] {
		case 'n':
			var err error
			if end, err = jsonscan.SkipLiteral(data, vs, "null"); err != nil {
				return out, end, false, err
			}
		case '{':
			var err error
			end, err = jsonscan.WalkObject(data, vs, func(ks, ke int, escaped bool, s int) (int, error) {
				var e int
				var err error
				switch {
				case jsonscan.KeyIs(data, ks, ke, escaped, "target"):
					dup, seen[0] = dup || seen[0], true
					e, err = f.labelMember(data, s, &f.labels, &rewrite, &errs[0])
				case jsonscan.KeyIs(data, ks, ke, escaped, "metric"):
					dup, seen[1] = dup || seen[1], true
					e, err = jsonscan.LastWins(data, s, &errs[1], func() (e int, err error) {
						metric, e, err = jsonscan.StringAt(data, s)
						return e, err
					})
				default:
					e, err = jsonscan.SkipValue(data, s)
				}
				ms = append(ms, jsonscan.Span{KS: ks, KE: ke, VS: s, VE: e, Escaped: escaped})
				return e, err
			})
			f.spans = ms
			if err == nil {
				err = firstError(errs[:]...)
			}
			if err != nil {
				return out, end, false, err
			}
		default:
			return notObject(data, vs, "target metadata")
		}
		var add []jsonscan.Member
		if rewrite {
			add = []jsonscan.Member{withLabels("target", &f.labels)}
		}
		// The series of this metric from this target carry the target's
		// labels and the metric's name.
		if metric != "" {
			f.labels.metric, f.labels.hasMetric = metric, true
		}
		if !f.allow(f.getLabels) || limit > 0 && n >= limit {
			return out, end, false, nil
		}
		n++
		var err error
		switch {
		case data[vs] == 'n':
			return append(out, "{}"...), end, true, nil
		case rewrite:
			out, err = jsonscan.WriteObject(out, data, ms, jsonscan.DropKeys("target"), add)
			return out, end, true, err
		case dup:
			out, err = jsonscan.WriteObject(out, data, ms, nil, nil)
			return out, end, true, err
		}
		return append(out, data[vs:end]...), end, true, nil
	})
	return out, end, err
}
