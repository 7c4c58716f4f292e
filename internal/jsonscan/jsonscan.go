// Package jsonscan is a small JSON scanner for filtering upstream answers:
// it walks an answer once, without decoding it, so that what a tenant may
// see is copied through byte for byte and only the few values that decide
// are decoded. It validates what it walks as strictly as encoding/json, and
// its readers decode as encoding/json does (the last of repeated keys wins,
// null reads as the zero value), so that a filter built on it decides on
// what a client decoding the answer reads.
//
// Positions are offsets into the answer b; a value starts at its first
// byte (no leading space) and ends just after its last.
package jsonscan

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SyntaxError is malformed JSON; the scanner's other errors are JSON that
// does not have the expected shape. Callers tell them apart (IsSyntax) to
// report an unreadable answer differently from an unexpected one.
type SyntaxError struct{ Msg string }

func (e *SyntaxError) Error() string { return e.Msg }

// ErrEnd is JSON that stops before its end.
var ErrEnd error = &SyntaxError{"unexpected end of JSON input"}

// IsSyntax reports whether err is (or wraps) a SyntaxError.
func IsSyntax(err error) bool {
	var s *SyntaxError
	return errors.As(err, &s)
}

// SyntaxAt is the error for an unexpected byte b[i] (ErrEnd past the end),
// worded as encoding/json words it.
func SyntaxAt(b []byte, i int, what string) error {
	if i >= len(b) {
		return ErrEnd
	}
	return &SyntaxError{fmt.Sprintf("invalid character %q %s at offset %d", b[i], what, i)}
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

// SkipSpace returns the position of the first byte at or after b[i] that
// is not JSON white space.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// MaxDepth is how deep values may nest, as in encoding/json (which
// refuses deeper texts): the scanner recurses once per level, and an
// upstream's megabytes of "[" would otherwise exhaust the stack, a fatal
// error rather than a panic.
const MaxDepth = 10000

// ErrDepth is a value nested deeper than MaxDepth.
var ErrDepth error = &SyntaxError{"exceeded max depth"}

// SkipValue checks the value starting at b[i] and returns its end. The
// value may nest MaxDepth levels (counted from its own start: a filter
// calls it a few levels into an answer).
func SkipValue(b []byte, i int) (int, error) {
	return skipValue(b, i, 0)
}

func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, ErrEnd
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := SkipString(b, i)
		return end, err
	case c == '{':
		if depth >= MaxDepth {
			return i, ErrDepth
		}
		return WalkObject(b, i, func(_, _ int, _ bool, vs int) (int, error) { return skipValue(b, vs, depth+1) })
	case c == '[':
		if depth >= MaxDepth {
			return i, ErrDepth
		}
		return WalkArray(b, i, func(vs int) (int, error) { return skipValue(b, vs, depth+1) })
	case c == 't':
		return SkipLiteral(b, i, "true")
	case c == 'f':
		return SkipLiteral(b, i, "false")
	case c == 'n':
		return SkipLiteral(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	}
	return i, SyntaxAt(b, i, "looking for beginning of value")
}

// SkipLiteral checks that the literal lit (true, false, null) starts at
// b[i] and returns its end.
func SkipLiteral(b []byte, i int, lit string) (int, error) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(b) || b[i+k] != lit[k] {
			return i + k, SyntaxAt(b, i+k, "in literal")
		}
	}
	return i + len(lit), nil
}

func skipNumber(b []byte, i int) (int, error) {
	digits := func(i int) (int, bool) {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i, i > start
	}
	if b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else {
		var ok bool
		if i, ok = digits(i); !ok {
			return i, SyntaxAt(b, i, "in numeric literal")
		}
	}
	if i < len(b) && b[i] == '.' {
		var ok bool
		if i, ok = digits(i + 1); !ok {
			return i, SyntaxAt(b, i, "after decimal point in numeric literal")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		var ok bool
		if i, ok = digits(i); !ok {
			return i, SyntaxAt(b, i, "in exponent of numeric literal")
		}
	}
	return i, nil
}

// Constants of the eight-bytes-at-a-time search in SkipString.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain marks the bytes that need no attention inside a string.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// SkipString checks the string starting at b[i] (the quote) and returns
// its end and whether it has escapes (StringValue decodes it faster
// without).
func SkipString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for {
		// Eight bytes at a time while none is a quote, a backslash or a
		// control character; then straight to the first that is (the
		// lowest flag is exact: borrows only raise false flags above it).
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			q, bs := x^(lsb*'"'), x^(lsb*'\\')
			if m := ((q-lsb)&^q | (bs-lsb)&^bs | (x-lsb*0x20)&^x) & msb; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, escaped, ErrEnd
		}
		switch b[i] {
		case '"':
			return i + 1, escaped, nil
		case '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, ErrEnd
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := 2; k < 6; k++ {
					if i+k >= len(b) {
						return i, escaped, ErrEnd
					}
					if !isHex(b[i+k]) {
						return i + k, escaped, SyntaxAt(b, i+k, "in \\u hexadecimal character escape")
					}
				}
				i += 6
			default:
				return i + 1, escaped, SyntaxAt(b, i+1, "in string escape code")
			}
		default: // a control character
			return i, escaped, SyntaxAt(b, i, "in string literal")
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// StringValue decodes the string b[start:end] (quotes included), checked
// by SkipString, as encoding/json does (invalid UTF-8 becomes U+FFFD).
func StringValue(b []byte, start, end int, escaped bool) (string, error) {
	raw := b[start+1 : end-1]
	if !escaped && utf8.Valid(raw) {
		return string(raw), nil
	}
	var s string
	if err := json.Unmarshal(b[start:end], &s); err != nil {
		return "", err
	}
	return s, nil
}

// WalkObject walks the object starting at b[i]. For each member it calls
// visit with the key, as b[ks:ke] quotes included, and the start of the
// value; visit reads the value and returns its end. WalkObject returns the
// end of the object.
func WalkObject(b []byte, i int, visit func(ks, ke int, escaped bool, vs int) (int, error)) (int, error) {
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, SyntaxAt(b, i, "looking for beginning of object key string")
		}
		ke, escaped, err := SkipString(b, i)
		if err != nil {
			return ke, err
		}
		j := SkipSpace(b, ke)
		if j >= len(b) || b[j] != ':' {
			return j, SyntaxAt(b, j, "after object key")
		}
		vs := SkipSpace(b, j+1)
		if vs >= len(b) {
			return vs, ErrEnd
		}
		ve, err := visit(i, ke, escaped, vs)
		if err != nil {
			return ve, err
		}
		if i = SkipSpace(b, ve); i >= len(b) {
			return i, ErrEnd
		}
		switch b[i] {
		case ',':
			i = SkipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, SyntaxAt(b, i, "after object key:value pair")
		}
	}
}

// WalkArray walks the array starting at b[i], calling visit with the start
// of each element; visit reads it and returns its end.
func WalkArray(b []byte, i int, visit func(vs int) (int, error)) (int, error) {
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		if i >= len(b) {
			return i, ErrEnd
		}
		ve, err := visit(i)
		if err != nil {
			return ve, err
		}
		if i = SkipSpace(b, ve); i >= len(b) {
			return i, ErrEnd
		}
		switch b[i] {
		case ',':
			i = SkipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, SyntaxAt(b, i, "after array element")
		}
	}
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

// ScanLabels checks the label set starting at b[vs] (an object of strings
// and nulls, or null: what encoding/json decodes into map[string]string)
// and returns its end. present is false for null; rewrite reports that the
// text is not how encoding/json writes the set it decodes to (a null
// value, a name given twice), so that a caller that must show the set as
// decoded writes it anew. The members are left in *members (its space
// reused), for LabelValue.
func ScanLabels(b []byte, vs int, members *[]Span) (end int, present, rewrite bool, err error) {
	switch b[vs] {
	case 'n':
		end, err = SkipLiteral(b, vs, "null")
		return end, false, false, err
	case '{':
	default:
		end, err = SkipValue(b, vs)
		if err == nil {
			err = TypeError(b[vs], "a label set")
		}
		return end, false, false, err
	}
	ks := (*members)[:0]
	escapedKey := false
	end, err = WalkObject(b, vs, func(k, ke int, escaped bool, s int) (int, error) {
		escapedKey = escapedKey || escaped
		var e int
		var err error
		valueEscaped := false
		switch b[s] {
		case '"':
			e, valueEscaped, err = SkipString(b, s)
		case 'n':
			// encoding/json reads a null value as the empty string.
			rewrite = true
			e, err = SkipLiteral(b, s, "null")
		default:
			if e, err = SkipValue(b, s); err == nil {
				err = TypeError(b[s], "a label value")
			}
		}
		ks = append(ks, Span{KS: k, KE: ke, VS: s, VE: e, Escaped: escaped, ValueEscaped: valueEscaped})
		return e, err
	})
	*members = ks
	if err != nil || rewrite {
		return end, true, rewrite, err
	}
	if escapedKey {
		seen := make(map[string]bool, len(ks))
		for _, k := range ks {
			name, err := StringValue(b, k.KS, k.KE, true)
			if err != nil {
				return end, true, false, err
			}
			if seen[name] {
				return end, true, true, nil
			}
			seen[name] = true
		}
		return end, true, false, nil
	}
	for i, a := range ks {
		for _, c := range ks[i+1:] {
			if string(b[a.KS:a.KE]) == string(b[c.KS:c.KE]) {
				return end, true, true, nil
			}
		}
	}
	return end, true, false, nil
}

// LabelValue returns the value of the label name in the members of a
// label set ScanLabels read, as encoding/json decodes the set: the last of
// members with that name, null read as "". found is false when there is
// none. The set is not walked again: a filter reads one label per matcher.
func LabelValue(b []byte, members []Span, name string) (value string, found bool) {
	for i := len(members) - 1; i >= 0; i-- {
		m := &members[i]
		if !KeyIs(b, m.KS, m.KE, m.Escaped, name) {
			continue
		}
		if b[m.VS] != '"' {
			return "", true
		}
		v, _ := StringValue(b, m.VS, m.VE, m.ValueEscaped)
		return v, true
	}
	return "", false
}

// StringMember returns the value of the member name of the object at
// b[at], an object of strings and nulls checked by ScanLabels, as
// encoding/json decodes it into a map: the last of members with that key,
// null read as "". found is false when there is none; a label set is read
// this way, one label at a time, without decoding the others.
func StringMember(b []byte, at int, name string) (value string, found bool) {
	vs, ve, esc := -1, -1, false
	_, _ = WalkObject(b, at, func(ks, ke int, escaped bool, s int) (int, error) {
		e, escValue := s+4, false // null
		if b[s] == '"' {
			e, escValue, _ = SkipString(b, s)
		}
		if KeyIs(b, ks, ke, escaped, name) {
			vs, ve, esc = s, e, escValue
		}
		return e, nil
	})
	if vs < 0 {
		return "", false
	}
	if b[vs] != '"' {
		return "", true
	}
	v, _ := StringValue(b, vs, ve, esc)
	return v, true
}

// StringAt decodes the string or null starting at b[vs] (null: "").
func StringAt(b []byte, vs int) (s string, end int, err error) {
	switch b[vs] {
	case 'n':
		end, err = SkipLiteral(b, vs, "null")
		return "", end, err
	case '"':
		end, esc, err := SkipString(b, vs)
		if err != nil {
			return "", end, err
		}
		s, err = StringValue(b, vs, end, esc)
		return s, end, err
	}
	end, err = SkipValue(b, vs)
	if err == nil {
		err = TypeError(b[vs], "a string")
	}
	return "", end, err
}

// TypeError is the error of shape for a value starting with c where into
// was expected, worded as encoding/json words it.
func TypeError(c byte, into string) error {
	return errors.New("json: cannot unmarshal " + kind(c) + " into " + into)
}

func kind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// Span is a member of an object: key b[KS:KE], quotes included, and value
// b[VS:VE]; Escaped says the key has escapes, ValueEscaped the value (a
// string; set by ScanLabels only). Filters collect the members of an
// object they may have to write anew (WriteObject).
type Span struct {
	KS, KE, VS, VE        int
	Escaped, ValueEscaped bool
}

// Member is a key and an encoded value to write into an object.
type Member struct {
	Key   string
	Value []byte
}

// WriteObject appends an object with the members ms of b, each key once
// with its last value (as encoding/json decodes repeated keys), without
// those drop names, and then the members of add. Keys and values are
// copied as b writes them.
func WriteObject(out, b []byte, ms []Span, drop func(string) bool, add []Member) ([]byte, error) {
	out = append(out, '{')
	out, n, err := WriteMembers(out, b, ms, drop, 0)
	if err != nil {
		return out, err
	}
	for _, m := range add {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = strconv.AppendQuote(out, m.Key)
		out = append(out, ':')
		out = append(out, m.Value...)
	}
	return append(out, '}'), nil
}

// WriteMembers appends the members ms of b as WriteObject does, after n
// members already written, and returns the number written in all.
func WriteMembers(out, b []byte, ms []Span, drop func(string) bool, n int) ([]byte, int, error) {
	last := make(map[string]int, len(ms))
	keys := make([]string, len(ms))
	for i, m := range ms {
		k, err := StringValue(b, m.KS, m.KE, m.Escaped)
		if err != nil {
			return out, n, err
		}
		keys[i] = k
		last[k] = i
	}
	for i, m := range ms {
		if last[keys[i]] != i || drop != nil && drop(keys[i]) {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, b[m.KS:m.KE]...)
		out = append(out, ':')
		out = append(out, b[m.VS:m.VE]...)
	}
	return out, n, nil
}

// DropKeys is a drop function for WriteObject that drops names.
func DropKeys(names ...string) func(string) bool {
	return func(k string) bool {
		for _, n := range names {
			if k == n {
				return true
			}
		}
		return false
	}
}
