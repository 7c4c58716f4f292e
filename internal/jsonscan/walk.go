package jsonscan

import "errors"

// ErrSpelling is a member whose key Go's encoding/json, decoding into a
// struct, reads as one of the keys an Object declares, but spelt otherwise
// ("Labels", "STATUS", "ſtatus"). A client matching keys exactly (Python,
// JavaScript) reads another member than such a Go client: whichever one a
// filter decides on, some client reads the other, so the answer is refused.
var ErrSpelling = errors.New("a key is spelt otherwise than the upstream spells it (clients would read different members)")

// Object declares the members of a JSON object that a filter reads, by
// key: the walker finds them, keeps the span of every member (to write the
// object anew), lets the last of repeated keys win as encoding/json does,
// and reports the first error.
type Object struct {
	fields *Fields
	n      int
}

// NewObject declares an object whose members keys are read; no two may
// fold to the same.
func NewObject(keys ...string) *Object {
	return &Object{fields: NewFields(keys...), n: len(keys)}
}

// Walk is the state of walks of one Object, reused from one to the next.
type Walk struct {
	// Spans are the object's members, in order.
	Spans []Span
	// Dup is set when a declared key is given twice: the object as
	// written is not how encoding/json reads it.
	Dup   bool
	count []int
	errs  []error
}

// Found reports whether the declared key field was in the object.
func (w *Walk) Found(field int) bool { return w.count[field] > 0 }

// Walk walks the object at b[vs] (a '{'), calling read with the index of
// each declared key met and the start of its value; read reads the value
// and returns its end. Other values are checked and skipped. An error of
// shape from read is held for its key until a later member with the key
// replaces it (see LastWins); syntax errors end the walk. The first error
// is returned: a syntax error, else ErrSpelling, else the held errors in
// declaration order.
func (o *Object) Walk(b []byte, vs int, w *Walk, read func(field, vs int) (int, error)) (int, error) {
	w.Spans, w.Dup = w.Spans[:0], false
	if cap(w.count) < o.n {
		w.count, w.errs = make([]int, o.n), make([]error, o.n)
	}
	w.count, w.errs = w.count[:o.n], w.errs[:o.n]
	clear(w.count)
	clear(w.errs)
	spelling := false
	end, err := WalkObject(b, vs, func(ks, ke int, escaped bool, s int) (int, error) {
		f, exact := o.fields.Match(b, ks, ke, escaped)
		var e int
		var err error
		switch {
		case f < 0:
			e, err = SkipValue(b, s)
		case !exact:
			spelling = true
			e, err = SkipValue(b, s)
		default:
			w.Dup = w.Dup || w.count[f] > 0
			w.count[f]++
			e, err = LastWins(b, s, &w.errs[f], func() (int, error) { return read(f, s) })
		}
		w.Spans = append(w.Spans, Span{KS: ks, KE: ke, VS: s, VE: e, Escaped: escaped})
		return e, err
	})
	if err != nil {
		return end, err
	}
	if spelling {
		return end, ErrSpelling
	}
	for _, err := range w.errs {
		if err != nil {
			return end, err
		}
	}
	return end, nil
}
