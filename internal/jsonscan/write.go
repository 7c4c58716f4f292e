package jsonscan

import (
	"strconv"
)

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
