package limits

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestCheckQuery(t *testing.T) {
	l := &Limits{
		MaxRange:       24 * time.Hour,
		MaxLookback:    7 * 24 * time.Hour,
		MinStep:        10 * time.Second,
		MaxPoints:      1000,
		MaxQueryLength: 64,
		Blocked:        []Blocked{{Pattern: regexp.MustCompile(`^(?:.*\{\s*\}\))$`), Reason: "selects every series"}},
	}
	rangeQ := func(q string, span, step time.Duration) Query {
		return Query{Text: q, Range: true, Start: t0.Add(-span), End: t0, Step: step, Now: t0}
	}
	instant := func(q string, at time.Time) Query { return Query{Text: q, Start: at, End: at, Now: t0} }
	for _, tc := range []struct {
		name  string
		q     Query
		limit string // "" passes
		msg   string
	}{
		{"small instant query", instant(`up`, t0), "", ""},
		{"range within limits", rangeQ(`rate(up[5m])`, time.Hour, 15*time.Second), "", ""},
		{"exactly max_points", rangeQ(`up`, 999*10*time.Second, 10*time.Second), "", ""},
		{"too long", instant(strings.Repeat("x", 65), t0), "max_query_length", "65 bytes long, over the limit of 64 bytes"},
		{"blocked", instant(`count(up{ })`, t0), "blocked_queries", "selects every series"},
		{"blocked needs the whole text", instant(`count(up{}) + 1`, t0), "", ""},
		{"range too wide", rangeQ(`up`, 25*time.Hour, time.Minute), "max_range", "query range of 1d1h (end - start) is over the limit of 1d"},
		{"step too small", rangeQ(`up`, time.Hour, time.Second), "min_step", "query step of 1s is under the limit of 10s"},
		{"too many points", rangeQ(`up`, 1000*10*time.Second, 10*time.Second), "max_points", "1001 points per series, over the limit of 1000"},
		{"old instant time", instant(`up`, t0.Add(-8*24*time.Hour)), "max_lookback", "over the limit of 7d"},
		{"offset reaches back", instant(`up offset 8d`, t0), "max_lookback", "8d before now"},
		{"range selector reaches back", instant(`rate(up[8d])`, t0), "max_lookback", "max_lookback"},
		{"subquery reaches back", instant(`max_over_time(up[6d:1h] offset 2d)`, t0), "max_lookback", "max_lookback"},
		{"@ timestamp reaches back", instant(`up @ 1000`, t0), "max_lookback", "1970-01-01T00:16:40Z"},
		{"@ end() stays recent", instant(`up @ end() offset 6d`, t0), "", ""},
		{"within lookback", instant(`rate(up[6d])`, t0), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := l.CheckQuery(tc.q)
			if tc.limit == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a refusal by %s", err, tc.limit)
			}
			if le.Kind != Guard || le.Limit != tc.limit || !strings.Contains(le.Msg, tc.msg) || !strings.Contains(le.Msg, tc.limit) {
				t.Errorf("got %s %q, want %s with %q", le.Limit, le.Msg, tc.limit, tc.msg)
			}
		})
	}
}

func TestEarliest(t *testing.T) {
	start, end := t0.Add(-time.Hour), t0
	for _, tc := range []struct {
		query string
		want  time.Time
	}{
		{`vector(1)`, start},
		{`up`, start},
		{`up offset 1h`, start.Add(-time.Hour)},
		{`rate(up[10m] offset 5m)`, start.Add(-15 * time.Minute)},
		{`max_over_time(rate(up[5m])[1h:1m] offset 1h)`, start.Add(-2*time.Hour - 5*time.Minute)},
		{`up @ end() offset 30m`, end.Add(-30 * time.Minute)},
		{`up @ start()`, start},
		{`max_over_time(up[1h:] @ 3600)`, time.Unix(0, 0)},
		{`up @ 3600 or rate(up[2h])`, time.Unix(3600, 0)},
		{`sum by (job) (up offset -1h)`, end},
	} {
		got, err := Earliest(tc.query, start, end)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%s: got %v %v, want %v", tc.query, got.UTC(), err, tc.want.UTC())
		}
	}
	if _, err := Earliest(`up offset (1h + 1m)`, start, end); err == nil {
		t.Errorf("a duration expression must not be bounded silently")
	}
}

func TestAdmitRate(t *testing.T) {
	reg := NewRegistry(time.Minute)
	now := t0
	reg.now = func() time.Time { return now }
	l := &Limits{Rate: 2, Burst: 3, ID: "r"}
	for i := range 3 {
		release, err := reg.Admit(context.Background(), "alice", l)
		if err != nil {
			t.Fatalf("request %d within the burst refused: %v", i, err)
		}
		release()
	}
	_, err := reg.Admit(context.Background(), "alice", l)
	var le *Error
	if !errors.As(err, &le) || le.Kind != TooMany || le.Limit != "rate" || le.RetryAfterSeconds() != "1" || le.RetryAfter != 500*time.Millisecond {
		t.Fatalf("over the burst: got %v (%+v)", err, le)
	}
	// Another user has a bucket of its own.
	if _, err := reg.Admit(context.Background(), "bob", l); err != nil {
		t.Fatalf("bob refused: %v", err)
	}
	now = now.Add(500 * time.Millisecond)
	if _, err := reg.Admit(context.Background(), "alice", l); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

func TestAdmitConcurrency(t *testing.T) {
	reg := NewRegistry(time.Minute)
	l := &Limits{MaxConcurrent: 2, MaxQueueWait: 50 * time.Millisecond, ID: "c"}
	r1, err1 := reg.Admit(context.Background(), "alice", l)
	_, err2 := reg.Admit(context.Background(), "alice", l)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	begin := time.Now()
	_, err := reg.Admit(context.Background(), "alice", l)
	var le *Error
	if !errors.As(err, &le) || le.Limit != "max_concurrent" || le.RetryAfterSeconds() != "1" {
		t.Fatalf("third request: got %v", err)
	}
	if waited := time.Since(begin); waited < 50*time.Millisecond {
		t.Errorf("refused after %s, before max_queue_wait", waited)
	}
	// A slot freed while queued admits the waiter.
	go func() { time.Sleep(10 * time.Millisecond); r1() }()
	if _, err := reg.Admit(context.Background(), "alice", l); err != nil {
		t.Fatalf("queued request not admitted when a slot freed: %v", err)
	}
	if _, err := reg.Admit(context.Background(), "bob", l); err != nil {
		t.Fatalf("bob refused for alice's requests: %v", err)
	}
}

func TestEviction(t *testing.T) {
	reg := NewRegistry(time.Minute)
	now := t0
	reg.now = func() time.Time { return now }
	l := &Limits{Rate: 1, Burst: 1, MaxConcurrent: 1, ID: "e"}
	busy, err := reg.Admit(context.Background(), "busy", l)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a", "b", "c"} {
		release, err := reg.Admit(context.Background(), u, l)
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	if n := reg.Len(); n != 4 {
		t.Fatalf("%d users tracked, want 4", n)
	}
	now = now.Add(2 * time.Minute)
	release, _ := reg.Admit(context.Background(), "d", l)
	release()
	// a, b, c are gone; busy stays (in flight), d is new.
	if n := reg.Len(); n != 2 {
		t.Fatalf("%d users tracked after the idle period, want 2", n)
	}
	busy()
	// The evicted user comes back with a full bucket.
	if _, err := reg.Admit(context.Background(), "a", l); err != nil {
		t.Fatal(err)
	}
}

func TestNoLimits(t *testing.T) {
	var l *Limits
	if l.Admission() || l.Guards() || l.CheckQuery(Query{Text: "up"}) != nil {
		t.Fatal("nil Limits limit something")
	}
	reg := NewRegistry(0)
	release, err := reg.Admit(context.Background(), "u", &Limits{MaxRange: time.Hour})
	if err != nil || reg.Len() != 0 {
		t.Fatalf("guards only: %v, %d users tracked", err, reg.Len())
	}
	release()
}

func TestSeriesLimit(t *testing.T) {
	for _, tc := range []struct {
		max, client, want int
	}{
		{0, 0, 0},
		{0, 50, 50}, // no max_series: the client's as asked
		{20, 0, 20}, // the client's "no limit" is lowered
		{20, 5, 5},  // a client may lower it
		{20, 50, 20},
		{20, 20, 20},
	} {
		l := &Limits{MaxSeries: tc.max}
		if got := l.SeriesLimit(tc.client); got != tc.want {
			t.Errorf("max_series %d, client's %d: %d, want %d", tc.max, tc.client, got, tc.want)
		}
	}
	if !(&Limits{MaxSeries: 1}).Guards() {
		t.Error("max_series alone must carry the limits to the handlers")
	}
}

func TestCheckQueryUnparsable(t *testing.T) {
	l := &Limits{MaxLookback: time.Hour}
	err := l.CheckQuery(Query{Text: `up{`, Start: t0, End: t0, Now: t0})
	var le *Error
	if err == nil || errors.As(err, &le) {
		t.Fatalf("got %v, want a parse error that is not a limit's", err)
	}
}

func TestAdmitUpstreamTime(t *testing.T) {
	reg := NewRegistry(time.Minute)
	now := t0
	var mu sync.Mutex
	reg.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	l := &Limits{UpstreamTime: 0.1, UpstreamTimeBurst: time.Second, ID: "t"}
	admit := func(user string) (func(), *Error) {
		t.Helper()
		release, err := reg.Admit(context.Background(), user, l)
		if err == nil {
			return release, nil
		}
		var le *Error
		if !errors.As(err, &le) || le.Kind != TooMany || le.Limit != "upstream_time" {
			t.Fatalf("got %v, want a refusal by upstream_time", err)
		}
		return nil, le
	}
	// Two queries of 0.6 s: the first within the burst, the second starts
	// on what is left and ends in debt.
	for i := range 2 {
		release, le := admit("alice")
		if le != nil {
			t.Fatalf("query %d refused: %v", i, le)
		}
		advance(600 * time.Millisecond)
		release()
	}
	// Balance: 1 - 0.6 + 0.06 - 0.6 = -0.14 s, waited out at 0.1 s/s.
	_, le := admit("alice")
	if le == nil {
		t.Fatal("in debt and admitted")
	}
	if le.RetryAfter < 1390*time.Millisecond || le.RetryAfter > 1410*time.Millisecond || le.RetryAfterSeconds() != "2" {
		t.Errorf("Retry-After %s (%s), want 1.4s (2)", le.RetryAfter, le.RetryAfterSeconds())
	}
	if !strings.Contains(le.Msg, `user "alice" has used its share of 0.1 seconds of upstream time per second (upstream_time_burst 1s)`) {
		t.Errorf("message: %s", le.Msg)
	}
	// Another user has time of its own.
	if release, le := admit("bob"); le != nil {
		t.Fatalf("bob refused for alice's time: %v", le)
	} else {
		release()
	}
	advance(1500 * time.Millisecond)
	release, le := admit("alice")
	if le != nil {
		t.Fatalf("after the debt is waited out: %v", le)
	}
	// A request still running counts as it goes: alice cannot start more
	// while one runs long, though nothing is charged yet.
	advance(2 * time.Second)
	if _, le := admit("alice"); le == nil {
		t.Fatal("admitted while a running request has used up the time")
	}
	release()

	// A request queued behind max_concurrent is checked again when it
	// gets its slot: the one before it may have used up the time.
	lq := &Limits{UpstreamTime: 0.1, UpstreamTimeBurst: time.Second, MaxConcurrent: 1, MaxQueueWait: time.Minute, ID: "q"}
	first, err := reg.Admit(context.Background(), "carol", lq)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error)
	go func() {
		release, err := reg.Admit(context.Background(), "carol", lq)
		if err == nil {
			release()
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond) // queued
	advance(3 * time.Second)
	first()
	var qe *Error
	if err := <-got; !errors.As(err, &qe) || qe.Limit != "upstream_time" {
		t.Fatalf("queued request after the time ran out: %v", err)
	}
}

func TestEvictionKeepsDebt(t *testing.T) {
	reg := NewRegistry(time.Minute)
	now := t0
	reg.now = func() time.Time { return now }
	l := &Limits{UpstreamTime: 0.01, UpstreamTimeBurst: time.Second, ID: "d"}
	release, err := reg.Admit(context.Background(), "alice", l)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(5 * time.Second)
	release() // 4 s in debt: 500 s to fill at 0.01 s/s
	now = now.Add(2 * time.Minute)
	reg.Admit(context.Background(), "sweeper", l)
	if n := reg.Len(); n != 2 {
		t.Fatalf("%d users tracked: the one in debt was dropped", n)
	}
	if _, err := reg.Admit(context.Background(), "alice", l); err == nil {
		t.Fatal("debt forgotten")
	}
	now = now.Add(400 * time.Second) // full again: 500 s after the charge
	reg.Admit(context.Background(), "sweeper", l)
	if n := reg.Len(); n != 1 {
		t.Fatalf("%d users tracked, want the full one dropped", n)
	}
}

func TestDescribe(t *testing.T) {
	var none *Limits
	if got := none.Describe(); got != nil {
		t.Errorf("nil Limits: %q", got)
	}
	l := &Limits{Rate: 2.5, MaxConcurrent: 4, MaxQueueWait: 200 * time.Millisecond, UpstreamTime: 0.05,
		MaxRange: 7 * 24 * time.Hour, MaxLookback: 30 * 24 * time.Hour, MinStep: 15 * time.Second, MaxPoints: 11000,
		MaxQueryLength: 4096, MaxSeries: 10000,
		Blocked: []Blocked{{Pattern: regexp.MustCompile(`^(?:x)$`)}}}
	want := []string{
		"rate: 2.5 requests per second, burst 3",
		"max_concurrent: 4 requests in flight; one over it waits up to 200ms (max_queue_wait)",
		"upstream_time: 0.05 seconds of upstream time per second, saved up to 3s (upstream_time_burst)",
		"max_range: 7d (end - start of a range query)",
		"max_lookback: 30d (how far before now a query may read)",
		"min_step: 15s",
		"max_points: 11000 points per series",
		"max_query_length: 4096 bytes",
		"max_series: 10000 series, names or values per answer",
		`blocked_queries: "^(?:x)$": no reason given`,
	}
	if got := l.Describe(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
