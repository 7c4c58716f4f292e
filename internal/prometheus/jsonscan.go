package prometheus

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// A small JSON scanner for the filtered endpoints: it walks an upstream
// answer once, without decoding it, so that what a tenant may see is copied
// through byte for byte and only the label sets that decide are decoded. It
// validates what it walks as strictly as encoding/json.

// syntaxError is malformed JSON; other errors are JSON that does not have
// the expected shape.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

var errJSONEnd error = &syntaxError{"unexpected end of JSON input"}

// errMissing is a member that must be there and is not (encoding/json then
// reads nothing, and says so in the same words).
var errMissing = errors.New("unexpected end of JSON input")

func isSyntax(err error) bool {
	var s *syntaxError
	return errors.As(err, &s)
}

func jsonSyntax(b []byte, i int, what string) error {
	if i >= len(b) {
		return errJSONEnd
	}
	return &syntaxError{fmt.Sprintf("invalid character %q %s at offset %d", b[i], what, i)}
}

// lastWins reads a member's value with read. encoding/json reads only the
// last of members with the same key: an error of shape (not of syntax) is
// kept in *slot, to be reported unless a later member replaces it, and the
// value skipped.
func lastWins(b []byte, vs int, slot *error, read func() (int, error)) (int, error) {
	e, err := read()
	if err == nil || isSyntax(err) {
		*slot = nil
		return e, err
	}
	*slot = err
	return skipValue(b, vs)
}

// firstError returns the first error of errs that is not nil.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipValue returns the end of the value starting at b[i] (no leading
// space).
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return i, errJSONEnd
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := skipString(b, i)
		return end, err
	case c == '{':
		return skipObject(b, i)
	case c == '[':
		return skipArray(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	}
	return i, jsonSyntax(b, i, "looking for beginning of value")
}

func skipObject(b []byte, i int) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, jsonSyntax(b, i, "looking for beginning of object key string")
		}
		ke, _, err := skipString(b, i)
		if err != nil {
			return ke, err
		}
		j := skipSpace(b, ke)
		if j >= len(b) || b[j] != ':' {
			return j, jsonSyntax(b, j, "after object key")
		}
		ve, err := skipValue(b, skipSpace(b, j+1))
		if err != nil {
			return ve, err
		}
		if i = skipSpace(b, ve); i >= len(b) {
			return i, errJSONEnd
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, jsonSyntax(b, i, "after object key:value pair")
		}
	}
}

func skipArray(b []byte, i int) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		ve, err := skipValue(b, i)
		if err != nil {
			return ve, err
		}
		if i = skipSpace(b, ve); i >= len(b) {
			return i, errJSONEnd
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, jsonSyntax(b, i, "after array element")
		}
	}
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(b) || b[i+k] != lit[k] {
			return i + k, jsonSyntax(b, i+k, "in literal")
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
			return i, jsonSyntax(b, i, "in numeric literal")
		}
	}
	if i < len(b) && b[i] == '.' {
		var ok bool
		if i, ok = digits(i + 1); !ok {
			return i, jsonSyntax(b, i, "after decimal point in numeric literal")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		var ok bool
		if i, ok = digits(i); !ok {
			return i, jsonSyntax(b, i, "in exponent of numeric literal")
		}
	}
	return i, nil
}

// Constants of the eight-bytes-at-a-time search in skipString.
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

// skipString returns the end of the string starting at b[i] (the quote)
// and whether it has escapes.
func skipString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for {
		// Eight bytes at a time while none is a quote, a backslash or a
		// control character.
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			q, bs := x^(lsb*'"'), x^(lsb*'\\')
			if ((q-lsb)&^q|(bs-lsb)&^bs|(x-lsb*0x20)&^x)&msb != 0 {
				break
			}
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, escaped, errJSONEnd
		}
		switch b[i] {
		case '"':
			return i + 1, escaped, nil
		case '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, errJSONEnd
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := 2; k < 6; k++ {
					if i+k >= len(b) {
						return i, escaped, errJSONEnd
					}
					if !isHex(b[i+k]) {
						return i + k, escaped, jsonSyntax(b, i+k, "in \\u hexadecimal character escape")
					}
				}
				i += 6
			default:
				return i + 1, escaped, jsonSyntax(b, i+1, "in string escape code")
			}
		default: // a control character
			return i, escaped, jsonSyntax(b, i, "in string literal")
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// stringValue decodes the string b[start:end] (quotes included) as
// encoding/json does (invalid UTF-8 becomes U+FFFD).
func stringValue(b []byte, start, end int, escaped bool) (string, error) {
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

// walkObject walks the object starting at b[i]. For each member it calls
// visit with the key, as b[ks:ke] quotes included, and the start of the
// value; visit reads the value and returns its end. walkObject returns the
// end of the object.
func walkObject(b []byte, i int, visit func(ks, ke int, escaped bool, vs int) (int, error)) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, jsonSyntax(b, i, "looking for beginning of object key string")
		}
		ke, escaped, err := skipString(b, i)
		if err != nil {
			return ke, err
		}
		j := skipSpace(b, ke)
		if j >= len(b) || b[j] != ':' {
			return j, jsonSyntax(b, j, "after object key")
		}
		vs := skipSpace(b, j+1)
		if vs >= len(b) {
			return vs, errJSONEnd
		}
		ve, err := visit(i, ke, escaped, vs)
		if err != nil {
			return ve, err
		}
		if i = skipSpace(b, ve); i >= len(b) {
			return i, errJSONEnd
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, jsonSyntax(b, i, "after object key:value pair")
		}
	}
}

// walkArray walks the array starting at b[i], calling visit with the start
// of each element; visit reads it and returns its end.
func walkArray(b []byte, i int, visit func(vs int) (int, error)) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		if i >= len(b) {
			return i, errJSONEnd
		}
		ve, err := visit(i)
		if err != nil {
			return ve, err
		}
		if i = skipSpace(b, ve); i >= len(b) {
			return i, errJSONEnd
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, jsonSyntax(b, i, "after array element")
		}
	}
}

// keyIs reports whether the key b[ks:ke] (quotes included) is name.
func keyIs(b []byte, ks, ke int, escaped bool, name string) bool {
	if !escaped {
		return ke-ks-2 == len(name) && string(b[ks+1:ke-1]) == name
	}
	s, err := stringValue(b, ks, ke, escaped)
	return err == nil && s == name
}

// scanLabels reads the label set starting at b[vs] (an object of strings,
// or null) without decoding it and returns its end. present is false for
// null; rewrite reports that the text is not how encoding/json writes the
// set it decodes to (a null value, a name given twice), so that the caller
// writes it anew. keys is scratch space.
func scanLabels(b []byte, vs int, keys *[][2]int) (end int, present, rewrite bool, err error) {
	switch b[vs] {
	case 'n':
		end, err = skipLiteral(b, vs, "null")
		return end, false, false, err
	case '{':
	default:
		end, err = skipValue(b, vs)
		if err == nil {
			err = typeError(b[vs], "a label set")
		}
		return end, false, false, err
	}
	ks := (*keys)[:0]
	escapedKey := false
	end, err = walkObject(b, vs, func(k, ke int, escaped bool, s int) (int, error) {
		ks = append(ks, [2]int{k, ke})
		escapedKey = escapedKey || escaped
		switch b[s] {
		case '"':
			e, _, err := skipString(b, s)
			return e, err
		case 'n':
			// encoding/json reads a null value as the empty string.
			rewrite = true
			return skipLiteral(b, s, "null")
		}
		e, err := skipValue(b, s)
		if err == nil {
			err = typeError(b[s], "a label value")
		}
		return e, err
	})
	*keys = ks
	if err != nil || rewrite {
		return end, true, rewrite, err
	}
	if escapedKey {
		seen := make(map[string]bool, len(ks))
		for _, k := range ks {
			name, err := stringValue(b, k[0], k[1], true)
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
			if string(b[a[0]:a[1]]) == string(b[c[0]:c[1]]) {
				return end, true, true, nil
			}
		}
	}
	return end, true, false, nil
}

// labelsAt is a label set as the answer writes it, read on demand: the
// object at b[at], checked by scanLabels (at < 0: no label set). metric,
// when set, stands for __name__ (the series of a recording rule, of a
// target's metric).
type labelsAt struct {
	b         []byte
	at, end   int
	metric    string
	hasMetric bool
}

func (l *labelsAt) set(b []byte, at, end int) {
	l.b, l.at, l.end, l.metric, l.hasMetric = b, at, end, "", false
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
	b := l.b
	vs, ve, esc := -1, -1, false
	_, _ = walkObject(b, l.at, func(ks, ke int, escaped bool, s int) (int, error) {
		e, escValue := s+4, false // null
		if b[s] == '"' {
			e, escValue, _ = skipString(b, s)
		}
		if keyIs(b, ks, ke, escaped, name) {
			vs, ve, esc = s, e, escValue
		}
		return e, nil
	})
	if vs < 0 || b[vs] != '"' {
		return ""
	}
	v, _ := stringValue(b, vs, ve, esc)
	return v
}

// decode returns the label set as encoding/json decodes it (nil when
// there is none).
func (l *labelsAt) decode() labelSet {
	if l.at < 0 || l.b[l.at] != '{' {
		return nil
	}
	var m labelSet
	_ = json.Unmarshal(l.b[l.at:l.end], &m) // checked by scanLabels
	if m == nil {
		m = labelSet{}
	}
	return m
}

// stringAt decodes the string or null starting at b[vs] (null: "").
func stringAt(b []byte, vs int) (s string, end int, err error) {
	switch b[vs] {
	case 'n':
		end, err = skipLiteral(b, vs, "null")
		return "", end, err
	case '"':
		end, esc, err := skipString(b, vs)
		if err != nil {
			return "", end, err
		}
		s, err = stringValue(b, vs, end, esc)
		return s, end, err
	}
	end, err = skipValue(b, vs)
	if err == nil {
		err = typeError(b[vs], "a string")
	}
	return "", end, err
}

func typeError(c byte, into string) error {
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

// span is a member of an object: key b[ks:ke], quotes included, and value
// b[vs:ve].
type span struct {
	ks, ke, vs, ve int
	escaped        bool
}

// member is a key and value to write into an object.
type member struct {
	key   string
	value []byte
}

// writeObject appends an object with the members ms of b, each key once
// with its last value (as encoding/json decodes repeated keys), without
// those drop names, and then the members of add.
func writeObject(out, b []byte, ms []span, drop func(string) bool, add []member) ([]byte, error) {
	out = append(out, '{')
	out, n, err := writeMembers(out, b, ms, drop, 0)
	if err != nil {
		return out, err
	}
	for _, m := range add {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = strconv.AppendQuote(out, m.key)
		out = append(out, ':')
		out = append(out, m.value...)
	}
	return append(out, '}'), nil
}

// writeMembers appends the members ms of b as writeObject does, after n
// members already written, and returns the number written in all.
func writeMembers(out, b []byte, ms []span, drop func(string) bool, n int) ([]byte, int, error) {
	last := make(map[string]int, len(ms))
	keys := make([]string, len(ms))
	for i, m := range ms {
		k, err := stringValue(b, m.ks, m.ke, m.escaped)
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
		out = append(out, b[m.ks:m.ke]...)
		out = append(out, ':')
		out = append(out, b[m.vs:m.ve]...)
	}
	return out, n, nil
}

func dropKeys(names ...string) func(string) bool {
	return func(k string) bool {
		for _, n := range names {
			if k == n {
				return true
			}
		}
		return false
	}
}
