package prometheus

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"

	"github.com/promgate/promgate/internal/jsonscan"
)

// The data filters of /api/v1/alerts, /rules, /targets and
// /targets/metadata, one file each (filter_*.go), declared with the
// objects they read (jsonscan.Object). Each walks the upstream's data
// once; an object the tenant may see is copied as it is, unless
// encoding/json would have read it otherwise than it is written (a key
// given twice, a null label value): such an object is written anew, as the
// implementation these replace (which decoded and encoded every object)
// wrote it. filter_test.go holds them to that implementation. A key that
// decides, spelt otherwise ("Labels"), is refused (jsonscan.ErrSpelling).
// Label sets are not decoded: the policy reads the few labels it needs
// from the answer's text (see labelsAt).

// errMissing is a member that must be there and is not (encoding/json then
// reads nothing, and says so in the same words).
var errMissing = errors.New("unexpected end of JSON input")

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
	// Walks of the objects being decided on, one per level.
	top, grp, rulew, elem jsonscan.Walk
	rules, alerts         []byte // scratch for a group's rules, a rule's alerts
	lists                 [2][]byte
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

// readLabels reads a label-set member into l; rewrite is set when its text
// is not how encoding/json writes it.
func readLabels(b []byte, s int, l *labelsAt, rewrite *bool) (int, error) {
	e, present, rw, err := jsonscan.ScanLabels(b, s, &l.members)
	at := s
	if !present {
		at = -1
	}
	l.set(b, at, e)
	*rewrite = rw
	return e, err
}

// readString reads a string member (null: "") into *s.
func readString(b []byte, vs int, s *string) (int, error) {
	v, e, err := jsonscan.StringAt(b, vs)
	*s = v
	return e, err
}

// withLabels is the member key with the label set l as encoding/json
// writes it.
func withLabels(key string, l *labelsAt) jsonscan.Member {
	b, _ := json.Marshal(l.decode())
	return jsonscan.Member{Key: key, Value: b}
}

// kept appends an element kept, b[vs:end] with members ms: with its label
// set (under key) written anew when the text is not how encoding/json
// writes it (rewrite), each key once when one is given twice (dup), else
// as it came.
func kept(out, b []byte, ms []jsonscan.Span, vs, end int, key string, l *labelsAt, rewrite, dup bool) ([]byte, int, bool, error) {
	var err error
	switch {
	case rewrite:
		out, err = jsonscan.WriteObject(out, b, ms, jsonscan.DropKeys(key), []jsonscan.Member{withLabels(key, l)})
	case dup:
		out, err = jsonscan.WriteObject(out, b, ms, nil, nil)
	default:
		out = append(out, b[vs:end]...)
	}
	return out, end, true, err
}
