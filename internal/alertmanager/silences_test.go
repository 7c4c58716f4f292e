package alertmanager

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/jsonscan"
)

const (
	validTimes = `"startsAt":"2026-11-22T00:00:00Z","endsAt":"2026-11-23T00:00:00.000Z","createdBy":"alice","comment":"c"`
	silenceA   = `{"matchers":[{"name":"team","value":"a","isRegex":false}],` + validTimes + `}`
)

func TestParsePostableSilence(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       string
		wantStatus int    // of the error; 0 for success
		wantMsg    string // substring of the error
		wantCode   int    // the "code" of a schema error
	}{
		{name: "valid", body: silenceA},
		{name: "valid with id", body: `{"id":"3e1f7a4f-2b0a-4c1e-9a0e-6b5e5f0c1a11",` + silenceA[1:]},
		{name: "empty body", body: ``, wantStatus: 422, wantCode: 602, wantMsg: "silence in body is required"},
		{name: "null", body: `null`, wantStatus: 422, wantCode: 602, wantMsg: "silence in body is required"},
		{name: "malformed", body: `{bad`, wantStatus: 400, wantCode: 400, wantMsg: `parsing silence body from "" failed, because invalid character`},
		{name: "array", body: `[]`, wantStatus: 400, wantCode: 400, wantMsg: "parsing silence body"},
		{name: "no comment", body: `{"matchers":[{"name":"a","value":"b","isRegex":false}]}`, wantStatus: 422, wantCode: 602, wantMsg: "comment in body is required"},
		{name: "no matchers", body: `{` + validTimes + `}`, wantStatus: 422, wantCode: 602, wantMsg: "matchers in body is required"},
		{name: "empty matchers", body: `{"matchers":[],` + validTimes + `}`, wantStatus: 422, wantCode: 612, wantMsg: "matchers in body should have at least 1 items"},
		{name: "matcher without name", body: `{"matchers":[{"value":"b","isRegex":false}],` + validTimes + `}`, wantStatus: 422, wantCode: 602, wantMsg: "matchers.0.name in body is required"},
		{name: "matcher without isRegex", body: `{"matchers":[{"name":"a","value":"b"}],` + validTimes + `}`, wantStatus: 422, wantCode: 602, wantMsg: "matchers.0.isRegex in body is required"},
		{name: "null matcher", body: `{"matchers":[null],` + validTimes + `}`, wantStatus: 422, wantCode: 602, wantMsg: "matchers.0 in body is required"},
		{name: "bad time", body: `{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"yesterday","endsAt":"2026-11-23T00:00:00Z","createdBy":"x","comment":"c"}`,
			wantStatus: 400, wantCode: 400, wantMsg: `parsing time "yesterday"`},
		{name: "invalid regex", body: `{"matchers":[{"name":"a","value":"(","isRegex":true}],` + validTimes + `}`,
			wantStatus: 400, wantMsg: `silence invalid: invalid label matcher 0: invalid regular expression "("`},
		// Alertmanager 0.27 and later take any UTF-8 label name.
		{name: "UTF-8 label names", body: `{"matchers":[{"name":"a-b","value":"x","isRegex":false},{"name":"service.name","value":"checkout","isRegex":false}],` + validTimes + `}`},
		{name: "empty label name", body: `{"matchers":[{"name":"","value":"x","isRegex":false}],` + validTimes + `}`,
			wantStatus: 400, wantMsg: `silence invalid: invalid label matcher 0: invalid label name ""`},
		{name: "id that is no UUID", body: `{"id":"../status",` + silenceA[1:], wantStatus: 400, wantMsg: "invalid silence ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ms, err := ParsePostableSilence([]byte(tc.body))
			if tc.wantStatus == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if len(ms) != len(s.Matchers) || len(ms) == 0 {
					t.Fatalf("matchers %v for %+v", ms, s)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error for %s", tc.body)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q, want %q", err, tc.wantMsg)
			}
			var se *schemaError
			var ae *apierror.Error
			switch {
			case errors.As(err, &se):
				if se.status != tc.wantStatus || se.code != tc.wantCode {
					t.Errorf("status %d code %d, want %d %d", se.status, se.code, tc.wantStatus, tc.wantCode)
				}
			case errors.As(err, &ae):
				if ae.Status() != tc.wantStatus || tc.wantCode != 0 {
					t.Errorf("status %d (JSON string body), want %d code %d", ae.Status(), tc.wantStatus, tc.wantCode)
				}
			default:
				t.Errorf("untyped error %v", err)
			}
		})
	}
}

// TestPostableSilenceIsRebuilt: what promgate forwards is the silence it
// checked, in one spelling.
func TestPostableSilenceIsRebuilt(t *testing.T) {
	body := `{"matchers":[{"name":"team","value":"a","isRegex":false}],"Matchers":[{"name":"team","value":"b","isRegex":false}],` + validTimes + `,"unknown":1}`
	s, ms, err := ParsePostableSilence([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(s)
	want := `{"matchers":[{"name":"team","value":"b","isRegex":false}],` + validTimes + `}`
	if string(out) != want {
		t.Errorf("forwarded %s\nwant      %s", out, want)
	}
	if len(ms) != 1 || ms[0].Value != "b" {
		t.Errorf("checked %v, not what is forwarded", ms)
	}
}

func silenceJSON(id string, matchers ...string) string {
	return `{"id":"` + id + `","status":{"state":"active"},"updatedAt":"2026-11-22T00:00:00Z","matchers":[` +
		strings.Join(matchers, ",") + `],` + validTimes + `}`
}

func TestFilterSilences(t *testing.T) {
	eqA := `{"name":"team","value":"a","isRegex":false,"isEqual":true}`
	eqB := `{"name":"team","value":"b","isRegex":false,"isEqual":true}`
	notB := `{"name":"team","value":"b","isRegex":false,"isEqual":false}`
	oldA := `{"name":"team","value":"a","isRegex":false}` // Alertmanager < 0.22
	reAB := `{"name":"team","value":"a|b","isRegex":true,"isEqual":true}`
	notReA := `{"name":"team","value":"a","isRegex":true,"isEqual":false}`
	bad := `{"name":"team","value":"(","isRegex":true,"isEqual":true}`
	body := "[" + strings.Join([]string{
		silenceJSON("s1", eqA),
		silenceJSON("s2", eqB),
		silenceJSON("s3", notB),
		silenceJSON("s4", oldA),
		silenceJSON("s5", reAB),
		silenceJSON("s6", notReA),
		silenceJSON("s7", bad),
		silenceJSON("s8"),
	}, ",") + "]"
	for _, tc := range []struct {
		policy []string
		want   []string
	}{
		{[]string{`{team="a"}`}, []string{"s1", "s4"}},
		{[]string{`{team="b"}`}, []string{"s2"}},
		{[]string{`{team=~"a|b"}`}, []string{"s1", "s2", "s4", "s5"}},
		{[]string{`{team!="b"}`}, []string{"s1", "s3", "s4"}},
		{[]string{`{team="c"}`}, nil},
	} {
		e := policy(t, tc.policy...)
		out, err := e.FilterSilences([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		var got []struct{ ID string }
		if err := json.Unmarshal(out, &got); err != nil || got == nil {
			t.Fatalf("%s: %v", out, err)
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%v: got %v, want %v", tc.policy, ids, tc.want)
		}
		owned, err := e.OwnedSilenceIDs([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if len(owned) != len(tc.want) {
			t.Errorf("%v: OwnedSilenceIDs %v, want %v", tc.policy, owned, tc.want)
		}
	}
}

func TestSilenceID(t *testing.T) {
	for _, tc := range []struct {
		path   string
		wantOK bool
	}{
		{"/api/v2/silence/3e1f7a4f-2b0a-4c1e-9a0e-6b5e5f0c1a11", true},
		{"/api/v2/silence/3E1F7A4F-2B0A-4C1E-9A0E-6B5E5F0C1A11", true},
		{"/api/v2/silence/xyz", false},
		{"/api/v2/silence/3e1f7a4f-2b0a-4c1e-9a0e-6b5e5f0c1a11%2F..", false},
	} {
		_, err := silenceID(tc.path)
		if (err == nil) != tc.wantOK {
			t.Errorf("%s: error %v", tc.path, err)
		}
		var se *schemaError
		if err != nil && (!errors.As(err, &se) || se.status != http.StatusUnprocessableEntity || se.code != codeInvalidType) {
			t.Errorf("%s: error %#v, want Alertmanager's 422", tc.path, err)
		}
	}
}

// TestSilencesAmbiguousKeys: a silence whose decided keys (its ID, its
// matchers, a matcher's name, value, isRegex and isEqual) are given twice
// or spelt otherwise must not reach a client that reads other matchers
// than the ones ownership was decided on: spelt otherwise, the answer is
// refused; given twice, the last decides and the silence is written anew
// with each key once.
func TestSilencesAmbiguousKeys(t *testing.T) {
	const (
		eqA  = `{"name":"team","value":"a","isRegex":false,"isEqual":true}`
		eqB  = `{"name":"team","value":"b","isRegex":false,"isEqual":true}`
		neqB = `{"name":"team","value":"b","isRegex":false,"isEqual":false}`
		rest = `"status":{"state":"active"},` + validTimes
	)
	for _, tc := range []struct {
		name string
		body string
		want []string // IDs kept, or nil: refused
	}{
		{name: "Matchers", body: `[{"id":"s1","matchers":[` + eqB + `],"Matchers":[` + eqA + `],` + rest + `}]`},
		{name: "MATCHERS first", body: `[{"id":"s1","MATCHERS":[` + eqB + `],"matchers":[` + eqA + `],` + rest + `}]`},
		{name: "ID", body: `[{"id":"s1","ID":"s2","matchers":[` + eqA + `],` + rest + `}]`},
		{name: "Name in a matcher", body: `[{"id":"s1","matchers":[{"name":"team","Name":"x","value":"a","isRegex":false}],` + rest + `}]`},
		{name: "IsEqual in a matcher", body: `[{"id":"s1","matchers":[{"name":"team","value":"b","isRegex":false,"isEqual":false,"IsEqual":true}],` + rest + `}]`},
		{name: "another tenant's silence spelt otherwise", body: `[{"id":"s1","matchers":[` + eqA + `],` + rest + `},{"id":"s2","Matchers":[` + eqB + `]}]`},
		{name: "matchers twice: the last", body: `[{"id":"s1","matchers":[` + eqB + `],"matchers":[` + eqA + `],` + rest + `}]`, want: []string{"s1"}},
		{name: "matchers twice: the last is another's", body: `[{"id":"s1","matchers":[` + eqA + `],"matchers":[` + eqB + `],` + rest + `}]`, want: []string{}},
		// encoding/json decodes the second list into the elements of
		// the first: isEqual false would stay.
		{name: "matchers twice: not merged", body: `[{"id":"s1","matchers":[` + neqB + `],"matchers":[{"name":"team","value":"a","isRegex":false}],` + rest + `}]`, want: []string{"s1"}},
		{name: "id twice", body: `[{"id":"s2","id":"s1","matchers":[` + eqA + `],` + rest + `}]`, want: []string{"s1"}},
		{name: "value twice in a matcher", body: `[{"id":"s1","matchers":[{"name":"team","value":"b","value":"a","isRegex":false}],` + rest + `}]`, want: []string{"s1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := policy(t, `{team="a"}`)
			out, err := e.FilterSilences([]byte(tc.body))
			owned, oerr := e.OwnedSilenceIDs([]byte(tc.body))
			if tc.want == nil {
				if !errors.Is(err, jsonscan.ErrSpelling) || !errors.Is(oerr, jsonscan.ErrSpelling) {
					t.Fatalf("errors %v, %v; answer %s, IDs %v; want %v", err, oerr, out, owned, jsonscan.ErrSpelling)
				}
				return
			}
			if err != nil || oerr != nil {
				t.Fatal(err, oerr)
			}
			var list []json.RawMessage
			if err := json.Unmarshal(out, &list); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
			ids := []string{}
			for _, raw := range list {
				s := readOnce(t, raw, "id", "matchers")
				var id string
				_ = json.Unmarshal(s["id"], &id)
				ids = append(ids, id)
				var ms []json.RawMessage
				_ = json.Unmarshal(s["matchers"], &ms)
				for _, m := range ms {
					readOnce(t, m, "name", "value", "isRegex", "isEqual")
				}
				// What a client matching keys exactly reads is the
				// tenant's.
				var ems []Matcher
				if err := json.Unmarshal(s["matchers"], &ems); err != nil || !e.ownsSilence(gettableSilence{ID: id, Matchers: ems}) {
					t.Errorf("%s: a client reads matchers %s", out, s["matchers"])
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("kept %v (%s), want %v", ids, out, tc.want)
			}
			if !maps.Equal(owned, setOf(tc.want...)) {
				t.Errorf("OwnedSilenceIDs %v, want %v", owned, tc.want)
			}
		})
	}
}

func setOf(xs ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}
