package jsonscan

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// scanText checks b as one JSON text, as json.Valid does.
func scanText(b []byte) error {
	end, err := SkipValue(b, SkipSpace(b, 0))
	if err == nil && SkipSpace(b, end) != len(b) {
		err = SyntaxAt(b, SkipSpace(b, end), "after top-level value")
	}
	return err
}

var texts = []string{
	// Valid.
	`null`, `true`, `false`, `0`, `-0`, `1.5`, `-12.5e+3`, `1E-2`, `0e0`, `""`, `"a"`, `[]`, `{}`,
	` [ 1 , "x" , null , true , { "a" : [ ] } ] `, "\t\r\n{\"a\":1}\n",
	`{"a":1,"a":2}`, `{"":""}`, `[[[[]]]]`, `"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`, `"\ud800"`,
	"\"\xff\xfe\"", `"é"`, `"ab\u0063defghijklmnop"`, `"0123456789abcdef0123456789"`,
	// Invalid.
	``, ` `, `nul`, `nulll`, `tru`, `True`, `01`, `-`, `1.`, `.5`, `1e`, `1e+`, `+1`, `0x1`, `NaN`,
	`"`, `"abc`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\x01\"", "\"0123456789\x1f\"", `"\`,
	`[`, `[1`, `[1,]`, `[,1]`, `[1 2]`, `]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{a:1}`, `{"a" 1}`,
	`{"a":1 "b":2}`, `{,}`, `{"a":1}}`, `[]]`, `1 2`, `{} x`, `'a'`, "\"\u2028\"x",
}

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range texts {
		b := []byte(in)
		err := scanText(b)
		if want := json.Valid(b); want != (err == nil) {
			t.Errorf("%q: json.Valid %v, scanner error %v", in, want, err)
		}
		if err != nil && !IsSyntax(err) {
			t.Errorf("%q: error %v is not a syntax error", in, err)
		}
	}
}

// FuzzValid holds the scanner to json.Valid on arbitrary input.
func FuzzValid(f *testing.F) {
	for _, in := range texts {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if err := scanText([]byte(in)); json.Valid([]byte(in)) != (err == nil) {
			t.Fatalf("%q: json.Valid %v, scanner error %v", in, !(err == nil), err)
		}
	})
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct {
		in      string
		escaped bool
	}{
		{`""`, false},
		{`"plain ascii, longer than eight bytes"`, false},
		{`"é and ü"`, false},
		{"\"invalid \xff UTF-8\"", false},
		{`"\""`, true},
		{`"a\\b"`, true},
		{`"\/\b\f\n\r\t"`, true},
		{`"\u0061\u00e9"`, true},
		{`"\uD83D\uDE00 pair"`, true},
		{`"\ud800 lone surrogate"`, true},
		{`"0123456789\"0123456789"`, true},
	} {
		b := []byte(tc.in + ",")
		end, escaped, err := SkipString(b, 0)
		if err != nil || end != len(tc.in) || escaped != tc.escaped {
			t.Errorf("SkipString(%s) = %d, %v, %v; want %d, %v", tc.in, end, escaped, err, len(tc.in), tc.escaped)
			continue
		}
		var want string
		if err := json.Unmarshal([]byte(tc.in), &want); err != nil {
			t.Fatal(err)
		}
		if got, err := StringValue(b, 0, end, escaped); err != nil || got != want {
			t.Errorf("StringValue(%s) = %q, %v; want %q", tc.in, got, err, want)
		}
		if got, e, err := StringAt(b, 0); err != nil || got != want || e != end {
			t.Errorf("StringAt(%s) = %q, %d, %v", tc.in, got, e, err)
		}
	}
	for _, in := range []string{`null`, `1`, `{}`, `[]`, `true`} {
		s, end, err := StringAt([]byte(in), 0)
		switch {
		case in == "null" && (err != nil || s != "" || end != 4):
			t.Errorf("StringAt(null) = %q, %d, %v", s, end, err)
		case in != "null" && (err == nil || IsSyntax(err) || end != len(in)):
			t.Errorf("StringAt(%s) = %d, %v; want an error of shape", in, end, err)
		}
	}
}

// members returns the members of the object in, as WalkObject gives them.
func members(t *testing.T, in string) []Span {
	t.Helper()
	b := []byte(in)
	var ms []Span
	end, err := WalkObject(b, 0, func(ks, ke int, escaped bool, vs int) (int, error) {
		ve, err := SkipValue(b, vs)
		ms = append(ms, Span{KS: ks, KE: ke, VS: vs, VE: ve, Escaped: escaped})
		return ve, err
	})
	if err != nil || end != len(b) {
		t.Fatalf("WalkObject(%s) = %d, %v", in, end, err)
	}
	return ms
}

func TestKeys(t *testing.T) {
	fields := NewFields("labels", "status", "silencedBy", "kind")
	for _, tc := range []struct {
		key   string // as written
		is    string // the name KeyIs matches
		field int    // the field of fields Match finds
	}{
		{`"labels"`, "labels", 0},
		{`"label"`, "label", -1},
		{`"labelss"`, "labelss", -1},
		{`"Labels"`, "Labels", 0},
		{`"LABELS"`, "LABELS", 0},
		{`"l\u0061bels"`, "labels", 0},
		{`"\u004cabels"`, "Labels", 0},
		{`"l\"abels"`, "l\"abels", -1},
		{`"silencedby"`, "silencedby", 2},
		// encoding/json folds as Unicode does: ſ (U+017F) is s, K
		// (U+212A, Kelvin) is k; a dotted İ or a dotless ı is no i.
		{"\"\u017ftatus\"", "\u017ftatus", 1},
		{`"\u017ftatus"`, "\u017ftatus", 1},
		{"\"\u212aind\"", "\u212aind", 3},
		{`"sİlencedBy"`, "sİlencedBy", -1},
		{`"sılencedBy"`, "sılencedBy", -1},
		// KeyIs compares unescaped keys as written: invalid UTF-8
		// (U+FFFD once decoded) is no name one would look up.
		{"\"label\xffs\"", "label\xffs", -1},
		{`"endsAt"`, "endsAt", -1},
		{`""`, "", -1},
	} {
		b := []byte(`{` + tc.key + `:1}`)
		m := members(t, string(b))[0]
		if !KeyIs(b, m.KS, m.KE, m.Escaped, tc.is) || KeyIs(b, m.KS, m.KE, m.Escaped, tc.is+"x") {
			t.Errorf("KeyIs(%s, %q) is false", tc.key, tc.is)
		}
		field, exact := fields.Match(b, m.KS, m.KE, m.Escaped)
		if field != tc.field || exact != (field >= 0 && fields.names[field] == tc.is) {
			t.Errorf("Match(%s) = %d, %v; want %d", tc.key, field, exact, tc.field)
		}
		// The reference: a struct with those fields.
		var s struct {
			Labels     *int `json:"labels"`
			Status     *int `json:"status"`
			SilencedBy *int `json:"silencedBy"`
			Kind       *int `json:"kind"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		want := -1
		for i, p := range []*int{s.Labels, s.Status, s.SilencedBy, s.Kind} {
			if p != nil {
				want = i
			}
		}
		if want != tc.field {
			t.Errorf("%s: encoding/json reads field %d", tc.key, want)
		}
	}
}

func TestScanLabels(t *testing.T) {
	for _, tc := range []struct {
		in               string
		present, rewrite bool
		err              bool
	}{
		{`null`, false, false, false},
		{`{}`, true, false, false},
		{`{"a":"1","b":"2"}`, true, false, false},
		{`{"a":null}`, true, true, false},
		{`{"a":"1","a":"2"}`, true, true, false},
		{`{"a":"1","\u0061":"2"}`, true, true, false},
		{`{"a":"1","\u0062":"2"}`, true, false, false},
		{`{"a":1}`, true, false, true},
		{`{"a":{}}`, true, false, true},
		{`[]`, false, false, true},
		{`"a"`, false, false, true},
		{`{"a":"1",}`, true, false, true},
	} {
		var members []Span
		end, present, rewrite, err := ScanLabels([]byte(tc.in), 0, &members)
		if (err != nil) != tc.err || err == nil && (present != tc.present || rewrite != tc.rewrite || end != len(tc.in)) {
			t.Errorf("ScanLabels(%s) = %d, %v, %v, %v", tc.in, end, present, rewrite, err)
		}
	}
}

func TestStringMember(t *testing.T) {
	in := []byte(`{"team":"a","job":null,"te\u0061m":"b","x":"\u00e9","team2":"c"}`)
	var want map[string]string
	if err := json.Unmarshal(in, &want); err != nil {
		t.Fatal(err)
	}
	var members []Span
	if _, _, _, err := ScanLabels(in, 0, &members); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"team", "job", "x", "team2", "absent", "Team"} {
		v, found := StringMember(in, 0, name)
		w, ok := want[name]
		if lv, lfound := LabelValue(in, members, name); lv != v || lfound != found {
			t.Errorf("LabelValue(%q) = %q, %v; StringMember %q, %v", name, lv, lfound, v, found)
		}
		if v != w || found != ok {
			t.Errorf("StringMember(%s) = %q, %v; want %q, %v", name, v, found, w, ok)
		}
	}
}

func TestLastWins(t *testing.T) {
	b := []byte(`[1,2]`)
	shape := errors.New("shape")
	var slot error
	// An error of shape is kept and the value skipped.
	if e, err := LastWins(b, 0, &slot, func() (int, error) { return 1, shape }); err != nil || e != len(b) || slot != shape {
		t.Errorf("shape: %d, %v, slot %v", e, err, slot)
	}
	// A later member that reads replaces it.
	if e, err := LastWins(b, 0, &slot, func() (int, error) { return 5, nil }); err != nil || e != 5 || slot != nil {
		t.Errorf("read: %d, %v, slot %v", e, err, slot)
	}
	// A syntax error stops.
	if _, err := LastWins(b, 0, &slot, func() (int, error) { return 0, ErrEnd }); err != ErrEnd {
		t.Errorf("syntax: %v", err)
	}
}

func TestWriteObject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		drop []string
		add  []Member
		want string
	}{
		{`{}`, nil, nil, `{}`},
		{`{ "a" : 1 , "b" : [ 2 ] }`, nil, nil, `{"a":1,"b":[ 2 ]}`},
		// The last of repeated keys, at its place; escaped keys as
		// written.
		{`{"a":1,"b":2,"a":3}`, nil, nil, `{"b":2,"a":3}`},
		{`{"a":1,"\u0061":3}`, nil, nil, `{"\u0061":3}`},
		{`{"a":1,"b":2,"a":3}`, []string{"a"}, []Member{{Key: "a", Value: []byte(`"x"`)}}, `{"b":2,"a":"x"}`},
		{`{"a":1}`, []string{"a"}, []Member{{Key: "b", Value: []byte(`[]`)}}, `{"b":[]}`},
	} {
		var drop func(string) bool
		if tc.drop != nil {
			drop = DropKeys(tc.drop...)
		}
		got, err := WriteObject(nil, []byte(tc.in), members(t, tc.in), drop, tc.add)
		if err != nil || string(got) != tc.want {
			t.Errorf("WriteObject(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
		// Decoded, the same as encoding/json's reading of the input.
		var w, g map[string]any
		_ = json.Unmarshal([]byte(tc.in), &w)
		for _, k := range tc.drop {
			delete(w, k)
		}
		for _, m := range tc.add {
			var v any
			_ = json.Unmarshal(m.Value, &v)
			w[m.Key] = v
		}
		if err := json.Unmarshal(got, &g); err != nil || !reflect.DeepEqual(w, g) {
			t.Errorf("WriteObject(%s) decodes to %v, want %v (%v)", tc.in, g, w, err)
		}
	}
}

func TestErrors(t *testing.T) {
	err := SyntaxAt([]byte(`[1 x`), 3, "after array element")
	if !IsSyntax(err) || !strings.Contains(err.Error(), `invalid character 'x' after array element at offset 3`) {
		t.Errorf("SyntaxAt: %v", err)
	}
	if SyntaxAt([]byte(`[`), 1, "x") != ErrEnd {
		t.Errorf("SyntaxAt past the end is not ErrEnd")
	}
	if err := TypeError('[', "a label set"); IsSyntax(err) || err.Error() != "json: cannot unmarshal array into a label set" {
		t.Errorf("TypeError: %v", err)
	}
}

// TestDepth holds the depth limit to encoding/json's (10000 levels), and
// shows that megabytes of "[" are an error, not a fatal stack overflow.
func TestDepth(t *testing.T) {
	nest := func(open, close string, n int) []byte {
		return []byte(strings.Repeat(open, n) + strings.Repeat(close, n))
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"arrays at the limit", nest("[", "]", 10000)},
		{"arrays past the limit", nest("[", "]", 10001)},
		{"objects at the limit", nest(`{"a":`, "}", 10000)},
		{"objects past the limit", nest(`{"a":`, "}", 10001)},
		{"mixed past the limit", nest(`[{"a":`, "}]", 5001)},
		{"12 MB of [", []byte(strings.Repeat("[", 12<<20))},
		{"12 MB of {", []byte(strings.Repeat(`{"":`, 3<<20))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := scanText(tc.in)
			if want := json.Valid(tc.in); want != (err == nil) {
				t.Fatalf("json.Valid %v, scanner error %v", want, err)
			}
			if err != nil && !IsSyntax(err) {
				t.Errorf("error %v is not a syntax error", err)
			}
		})
	}
}
