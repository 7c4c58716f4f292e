package alertmanager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/promgate/promgate/internal/jsonscan"
)

// gettableAlert renders an alert as Alertmanager 0.25 does.
func gettableAlert(fp string, labels map[string]string, silencedBy, inhibitedBy []string) string {
	state := "active"
	if len(silencedBy)+len(inhibitedBy) > 0 {
		state = "suppressed"
	}
	l, _ := json.Marshal(labels)
	s, _ := json.Marshal(nonNil(silencedBy))
	i, _ := json.Marshal(nonNil(inhibitedBy))
	return fmt.Sprintf(`{"annotations":{"summary":"s"},"endsAt":"2030-01-01T00:00:00.000Z","fingerprint":%q,"receivers":[{"name":"r"}],"startsAt":"2026-01-01T00:00:00.000Z","status":{"inhibitedBy":%s,"silencedBy":%s,"state":%q},"updatedAt":"2026-01-01T00:00:00.000Z","labels":%s}`,
		fp, i, s, state, l)
}

type alertSummary struct {
	Fingerprint string
	Labels      map[string]string
	Status      struct{ SilencedBy, InhibitedBy []string }
}

func TestFilterAlerts(t *testing.T) {
	a1 := gettableAlert("a1", map[string]string{"alertname": "X", "team": "a"}, nil, nil)
	a2 := gettableAlert("a2", map[string]string{"alertname": "Y", "team": "a"}, []string{"sil-a", "sil-admin"}, []string{"b1", "a1"})
	b1 := gettableAlert("b1", map[string]string{"alertname": "X", "team": "b"}, []string{"sil-b"}, nil)
	body := "[" + strings.Join([]string{a1, a2, b1}, ",") + "]"

	for _, tc := range []struct {
		name     string
		policy   []string
		visible  Visible
		wantFPs  []string
		wantRefs Refs
		// the status lists of a2 after redaction, when a2 is kept
		wantSilencedBy, wantInhibitedBy []string
	}{
		{name: "team a, nothing else visible", policy: []string{`{team="a"}`},
			wantFPs:  []string{"a1", "a2"},
			wantRefs: Refs{Silences: []string{"sil-a", "sil-admin"}, Alerts: []string{"b1", "a1"}},
			// Another tenant's or an admin's silence and alert are not named.
			wantSilencedBy: []string{}, wantInhibitedBy: []string{}},
		{name: "team a, own silence and alert visible", policy: []string{`{team="a"}`},
			visible:  Visible{Silences: map[string]bool{"sil-a": true}, Alerts: map[string]bool{"a1": true}},
			wantFPs:  []string{"a1", "a2"},
			wantRefs: Refs{Silences: []string{"sil-a", "sil-admin"}, Alerts: []string{"b1", "a1"}},
			// Order kept.
			wantSilencedBy: []string{"sil-a"}, wantInhibitedBy: []string{"a1"}},
		{name: "team b", policy: []string{`{team="b"}`},
			visible:  Visible{Silences: map[string]bool{"sil-b": true}},
			wantFPs:  []string{"b1"},
			wantRefs: Refs{Silences: []string{"sil-b"}}},
		{name: "one alert name of team a", policy: []string{`{team="a", alertname="X"}`},
			wantFPs: []string{"a1"}},
		{name: "two selectors", policy: []string{`{team="a", alertname="X"}`, `{team="b"}`},
			visible: Visible{Silences: map[string]bool{"sil-b": true}},
			wantFPs: []string{"a1", "b1"}, wantRefs: Refs{Silences: []string{"sil-b"}}},
		{name: "nobody", policy: []string{`{team="z"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := policy(t, tc.policy...).FilterAlerts([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if refs := l.Refs(); !reflect.DeepEqual(refs, tc.wantRefs) {
				t.Errorf("refs %+v, want %+v", refs, tc.wantRefs)
			}
			out, err := l.Encode(tc.visible)
			if err != nil {
				t.Fatal(err)
			}
			var got []alertSummary
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
			if got == nil {
				t.Fatalf("answer %s is not an array", out)
			}
			var fps []string
			for _, a := range got {
				fps = append(fps, a.Fingerprint)
				if a.Fingerprint == "a2" {
					if !reflect.DeepEqual(a.Status.SilencedBy, tc.wantSilencedBy) || !reflect.DeepEqual(a.Status.InhibitedBy, tc.wantInhibitedBy) {
						t.Errorf("a2 status %+v, want silencedBy %v inhibitedBy %v", a.Status, tc.wantSilencedBy, tc.wantInhibitedBy)
					}
				}
			}
			if !reflect.DeepEqual(fps, tc.wantFPs) {
				t.Errorf("alerts %v, want %v", fps, tc.wantFPs)
			}
		})
	}
}

func TestFilterAlertsKeepsBytes(t *testing.T) {
	// An alert without foreign references goes out as it came, fields
	// promgate does not know included.
	a := `{"labels":{"team":"a"},"fingerprint":"f","status":{"silencedBy":[],"inhibitedBy":[],"state":"active"},"newField":{"x":[1,2]}}`
	l, err := policy(t, `{team="a"}`).FilterAlerts([]byte("[" + a + "]"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := l.Encode(Visible{})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "["+a+"]" {
		t.Errorf("got %s", out)
	}
}

func TestFilterAlertGroups(t *testing.T) {
	a1 := gettableAlert("a1", map[string]string{"alertname": "X", "team": "a"}, nil, nil)
	b1 := gettableAlert("b1", map[string]string{"alertname": "X", "team": "b"}, nil, nil)
	b2 := gettableAlert("b2", map[string]string{"alertname": "Y", "team": "b"}, []string{"sil-b"}, nil)
	body := `[` +
		`{"alerts":[` + a1 + `,` + b1 + `],"labels":{"alertname":"X"},"receiver":{"name":"default"}},` +
		`{"alerts":[` + b2 + `],"labels":{"alertname":"Y"},"receiver":{"name":"team-b"}}` +
		`]`
	type groupSummary struct {
		Labels   map[string]string
		Receiver struct{ Name string }
		Alerts   []alertSummary
	}
	for _, tc := range []struct {
		policy  []string
		visible Visible
		want    map[string][]string // receiver -> fingerprints
	}{
		{[]string{`{team="a"}`}, Visible{}, map[string][]string{"default": {"a1"}}},
		{[]string{`{team="b"}`}, Visible{Silences: map[string]bool{"sil-b": true}}, map[string][]string{"default": {"b1"}, "team-b": {"b2"}}},
		{[]string{`{team="c"}`}, Visible{}, map[string][]string{}},
	} {
		l, err := policy(t, tc.policy...).FilterAlertGroups([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		out, err := l.Encode(tc.visible)
		if err != nil {
			t.Fatal(err)
		}
		var groups []groupSummary
		if err := json.Unmarshal(out, &groups); err != nil || groups == nil {
			t.Fatalf("%s: %v", out, err)
		}
		got := map[string][]string{}
		for _, g := range groups {
			if len(g.Labels) == 0 {
				t.Errorf("%v: group %s lost its labels", tc.policy, g.Receiver.Name)
			}
			for _, a := range g.Alerts {
				got[g.Receiver.Name] = append(got[g.Receiver.Name], a.Fingerprint)
				if a.Fingerprint == "b2" && !reflect.DeepEqual(a.Status.SilencedBy, []string{"sil-b"}) {
					t.Errorf("b2 lost its own silence: %+v", a.Status)
				}
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: got %v, want %v", tc.policy, got, tc.want)
		}
	}
}

func TestFilterAlertsBadAnswer(t *testing.T) {
	e := policy(t, `{team="a"}`)
	for _, body := range []string{`{}`, `[1]`, `[{"labels":{"team":1}}]`, `nope`} {
		if _, err := e.FilterAlerts([]byte(body)); err == nil {
			t.Errorf("FilterAlerts(%s): no error", body)
		}
	}
	for _, body := range []string{`{}`, `[{"alerts":{}}]`, `[{"alerts":[{"labels":[]}]}]`} {
		if _, err := e.FilterAlertGroups([]byte(body)); err == nil {
			t.Errorf("FilterAlertGroups(%s): no error", body)
		}
	}
}

// TestFilterOddAnswers pins down how answers Alertmanager does not write
// are read: as clients matching keys exactly read them, a decided key
// spelt otherwise refused (see TestFilterAmbiguousKeys).
func TestFilterOddAnswers(t *testing.T) {
	const (
		a    = `{"labels":{"team":"a"}}`
		b    = `{"labels":{"team":"b"}}`
		refs = `{"labels":{"team":"a"},"status":{"state":"suppressed","silencedBy":["s1","s2"],"inhibitedBy":[]},"x":1}`
	)
	s2 := Visible{Silences: map[string]bool{"s2": true}}
	for _, tc := range []struct {
		name, policy, body string
		groups             bool
		visible            Visible
		want               string // "filter" or "encode": that fails
		wantRefs           Refs
	}{
		{name: "label sets given twice: the last", policy: `{team="b"}`,
			body: `[{"labels":{"team":"b"},"labels":{"job":"j"}}]`, want: `[]`},
		{name: "a later label set replaces the earlier", policy: `{team="a"}`,
			body: `[{"labels":{"team":"b"},"x":1,"labels":{"team":"a"},"x":2}]`, want: `[{"labels":{"team":"a"},"x":2}]`},
		{name: "null empties the label set", policy: `{team="a"}`,
			body: `[{"labels":{"team":"a"},"labels":null}]`, want: `[]`},
		{name: "labels spelt otherwise", policy: `{team="a"}`,
			body: `[{"Labels":{"team":"a"}},{"labelſ":{"team":"a"}},{"label":{"team":"a"}}]`, want: "filter"},
		{name: "labels escaped are labels", policy: `{team="a"}`,
			body: `[{"l\u0061bels":{"team":"a"}},{"label":{"team":"a"}}]`, want: `[{"l\u0061bels":{"team":"a"}}]`},
		{name: "a null label value is empty", policy: `{team!="b"}`,
			body: `[{"labels":{"team":null}},{"labels":{"team":"b","team":null}},null]`, want: `[{"labels":{"team":null}},{"labels":{"team":"b","team":null}},null]`},
		{name: "unreadable labels refuse the answer", policy: `{team="a"}`,
			body: `[{"labels":{"team":"a"}},{"labels":{"team":"b","job":1}}]`, want: "filter"},
		{name: "unreadable labels given twice", policy: `{team="a"}`,
			body: `[{"Labels":[],"labels":{"team":"a"}}]`, want: "filter"},
		{name: "status given twice: the last", policy: `{team="a"}`,
			body:     `[{"labels":{"team":"a"},"status":{"silencedBy":["s1"]},"status":{"inhibitedBy":["f1"]}}]`,
			visible:  Visible{Alerts: map[string]bool{"f1": true}},
			want:     `[{"labels":{"team":"a"},"status":{"inhibitedBy":["f1"]}}]`,
			wantRefs: Refs{Alerts: []string{"f1"}}},
		{name: "status given twice, the last null", policy: `{team="a"}`,
			body: `[{"labels":{"team":"a"},"status":{"silencedBy":["s1"]},"status":{"inhibitedBy":["f1"]},"status":null}]`,
			want: `[{"labels":{"team":"a"},"status":null}]`},
		{name: "a null ID is the empty one", policy: `{team="a"}`,
			body:     `[{"labels":{"team":"a"},"status":{"silencedBy":["s1","s2"]},"status":{"silencedBy":[null]}}]`,
			visible:  Visible{Silences: map[string]bool{"s1": true}},
			want:     `[{"labels":{"team":"a"},"status":{"silencedBy":[],"inhibitedBy":[]}}]`,
			wantRefs: Refs{Silences: []string{""}}},
		{name: "references removed: only the status written anew", policy: `{team="a"}`,
			body: `[` + b + `,` + refs + `,` + a + `]`, visible: s2,
			want:     `[{"labels":{"team":"a"},"x":1,"status":{"state":"suppressed","silencedBy":["s2"],"inhibitedBy":[]}},` + a + `]`,
			wantRefs: Refs{Silences: []string{"s1", "s2"}}},
		{name: "references removed from a status with keys given twice", policy: `{team="a"}`,
			body:     `[{"labels":{"team":"a"},"status":{"silencedBy":["s1"],"x":1,"state":"s","state":"t"}}]`,
			want:     `[{"labels":{"team":"a"},"status":{"x":1,"state":"t","silencedBy":[],"inhibitedBy":[]}}]`,
			wantRefs: Refs{Silences: []string{"s1"}}},
		{name: "status given twice, references to remove from the last", policy: `{team="a"}`,
			body:     `[{"status":{"silencedBy":["s2"],"x":1},"labels":{"team":"a"},"status":{"silencedBy":["s1","s2"],"state":"t"}}]`,
			visible:  s2,
			want:     `[{"labels":{"team":"a"},"status":{"state":"t","silencedBy":["s2"],"inhibitedBy":[]}}]`,
			wantRefs: Refs{Silences: []string{"s1", "s2"}}},
		{name: "status spelt otherwise, references visible", policy: `{team="a"}`,
			body: `[{"labels":{"team":"a"},"Status":{"silencedBy":["s2"]}}]`, visible: s2, want: "filter"},
		{name: "status spelt otherwise, references to remove", policy: `{team="a"}`,
			body: `[{"labels":{"team":"a"},"status":{"state":"x"},"Status":{"silencedBy":["s1"]}}]`, want: "filter"},
		{name: "silencedBy spelt otherwise, references to remove", policy: `{team="a"}`,
			body: `[{"labels":{"team":"a"},"status":{"silencedBy":["s2"],"SilencedBy":["s1"]}}]`, want: "filter"},
		{name: "an earlier status spelt otherwise is not read", policy: `{team="a"}`,
			body: `[{"labels":{"team":"a"},"status":{"SilencedBy":["s1"]},"status":{"silencedBy":[]}}]`,
			want: `[{"labels":{"team":"a"},"status":{"silencedBy":[]}}]`},
		{name: "group kept whole", policy: `{team="a"}`, groups: true,
			body: ` [ {"alerts":[` + a + `],"labels":{"x":"<>"}} ] `, want: `[{"alerts":[` + a + `],"labels":{"x":"<>"}}]`},
		{name: "group with an alert dropped: only alerts written anew", policy: `{team="a"}`, groups: true,
			body: `[{"receiver":{"name":"r"},"alerts":[` + b + `,` + a + `],"labels":{"x":"<>"},"labels":{"x":"y"}},{"alerts":[` + b + `]},{"alerts":null}]`,
			want: `[{"receiver":{"name":"r"},"labels":{"x":"y"},"alerts":[` + a + `]}]`},
		{name: "group with alerts twice: the last", policy: `{team="a"}`, groups: true,
			body: `[{"alerts":[` + b + `],"alerts":[` + a + `]}]`, want: `[{"alerts":[` + a + `]}]`},
		{name: "group with alerts twice: the first unread", policy: `{team="a"}`, groups: true,
			body: `[{"alerts":[{"labels":1}],"alerts":[` + a + `]}]`, want: `[{"alerts":[` + a + `]}]`},
		{name: "group with alerts spelt otherwise", policy: `{team="a"}`, groups: true,
			body: `[{"Alerts":[` + b + `],"alerts":[` + a + `]}]`, want: "filter"},
		{name: "group without alerts", policy: `{team="a"}`, groups: true, body: `[{"labels":{}}]`, want: "filter"},
		{name: "null group", policy: `{team="a"}`, groups: true, body: `[null]`, want: "filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := policy(t, tc.policy)
			var refs func() Refs
			var encode func(Visible) ([]byte, error)
			var err error
			if tc.groups {
				var l *AlertGroups
				l, err = e.FilterAlertGroups([]byte(tc.body))
				if l != nil {
					refs, encode = l.Refs, l.Encode
				}
			} else {
				var l *Alerts
				l, err = e.FilterAlerts([]byte(tc.body))
				if l != nil {
					refs, encode = l.Refs, l.Encode
				}
			}
			if (err != nil) != (tc.want == "filter") {
				t.Fatalf("filter error %v, want %s", err, tc.want)
			}
			if err != nil {
				return
			}
			if got := refs(); !reflect.DeepEqual(got, tc.wantRefs) {
				t.Errorf("refs %#v, want %#v", got, tc.wantRefs)
			}
			out, err := encode(tc.visible)
			if (err != nil) != (tc.want == "encode") {
				t.Fatalf("encode error %v, want %s", err, tc.want)
			}
			if err == nil && string(out) != tc.want {
				t.Errorf("got  %s\nwant %s", out, tc.want)
			}
		})
	}
}

// TestFilterAmbiguousKeys: an alert, its status or a group whose decided
// keys are given twice, or spelt otherwise, must not reach a client that
// reads another member than the one promgate checked. Clients matching keys
// exactly (JavaScript, Python) read the last of repeated keys and nothing
// under another spelling; Go's encoding/json reads both. So promgate
// decides on the last member, writes the object anew with each key once,
// and refuses (502) an answer with a decided key spelt otherwise.
func TestFilterAmbiguousKeys(t *testing.T) {
	const (
		a = `{"labels":{"team":"a"}}`
		b = `{"labels":{"team":"b"}}`
	)
	s1 := Visible{Silences: map[string]bool{"s1": true}}
	for _, tc := range []struct {
		name    string
		body    string
		groups  bool
		visible Visible
		want    string // the answer, or "refused"
	}{
		{name: "labels twice: the last decides", body: `[{"labels":{"team":"a"},"labels":{"job":"j"}}]`, want: `[]`},
		{name: "labels twice: the last is the tenant's", body: `[{"labels":{"team":"b"},"labels":{"team":"a"},"fingerprint":"f1"}]`,
			want: `[{"labels":{"team":"a"},"fingerprint":"f1"}]`},
		{name: "labels, then null", body: `[{"labels":{"team":"a"},"labels":null}]`, want: `[]`},
		{name: "Labels after labels", body: `[{"labels":{"team":"b"},"Labels":{"team":"a"}}]`, want: "refused"},
		{name: "Labels before labels", body: `[{"Labels":{"team":"b"},"labels":{"team":"a"}}]`, want: "refused"},
		{name: "Labels alone", body: `[{"Labels":{"team":"a"}}]`, want: "refused"},
		{name: "labelſ", body: `[{"labelſ":{"team":"b"},"labels":{"team":"a"}}]`, want: "refused"},
		{name: "another tenant's alert spelt otherwise", body: `[` + a + `,{"LABELS":{"team":"b"}}]`, want: "refused"},
		{name: "fingerprint twice", body: `[{"labels":{"team":"a"},"fingerprint":"fb","fingerprint":"fa"}]`,
			want: `[{"labels":{"team":"a"},"fingerprint":"fa"}]`},
		{name: "Fingerprint", body: `[{"labels":{"team":"a"},"fingerprint":"fa","Fingerprint":"fb"}]`, want: "refused"},
		{name: "status twice: the last", body: `[{"labels":{"team":"a"},"status":{"silencedBy":["s2"]},"status":{"silencedBy":["s1"]}}]`,
			visible: s1, want: `[{"labels":{"team":"a"},"status":{"silencedBy":["s1"]}}]`},
		{name: "status twice, the last null", body: `[{"labels":{"team":"a"},"status":{"silencedBy":["s2"]},"status":null}]`,
			want: `[{"labels":{"team":"a"},"status":null}]`},
		{name: "Status", body: `[{"labels":{"team":"a"},"Status":{"silencedBy":["s1"]}}]`, visible: s1, want: "refused"},
		{name: "silencedBy twice", body: `[{"labels":{"team":"a"},"status":{"silencedBy":["s2"],"silencedBy":["s1"],"state":"suppressed"}}]`,
			visible: s1, want: `[{"labels":{"team":"a"},"status":{"silencedBy":["s1"],"state":"suppressed"}}]`},
		{name: "SilencedBy", body: `[{"labels":{"team":"a"},"status":{"silencedBy":["s2"],"SilencedBy":["s1"]}}]`, visible: s1, want: "refused"},
		{name: "inhibitedBy twice", body: `[{"labels":{"team":"a"},"status":{"inhibitedBy":["f2"],"inhibitedBy":[]}}]`,
			want: `[{"labels":{"team":"a"},"status":{"inhibitedBy":[]}}]`},

		{name: "group: labels twice in an alert", groups: true,
			body: `[{"alerts":[{"labels":{"team":"a"},"labels":{"job":"j"}}],"labels":{"alertname":"X"}}]`, want: `[]`},
		{name: "group: Labels in an alert", groups: true,
			body: `[{"alerts":[{"labels":{"team":"b"},"Labels":{"team":"a"}}],"labels":{"alertname":"X"}}]`, want: "refused"},
		{name: "group: an alert rewritten", groups: true,
			body: `[{"alerts":[{"labels":{"team":"b"},"labels":{"team":"a"}}],"labels":{"alertname":"X"}}]`,
			want: `[{"labels":{"alertname":"X"},"alerts":[{"labels":{"team":"a"}}]}]`},
		{name: "group: receiver twice", groups: true,
			body: `[{"receiver":{"name":"team-b"},"alerts":[` + a + `],"receiver":{"name":"default"}}]`,
			want: `[{"receiver":{"name":"default"},"alerts":[` + a + `]}]`},
		{name: "group: Receiver", groups: true,
			body: `[{"Receiver":{"name":"team-b"},"receiver":{"name":"default"},"alerts":[` + a + `]}]`, want: "refused"},
		{name: "group: labels twice", groups: true,
			body: `[{"labels":{"alertname":"Y"},"alerts":[` + a + `],"labels":{"alertname":"X"}}]`,
			want: `[{"labels":{"alertname":"X"},"alerts":[` + a + `]}]`},
		{name: "group: LABELS", groups: true,
			body: `[{"LABELS":{"alertname":"Y"},"alerts":[` + a + `],"labels":{"alertname":"X"}}]`, want: "refused"},
		{name: "group: Alerts", groups: true, body: `[{"Alerts":[` + b + `],"alerts":[` + a + `]}]`, want: "refused"},
		{name: "group: alerts twice", groups: true, body: `[{"alerts":[` + b + `],"alerts":[` + a + `]}]`, want: `[{"alerts":[` + a + `]}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := policy(t, `{team="a"}`)
			var l listing
			var err error
			if tc.groups {
				l, err = e.FilterAlertGroups([]byte(tc.body))
			} else {
				l, err = e.FilterAlerts([]byte(tc.body))
			}
			var out []byte
			if err == nil {
				out, err = l.Encode(tc.visible)
			}
			if tc.want == "refused" {
				if !errors.Is(err, jsonscan.ErrSpelling) {
					t.Fatalf("error %v, answer %s; want %v", err, out, jsonscan.ErrSpelling)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("got  %s\nwant %s", out, tc.want)
			}
			clientsAgree(t, e, out, tc.groups, tc.visible)
		})
	}
}

// clientsAgree checks that every client reads in out what promgate
// decided on: each decided key of an alert, its status and a group given
// once and spelt as Alertmanager spells it, the labels of every alert
// allowed and the silences and alerts it names visible.
func clientsAgree(t *testing.T, e *Enforcer, out []byte, groups bool, v Visible) {
	t.Helper()
	var list []json.RawMessage
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	var alerts []json.RawMessage
	for _, raw := range list {
		if !groups {
			alerts = append(alerts, raw)
			continue
		}
		g := readOnce(t, raw, "alerts", "labels", "receiver")
		var as []json.RawMessage
		if err := json.Unmarshal(g["alerts"], &as); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		alerts = append(alerts, as...)
	}
	for _, raw := range alerts {
		m := readOnce(t, raw, "labels", "fingerprint", "status")
		var ls map[string]string
		_ = json.Unmarshal(m["labels"], &ls)
		if !e.Allows(ls) {
			t.Errorf("%s: a client reads labels %v", out, ls)
		}
		if m["status"] == nil {
			continue
		}
		s := readOnce(t, m["status"], "silencedBy", "inhibitedBy")
		var sil, inh []string
		_ = json.Unmarshal(s["silencedBy"], &sil)
		_ = json.Unmarshal(s["inhibitedBy"], &inh)
		for _, id := range sil {
			if !v.Silences[id] {
				t.Errorf("%s: a client reads silence %s", out, id)
			}
		}
		for _, fp := range inh {
			if !v.Alerts[fp] {
				t.Errorf("%s: a client reads alert %s", out, fp)
			}
		}
	}
}

// readOnce decodes the object raw as a client matching keys exactly does,
// and fails when one of keys is given twice or spelt otherwise (a Go
// client would read another member).
func readOnce(t *testing.T, raw []byte, keys ...string) map[string]json.RawMessage {
	t.Helper()
	if string(raw) == "null" {
		return nil
	}
	seen := map[string]bool{}
	_, err := jsonscan.WalkObject(raw, 0, func(ks, ke int, escaped bool, vs int) (int, error) {
		k, err := jsonscan.StringValue(raw, ks, ke, escaped)
		if err != nil {
			return vs, err
		}
		for _, d := range keys {
			switch {
			case k == d && seen[d]:
				t.Errorf("%s: %s given twice", raw, d)
			case k == d:
				seen[d] = true
			case strings.EqualFold(k, d):
				t.Errorf("%s: %s spelt %s", raw, d, k)
			}
		}
		return jsonscan.SkipValue(raw, vs)
	})
	var m map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(raw, &m)
	}
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return m
}

// FuzzFilter holds the filters to the reference on arbitrary answers.
func FuzzFilter(f *testing.F) {
	for _, a := range tricky {
		for _, b := range answers(a) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body string) { sameFiltering(t, body) })
}

func TestCheckPostableAlerts(t *testing.T) {
	e := policy(t, `{team="a"}`)
	for _, tc := range []struct {
		body    string
		wantErr string // substring; "" for success
		want    string // forwarded body
	}{
		{`[{"labels":{"alertname":"X","team":"a"},"annotations":{"s":"x"},"startsAt":"2026-01-01T00:00:00Z"}]`, "",
			`[{"labels":{"alertname":"X","team":"a"},"annotations":{"s":"x"},"startsAt":"2026-01-01T00:00:00Z"}]`},
		{`[]`, "", `[]`},
		{`[{"labels":{"alertname":"X","team":"a"}},{"labels":{"alertname":"X","team":"b"}}]`, `alert 1 with labels {alertname="X", team="b"} is not allowed by the policy {team="a"}`, ""},
		// An empty label is an absent label, as Alertmanager drops it.
		{`[{"labels":{"alertname":"X","team":""}}]`, "not allowed", ""},
		// Keys Go matches case-insensitively cannot smuggle labels:
		// promgate forwards the labels it checked, under one key.
		{`[{"labels":{"team":"a"},"Labels":{"team":"b"}}]`, "not allowed", ""},
		{`[{"Labels":{"team":"b"},"labels":{"team":"a"}}]`, "", `[{"labels":{"team":"a"}}]`},
		{`[{"annotations":{}}]`, "0.labels in body is required", ""},
		{`{}`, "parsing alerts body", ""},
		{``, "alerts in body is required", ""},
		{`null`, "alerts in body is required", ""},
		{`[{"labels":{"team":1}}]`, "parsing alerts body", ""},
	} {
		got, err := e.CheckPostableAlerts([]byte(tc.body))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.body, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		if b, _ := json.Marshal(got); string(b) != tc.want {
			t.Errorf("%s: forwarded %s, want %s", tc.body, b, tc.want)
		}
	}
}

// Reference implementation: every alert decoded with encoding/json (as
// promgate did before the one-pass filter), as clients matching keys
// exactly read it (the last of repeated keys wins), and written anew with
// encoding/json when references are removed or a decided key is given
// twice. The new filter must agree with it on every answer (see
// sameFiltering).

// The keys the filters decide on, by object.
var (
	refAlertKeys  = []string{"labels", "fingerprint", "status"}
	refStatusKeys = []string{"silencedBy", "inhibitedBy"}
	refGroupKeys  = []string{"alerts", "labels", "receiver"}
)

// refObject decodes the object raw (null: nil) into a map: the last of
// repeated keys wins. A key that encoding/json would read as one of keys
// into a struct, spelt otherwise, is jsonscan.ErrSpelling; repeated reports
// one of keys given twice.
func refObject(raw []byte, keys []string) (m map[string]json.RawMessage, repeated bool, err error) {
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return m, false, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	_, _ = dec.Token() // {
	seen := map[string]bool{}
	for dec.More() {
		t, _ := dec.Token()
		var v json.RawMessage
		_ = dec.Decode(&v)
		for _, d := range keys {
			switch k := t.(string); {
			case k == d:
				repeated = repeated || seen[d]
				seen[d] = true
			case strings.EqualFold(k, d):
				return nil, false, jsonscan.ErrSpelling
			}
		}
	}
	return m, repeated, nil
}

// decodeMember decodes m[key] into v when there is one.
func decodeMember(m map[string]json.RawMessage, key string, v any) error {
	if raw, ok := m[key]; ok {
		return json.Unmarshal(raw, v)
	}
	return nil
}

type oldAlert struct {
	raw         json.RawMessage
	labels      map[string]string
	fingerprint string
	silencedBy  []string
	inhibitedBy []string
	// a decided key of the alert, of its status, given twice
	repeated, statusRepeated bool
}

func oldDecodeAlert(raw json.RawMessage) (*oldAlert, error) {
	m, repeated, err := refObject(raw, refAlertKeys)
	if err != nil {
		return nil, err
	}
	a := &oldAlert{raw: raw, repeated: repeated}
	if err := decodeMember(m, "labels", &a.labels); err != nil {
		return nil, err
	}
	if err := decodeMember(m, "fingerprint", &a.fingerprint); err != nil {
		return nil, err
	}
	if st, ok := m["status"]; ok {
		sm, repeated, err := refObject(st, refStatusKeys)
		if err != nil {
			return nil, err
		}
		a.statusRepeated = repeated
		if err := decodeMember(sm, "silencedBy", &a.silencedBy); err != nil {
			return nil, err
		}
		if err := decodeMember(sm, "inhibitedBy", &a.inhibitedBy); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func oldFilter(e *Enforcer, raws []json.RawMessage) ([]*oldAlert, error) {
	var out []*oldAlert
	for _, raw := range raws {
		a, err := oldDecodeAlert(raw)
		if err != nil {
			return nil, err
		}
		if e.Allows(a.labels) {
			out = append(out, a)
		}
	}
	return out, nil
}

func oldAddRefs(r *Refs, as []*oldAlert) {
	for _, a := range as {
		r.Silences = append(r.Silences, a.silencedBy...)
		r.Alerts = append(r.Alerts, a.inhibitedBy...)
	}
}

func (a *oldAlert) encode(v Visible) (json.RawMessage, bool, error) {
	sil := slices.DeleteFunc(slices.Clone(a.silencedBy), func(id string) bool { return !v.Silences[id] })
	inh := slices.DeleteFunc(slices.Clone(a.inhibitedBy), func(fp string) bool { return !v.Alerts[fp] })
	hides := len(sil) != len(a.silencedBy) || len(inh) != len(a.inhibitedBy)
	if !hides && !a.repeated && !a.statusRepeated {
		return a.raw, false, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(a.raw, &fields); err != nil {
		return nil, false, err
	}
	if hides || a.statusRepeated {
		var status map[string]json.RawMessage
		if err := json.Unmarshal(fields["status"], &status); err != nil {
			return nil, false, fmt.Errorf("alert status: %w", err)
		}
		if hides {
			status["silencedBy"], _ = json.Marshal(nonNil(sil))
			status["inhibitedBy"], _ = json.Marshal(nonNil(inh))
		}
		var err error
		if fields["status"], err = json.Marshal(status); err != nil {
			return nil, false, err
		}
	}
	raw, err := json.Marshal(fields)
	return raw, true, err
}

func oldEncodeAlerts(as []*oldAlert, v Visible) ([]json.RawMessage, bool, error) {
	out := make([]json.RawMessage, len(as))
	changed := false
	for i, a := range as {
		raw, c, err := a.encode(v)
		if err != nil {
			return nil, false, err
		}
		out[i], changed = raw, changed || c
	}
	return out, changed, nil
}

type oldAlerts struct{ alerts []*oldAlert }

func oldFilterAlerts(e *Enforcer, body []byte) (*oldAlerts, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, err
	}
	as, err := oldFilter(e, raws)
	if err != nil {
		return nil, err
	}
	return &oldAlerts{as}, nil
}

func (l *oldAlerts) Refs() Refs {
	var r Refs
	oldAddRefs(&r, l.alerts)
	return r
}

// Encode also says whether an alert was written anew.
func (l *oldAlerts) Encode(v Visible) ([]byte, bool, error) {
	raws, changed, err := oldEncodeAlerts(l.alerts, v)
	if err != nil {
		return nil, false, err
	}
	return marshalRaw(raws), changed, nil
}

func (l *oldAlerts) Fingerprints() map[string]bool {
	fps := make(map[string]bool, len(l.alerts))
	for _, a := range l.alerts {
		fps[a.fingerprint] = true
	}
	return fps
}

type oldGroup struct {
	fields map[string]json.RawMessage
	alerts []*oldAlert
	whole  bool
	raw    json.RawMessage
}

type oldAlertGroups struct{ groups []*oldGroup }

func oldFilterAlertGroups(e *Enforcer, body []byte) (*oldAlertGroups, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, err
	}
	var out []*oldGroup
	for _, raw := range raws {
		fields, repeated, err := refObject(raw, refGroupKeys)
		if err != nil {
			return nil, err
		}
		var alerts []json.RawMessage
		if err := json.Unmarshal(fields["alerts"], &alerts); err != nil {
			return nil, fmt.Errorf("alert group: %w", err)
		}
		kept, err := oldFilter(e, alerts)
		if err != nil {
			return nil, err
		}
		if len(kept) == 0 {
			continue
		}
		out = append(out, &oldGroup{fields: fields, alerts: kept, whole: len(kept) == len(alerts) && !repeated, raw: raw})
	}
	return &oldAlertGroups{out}, nil
}

func (l *oldAlertGroups) Refs() Refs {
	var r Refs
	for _, g := range l.groups {
		oldAddRefs(&r, g.alerts)
	}
	return r
}

// Encode also says whether a group was written anew.
func (l *oldAlertGroups) Encode(v Visible) ([]byte, bool, error) {
	out := make([]json.RawMessage, len(l.groups))
	anew := false
	for i, g := range l.groups {
		raws, changed, err := oldEncodeAlerts(g.alerts, v)
		if err != nil {
			return nil, false, err
		}
		if g.whole && !changed {
			out[i] = g.raw
			continue
		}
		anew = true
		fields := maps.Clone(g.fields)
		fields["alerts"] = marshalRaw(raws)
		if out[i], err = json.Marshal(fields); err != nil {
			return nil, false, err
		}
	}
	return marshalRaw(out), anew, nil
}

// Comparison with the reference.

// refsPolicies are the policies answers are filtered under: a label set
// without team is visible under some.
var refsPolicies = [][]string{
	{`{team="a"}`},
	{`{team!="b"}`},
	{`{team=~"a|"}`},
	{`{team="a", job="j"}`, `{team="b"}`},
}

// visibles are what the tenant may see of the references the generated
// answers hold (silences s1..s3, alerts f1..f3).
var visibles = []Visible{
	{},
	{Silences: map[string]bool{"s1": true}, Alerts: map[string]bool{"f2": true}},
	{Silences: map[string]bool{"s1": true, "s2": true, "s3": true, "": true}, Alerts: map[string]bool{"f1": true, "f2": true, "f3": true, "": true}},
}

// encodeOrPanic runs the reference's Encode, which panics on a status that
// is null (a nil map): that counts as a failure.
func encodeOrPanic(enc func(Visible) ([]byte, bool, error), v Visible) (out []byte, anew bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return enc(v)
}

// sameEncoding compares what the new and the reference Encode give. They
// fail together; otherwise their answers decode alike, and are the same
// bytes when the reference wrote nothing anew.
func sameEncoding(t *testing.T, what string, body []byte, got []byte, gerr error, want []byte, anew bool, werr error) {
	t.Helper()
	switch {
	case gerr != nil && werr != nil:
		return
	case (gerr != nil) != (werr != nil):
		t.Fatalf("%s on %s:\nreference error %v\nnew error       %v\n(reference %s, new %s)", what, body, werr, gerr, want, got)
	}
	if !anew && !bytes.Equal(got, want) {
		t.Fatalf("%s on %s:\nreference %s\nnew       %s", what, body, want, got)
	}
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: reference output %s: %v", what, want, err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s on %s: output is not JSON: %s: %v", what, body, got, err)
	}
	if !reflect.DeepEqual(w, g) {
		t.Fatalf("%s on %s:\nreference %s\nnew       %s", what, body, want, got)
	}
}

// sameFiltering holds FilterAlerts and FilterAlertGroups to the reference
// on body, under every policy and visibility.
func sameFiltering(t *testing.T, body string) {
	t.Helper()
	b := []byte(body)
	for _, p := range refsPolicies {
		e := policy(t, p...)
		what := fmt.Sprint(p)

		wl, werr := oldFilterAlerts(e, b)
		gl, gerr := e.FilterAlerts(b)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("alerts %s on %s: reference error %v, new error %v", what, body, werr, gerr)
		}
		if werr == nil {
			if w, g := wl.Refs(), gl.Refs(); !reflect.DeepEqual(w, g) {
				t.Fatalf("alerts %s on %s: refs %#v, reference %#v", what, body, g, w)
			}
			if w, g := wl.Fingerprints(), gl.Fingerprints(); !reflect.DeepEqual(w, g) {
				t.Fatalf("alerts %s on %s: fingerprints %v, reference %v", what, body, g, w)
			}
			for _, v := range visibles {
				want, anew, werr := encodeOrPanic(wl.Encode, v)
				got, gerr := gl.Encode(v)
				sameEncoding(t, "alerts "+what, b, got, gerr, want, anew, werr)
				if gerr == nil {
					clientsAgree(t, e, got, false, v)
				}
			}
		}

		wg, werr := oldFilterAlertGroups(e, b)
		gg, gerr := e.FilterAlertGroups(b)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("groups %s on %s: reference error %v, new error %v", what, body, werr, gerr)
		}
		if werr != nil {
			continue
		}
		if w, g := wg.Refs(), gg.Refs(); !reflect.DeepEqual(w, g) {
			t.Fatalf("groups %s on %s: refs %#v, reference %#v", what, body, g, w)
		}
		for _, v := range visibles {
			want, anew, werr := encodeOrPanic(wg.Encode, v)
			got, gerr := gg.Encode(v)
			sameEncoding(t, "groups "+what, b, got, gerr, want, anew, werr)
			if gerr == nil {
				clientsAgree(t, e, got, true, v)
			}
		}
	}
}

// tricky are alerts (and parts of them) that clients read in different
// ways, or that a byte-level filter must copy.
var tricky = []string{
	// Label sets: the last of several, emptied by null, keys spelt
	// otherwise refused (Unicode's case folding: ſ is s), null values.
	`{"labels":{"team":"a"}}`, `{"labels":{"team":"b"}}`, `{"labels":{}}`, `{"labels":null}`, `{}`, `null`,
	`{"labels":{"team":"b"},"labels":{"job":"j"}}`, `{"labels":{"team":"b"},"labels":{"team":"a"}}`,
	`{"labels":{"team":"a"},"labels":null}`, `{"labels":{"team":"a"},"labels":null,"labels":{"job":"j"}}`,
	`{"Labels":{"team":"a"}}`, `{"LABELS":{"team":"b"},"labels":{"job":"j"}}`, `{"labelſ":{"team":"a"}}`, `{"l\u0061bels":{"team":"a"}}`,
	`{"labels":{"team":null}}`, `{"labels":{"team":"a","team":null}}`, `{"labels":{"te\u0061m":"\u0061"}}`,
	`{"labels":{"team":"a"},"Labels":{"team":"b"}}`, "{\"labels\":{\"team\":\"a\xff\"}}", `{"labels":{"team":"a","job":"j"}}`,
	// Labels that cannot be read: the answer is refused.
	`{"labels":{"team":1}}`, `{"labels":[]}`, `{"labels":"team"}`, `{"Labels":5,"labels":{"team":"a"}}`, `{"labels":{"team":{}}}`,
	// Fingerprints: the last, null read as none.
	`{"labels":{"team":"a"},"fingerprint":"f1"}`, `{"labels":{"team":"a"},"fingerprint":"f1","fingerprint":null}`,
	`{"labels":{"team":"a"},"Fingerprint":"\u0066\u0032"}`, `{"labels":{"team":"a"},"fingerprint":1}`,
	// Status: the last of several (null: no references), lists the
	// last, null IDs empty.
	`{"labels":{"team":"a"},"status":{"state":"suppressed","silencedBy":["s1","s2"],"inhibitedBy":["f1","f3"]}}`,
	`{"labels":{"team":"a"},"status":{"silencedBy":["s1"]},"status":{"inhibitedBy":["f1"]}}`,
	`{"labels":{"team":"a"},"status":{"silencedBy":["s1"]},"status":null}`,
	`{"labels":{"team":"a"},"status":{"silencedBy":["s1","s2"]},"status":{"silencedBy":[null]}}`,
	`{"labels":{"team":"a"},"status":{"silencedBy":["s1","s2","s3"]},"status":{"silencedBy":["s2"]},"status":{"silencedBy":[null,null,null]}}`,
	`{"labels":{"team":"a"},"status":{"silencedBy":["s1"]},"status":{"silencedBy":[]},"status":{"silencedBy":[null]}}`,
	`{"labels":{"team":"a"},"status":{"silencedBy":["s1"],"silencedBy":null}}`, `{"labels":{"team":"a"},"status":{"silencedBy":[null,"s1"]}}`,
	`{"labels":{"team":"a"},"status":{"SilencedBy":["s1"],"state":"x"}}`, `{"labels":{"team":"a"},"Status":{"silencedBy":["s2"]}}`,
	`{"labels":{"team":"a"},"Status":{"silencedBy":["s2"]},"status":{"state":"x"}}`, `{"labels":{"team":"a"},"status":{"silencedBy":["s\u0031","<&>"]}}`,
	`{"labels":{"team":"a"},"status":{"silencedBy":["s1"],"state":"a","state":"b"},"x":1,"x":2}`,
	`{"labels":{"team":"a"},"status":{"silencedBy":["s1"]},"st\u0061tus":{"state":"x","silencedBy":["s1"]}}`,
	`{"labels":{"team":"a"},"status":[]}`, `{"labels":{"team":"a"},"status":{"silencedBy":{}}}`, `{"labels":{"team":"a"},"status":{"silencedBy":[1]}}`,
	`{"labels":{"team":"a"},"status":"x"}`, `{"labels":{"team":"b"},"status":{"inhibitedBy":[true]}}`,
	// Other members go out as they came.
	` { "labels" : { "team" : "a" } , "annotations" : { "s" : "<b>&amp;" } , "v" : [ 1 , 2.5e3 , -0 , true , null ] , "status" : { "silencedBy" : [ "s1" , "s2" ] } } `,
}

// answers builds alerts and alert groups answers out of alerts.
func answers(alerts ...string) []string {
	list := "[" + strings.Join(alerts, ",") + "]"
	return []string{
		list, " " + list + "\n",
		`[{"alerts":` + list + `,"labels":{"alertname":"X"},"receiver":{"name":"r"}}]`,
	}
}

func TestFilterAgreesWithReference(t *testing.T) {
	var bodies []string
	for _, a := range tricky {
		bodies = append(bodies, answers(a)...)
		bodies = append(bodies, answers(a, `{"labels":{"team":"a"},"fingerprint":"f2"}`, a)...)
		bodies = append(bodies, answers(`{"labels":{"team":"b"},"status":{"silencedBy":["s3"]}}`, a)...)
	}
	bodies = append(bodies,
		``, `null`, ` null `, `[]`, `{}`, `"x"`, `[1]`, `[[]]`, `[`, `[{}`, `[{}]]`, `[{}] x`, `[{},]`, `[{"labels":{"team":"a"}}`,
		// Groups.
		`[null]`, `[{}]`, `[{"alerts":null}]`, `[{"alerts":[]}]`, `[{"alerts":{}}]`, `[{"alerts":[null]}]`,
		`[{"alerts":[{"labels":{"team":"a"}}],"alerts":[{"labels":{"team":"b"}}]}]`,
		`[{"alerts":[{"labels":{"team":"b"}}],"alerts":[{"labels":{"team":"a"}}]}]`,
		`[{"alerts":[{"labels":{"team":1}}],"alerts":[{"labels":{"team":"a"}}]}]`,
		`[{"alerts":[{"labels":{"team":"a"}}],"alerts":[{"labels":{"team":1}}]}]`,
		`[{"alerts":3,"alerts":[{"labels":{"team":"a"}}]}]`, `[{"alerts":[{"labels":{"team":"a"}}],"alerts":null}]`,
		`[{"alerts":[{"labels":{"team":"a"}}],"labels":{"a":"b"},"labels":{"a":"c"}}]`,
		`[{"alerts":[{"labels":{"team":"a"}},{"labels":{"team":"b"}}],"labels":{"a":"b"},"labels":{"a":"c"}}]`,
		`[{"\u0061lerts":[{"labels":{"team":"a"}},{"labels":{"team":"b"}}],"x":"<>"}]`,
		`[{"Alerts":[{"labels":{"team":"b"}}],"alerts":[{"labels":{"team":"a"}}]}]`,
		`[{"alerts":[{"labels":{"team":"a"}}]},null]`, `[{"alerts":[{"labels":{"team":"a"}}]},1]`,
	)
	for _, b := range bodies {
		sameFiltering(t, b)
	}
}

// TestFilterAgreesOnRandomAnswers builds random answers of the shapes
// Alertmanager sends, with nulls, repeated keys, other spellings and odd
// strings among them. PROMGATE_ALERTS_SEED=n runs 20000 rounds from seed n.
func TestFilterAgreesOnRandomAnswers(t *testing.T) {
	seed, iterations := uint64(1), 1500
	if s, err := strconv.ParseUint(os.Getenv("PROMGATE_ALERTS_SEED"), 10, 64); err == nil {
		seed, iterations = s, 20000
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	// rare returns bad one time in n, good otherwise.
	rare := func(n int, bad string, good func() string) string {
		if rng.IntN(n) == 0 {
			return bad
		}
		return good()
	}
	lbls := func() string {
		if rng.IntN(10) == 0 {
			return pick(`null`, `{}`, `[]`)
		}
		var kv []string
		for range rng.IntN(4) {
			kv = append(kv, pick(`"team"`, `"team"`, `"job"`, `"te\u0061m"`, `"alertname"`)+":"+
				rare(40, `1`, func() string { return pick(`"a"`, `"a"`, `"b"`, `""`, `"\u0061"`, `null`, `"j"`, `"é"`) }))
		}
		return "{" + strings.Join(kv, ",") + "}"
	}
	ids := func(prefix string) func() string {
		return func() string {
			switch rng.IntN(12) {
			case 0:
				return `null`
			case 1:
				return `{}`
			}
			var xs []string
			for range rng.IntN(4) {
				xs = append(xs, rare(10, `null`, func() string { return fmt.Sprintf(`"%s%d"`, prefix, 1+rng.IntN(3)) }))
			}
			return "[" + strings.Join(xs, ",") + "]"
		}
	}
	// obj writes an object of members, some left out, some repeated,
	// some keys spelt otherwise.
	obj := func(members map[string]func() string, spellings map[string][]string) string {
		var kv []string
		for k, f := range members {
			for range 1 + rng.IntN(2)*rng.IntN(2) {
				if rng.IntN(6) == 0 {
					continue
				}
				key := k
				if s := spellings[k]; len(s) > 0 && rng.IntN(8) == 0 {
					key = s[rng.IntN(len(s))]
				}
				kv = append(kv, fmt.Sprintf("%q:%s", key, f()))
			}
		}
		rng.Shuffle(len(kv), func(i, j int) { kv[i], kv[j] = kv[j], kv[i] })
		return "{" + strings.Join(kv, ",") + "}"
	}
	status := func() string {
		if rng.IntN(10) == 0 {
			return pick(`null`, `"x"`)
		}
		return obj(map[string]func() string{
			"silencedBy": ids("s"), "inhibitedBy": ids("f"),
			"state": func() string { return pick(`"active"`, `"suppressed"`) },
		}, map[string][]string{"silencedBy": {"SilencedBy", "silencedby"}, "inhibitedBy": {"InhibitedBy"}})
	}
	alert := func() string {
		if rng.IntN(25) == 0 {
			return pick(`null`, `1`)
		}
		return obj(map[string]func() string{
			"labels": lbls, "status": status,
			"fingerprint": func() string {
				return rare(30, `1`, func() string { return pick(`"f1"`, `"f2"`, `"f3"`, `null`, `"\u0066\u0031"`) })
			},
			"annotations": func() string { return `{"summary":"<b>&"}` },
			"startsAt":    func() string { return `"2026-01-01T00:00:00.000Z"` },
		}, map[string][]string{"labels": {"Labels", "labelſ"}, "status": {"Status"}, "fingerprint": {"FINGERPRINT"}})
	}
	list := func(n int, f func() string) string {
		if rng.IntN(30) == 0 {
			return "null"
		}
		var xs []string
		for range rng.IntN(n) {
			xs = append(xs, f())
		}
		return "[" + strings.Join(xs, ",") + "]"
	}
	group := func() string {
		if rng.IntN(40) == 0 {
			return `null`
		}
		return obj(map[string]func() string{
			"alerts":   func() string { return list(5, alert) },
			"labels":   func() string { return `{"alertname":"X"}` },
			"receiver": func() string { return `{"name":"r"}` },
		}, map[string][]string{"alerts": {"Alerts"}})
	}
	for range iterations {
		sameFiltering(t, list(8, alert))
		sameFiltering(t, list(4, group))
	}
}
