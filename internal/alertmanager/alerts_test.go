package alertmanager

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
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
