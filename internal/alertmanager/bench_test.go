package alertmanager

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// Benchmarks of promgate's work on GET /api/v2/alerts and
// /api/v2/alerts/groups: filtering an answer of 400 alerts of 4 tenants as
// Alertmanager 0.25 writes it, for one tenant. "old" is the reference
// implementation of alerts_test.go, "new" the one-pass filter.

// benchGettable is an alert as Alertmanager 0.25 writes it.
func benchGettable(tenant string, n int) string {
	return fmt.Sprintf(`{"annotations":{"description":"Instance %[1]s-host-%02[2]d:9100 of job node has been above the threshold for 5 minutes.","runbook_url":"https://runbooks.example.com/%[1]s/HighLoad%[3]d","summary":"High load on %[1]s-host-%02[2]d:9100"},`+
		`"endsAt":"2026-11-22T02:05:52.126Z","fingerprint":"%016[4]x","receivers":[{"name":"team-%[1]s"}],"startsAt":"2026-11-22T01:43:52.126Z",`+
		`"status":{"inhibitedBy":[],"silencedBy":[],"state":"active"},"updatedAt":"2026-11-22T01:44:52.130Z",`+
		`"generatorURL":"http://prometheus:9090/graph?g0.expr=node_load1%%7Btenant%%3D%%22%[1]s%%22%%7D+%%3E+1\u0026g0.tab=1",`+
		`"labels":{"alertname":"HighLoad%[3]d","instance":"%[1]s-host-%02[2]d:9100","job":"node","severity":"warning","tenant":"%[1]s"}}`,
		tenant, n%25, n/25, uint64(n)*0x9e3779b97f4a7c15)
}

// benchAnswers returns the alerts answer and the groups answer (grouped by
// alertname, so that a group holds every tenant's alerts).
func benchAnswers() (alerts, groups []byte) {
	var all []string
	byName := map[int][]string{}
	for n := range 100 {
		for t := range 4 {
			a := benchGettable(fmt.Sprintf("t%d", t), n)
			all = append(all, a)
			byName[n/25] = append(byName[n/25], a)
		}
	}
	var gs []string
	for i := range len(byName) {
		gs = append(gs, fmt.Sprintf(`{"alerts":[%s],"labels":{"alertname":"HighLoad%d"},"receiver":{"name":"default"}}`, strings.Join(byName[i], ","), i))
	}
	return []byte("[" + strings.Join(all, ",") + "]"), []byte("[" + strings.Join(gs, ",") + "]")
}

func benchEnforcer() *Enforcer {
	return NewEnforcer([][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchEqual, "tenant", "t1")}})
}

// filterer is one implementation's filter, Refs and Encode, as the handler
// calls them (no reference to look up).
type filterer func(e *Enforcer, body []byte) ([]byte, error)

func benchFilter(b *testing.B, body []byte, impls map[string]filterer) {
	e := benchEnforcer()
	for _, name := range []string{"old", "new"} {
		b.Run(name, func(b *testing.B) {
			f := impls[name]
			out, err := f(e, body)
			if err != nil || len(out) < len(body)/5 {
				b.Fatalf("%d bytes, %v", len(out), err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f(e, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFilterAlerts(b *testing.B) {
	body, _ := benchAnswers()
	benchFilter(b, body, map[string]filterer{
		"old": func(e *Enforcer, body []byte) ([]byte, error) {
			l, err := oldFilterAlerts(e, body)
			if err != nil {
				return nil, err
			}
			_ = l.Refs()
			out, _, err := l.Encode(Visible{})
			return out, err
		},
		"new": func(e *Enforcer, body []byte) ([]byte, error) {
			l, err := e.FilterAlerts(body)
			if err != nil {
				return nil, err
			}
			_ = l.Refs()
			return l.Encode(Visible{})
		},
	})
}

func BenchmarkFilterAlertGroups(b *testing.B) {
	_, body := benchAnswers()
	benchFilter(b, body, map[string]filterer{
		"old": func(e *Enforcer, body []byte) ([]byte, error) {
			l, err := oldFilterAlertGroups(e, body)
			if err != nil {
				return nil, err
			}
			_ = l.Refs()
			out, _, err := l.Encode(Visible{})
			return out, err
		},
		"new": func(e *Enforcer, body []byte) ([]byte, error) {
			l, err := e.FilterAlertGroups(body)
			if err != nil {
				return nil, err
			}
			_ = l.Refs()
			return l.Encode(Visible{})
		},
	})
}

// TestBenchAnswersAgree checks that the benchmarks compare like with like.
func TestBenchAnswersAgree(t *testing.T) {
	alerts, groups := benchAnswers()
	sameFiltering(t, string(alerts))
	sameFiltering(t, string(groups))
}
