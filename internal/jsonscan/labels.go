package jsonscan

import (
	"errors"
)

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
