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
