package jsonscan

import (
	"reflect"
	"testing"
)

// TestObjectWalk: declared keys are read (the last of repeated ones
// winning, an earlier error of shape forgotten), others skipped, every
// member's span kept, and keys spelt otherwise refused after the syntax
// of the whole object is checked.
func TestObjectWalk(t *testing.T) {
	o := NewObject("labels", "name")
	for _, tc := range []struct {
		in      string
		want    []string // values read, in order
		spans   int
		dup     bool
		wantErr error
		syntax  bool
	}{
		{in: `{"labels":"a","x":1,"name":"n"}`, want: []string{"labels=a", "name=n"}, spans: 3},
		{in: `{}`, spans: 0},
		{in: `{"labels":1,"labels":"b"}`, want: []string{"labels=b"}, spans: 2, dup: true},
		{in: `{"labels":"b","labels":1}`, wantErr: errShape, spans: 2, dup: true},
		{in: `{"Labels":"b"}`, wantErr: ErrSpelling, spans: 1},
		{in: `{"labels":"a","NAME":"b"}`, want: []string{"labels=a"}, wantErr: ErrSpelling, spans: 2},
		{in: `{"LABEL\u017f":"b"}`, wantErr: ErrSpelling, spans: 1},
		{in: `{"Labels":"b",}`, syntax: true},
		{in: `{"labels":"b"`, syntax: true},
	} {
		var got []string
		var w Walk
		_, err := o.Walk([]byte(tc.in), 0, &w, func(field, vs int) (int, error) {
			b := []byte(tc.in)
			if b[vs] != '"' {
				e, err := SkipValue(b, vs)
				if err == nil {
					err = errShape
				}
				return e, err
			}
			s, e, err := StringAt(b, vs)
			got = append(got, []string{"labels", "name"}[field]+"="+s)
			return e, err
		})
		switch {
		case tc.syntax:
			if !IsSyntax(err) {
				t.Errorf("%s: error %v, want a syntax error", tc.in, err)
			}
			continue
		case err != tc.wantErr:
			t.Errorf("%s: error %v, want %v", tc.in, err, tc.wantErr)
		}
		if tc.wantErr == nil && !reflect.DeepEqual(got, tc.want) || len(w.Spans) != tc.spans || w.Dup != tc.dup {
			t.Errorf("%s: read %v, %d spans, dup %v", tc.in, got, len(w.Spans), w.Dup)
		}
	}
}

var errShape = TypeError('1', "a string")
