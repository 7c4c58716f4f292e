package jsonscan

import (
	"errors"
	"strings"
	"unicode/utf8"
)

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

// LastWins reads a member's value with read. encoding/json, decoding into
// a map, reads only the last of members with the same key: an error of
// shape (not of syntax) is kept in *slot, to be reported unless a later
// member replaces it, and the value skipped.
func LastWins(b []byte, vs int, slot *error, read func() (int, error)) (int, error) {
	e, err := read()
	if err == nil || IsSyntax(err) {
		*slot = nil
		return e, err
	}
	*slot = err
	return SkipValue(b, vs)
}

// KeyIs reports whether the key b[ks:ke] (quotes included) is name, as a
// map key: exactly, once decoded.
func KeyIs(b []byte, ks, ke int, escaped bool, name string) bool {
	if !escaped {
		return ke-ks-2 == len(name) && string(b[ks+1:ke-1]) == name
	}
	s, err := StringValue(b, ks, ke, escaped)
	return err == nil && s == name
}

// Fields matches object keys to the fields of a Go struct as encoding/json
// does: a key is the field of its name, exactly or else under Unicode case
// folding ("Labels" and "ſtatus" are labels and status), so that a filter
// reads a member where a client decoding the answer does.
type Fields struct {
	names []string
	ascii bool
}

// NewFields returns a Fields for the struct fields names; no two may fold
// to the same.
func NewFields(names ...string) *Fields {
	f := &Fields{names: names, ascii: true}
	for i, n := range names {
		f.ascii = f.ascii && isASCII(n)
		for _, m := range names[:i] {
			if strings.EqualFold(n, m) {
				panic("jsonscan: fields " + m + " and " + n + " fold to the same")
			}
		}
	}
	return f
}

// Match returns the index of the field the key b[ks:ke] (quotes
// included) decodes into (-1: none), and whether the key is the field's
// name exactly once decoded (as a map key, it would be that name).
func (f *Fields) Match(b []byte, ks, ke int, escaped bool) (field int, exact bool) {
	raw := b[ks+1 : ke-1]
	if !escaped && f.ascii {
		// The common case first: the key as the upstream spells it.
		for i, n := range f.names {
			if string(raw) == n {
				return i, true
			}
		}
		if isASCII(raw) {
			// ASCII folds to ASCII only: letters compared without case.
			for i, n := range f.names {
				if len(n) == len(raw) && equalFoldASCII(raw, n) {
					return i, false
				}
			}
			return -1, false
		}
	}
	s, err := StringValue(b, ks, ke, escaped)
	if err != nil {
		return -1, false
	}
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return i, s == n
		}
	}
	return -1, false
}

func equalFoldASCII(a []byte, b string) bool {
	for i := range len(a) {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func isASCII[S ~string | ~[]byte](s S) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
