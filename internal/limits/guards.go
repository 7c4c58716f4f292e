package limits

import (
	"errors"
	"math"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// Query is what the guards look at of a /api/v1/query or /query_range
// request. Start equals End for an instant query.
type Query struct {
	Text       string
	Range      bool
	Start, End time.Time
	Step       time.Duration
	// Now is the time the lookback is measured from.
	Now time.Time
}

// CheckQuery refuses a query over a guard of l with an *Error of kind
// Guard naming the limit. A query that does not parse is refused by a
// plain error when a guard needs to parse it.
func (l *Limits) CheckQuery(q Query) error {
	if !l.Guards() {
		return nil
	}
	if l.MaxQueryLength > 0 && len(q.Text) > l.MaxQueryLength {
		return guardError("max_query_length", "query is %d bytes long, over the limit of %d bytes (max_query_length)", len(q.Text), l.MaxQueryLength)
	}
	for _, b := range l.Blocked {
		if b.Pattern.MatchString(q.Text) {
			reason := b.Reason
			if reason == "" {
				reason = "no reason given"
			}
			return guardError("blocked_queries", "query is blocked by the pattern %q (blocked_queries): %s", b.Pattern.String(), reason)
		}
	}
	if q.Range {
		span := q.End.Sub(q.Start)
		if l.MaxRange > 0 && span > l.MaxRange {
			return guardError("max_range", "query range of %s (end - start) is over the limit of %s (max_range)", FormatDuration(span), FormatDuration(l.MaxRange))
		}
		if l.MinStep > 0 && q.Step < l.MinStep {
			return guardError("min_step", "query step of %s is under the limit of %s (min_step)", FormatDuration(q.Step), FormatDuration(l.MinStep))
		}
		if l.MaxPoints > 0 && q.Step > 0 {
			if points := int64(span/q.Step) + 1; points > int64(l.MaxPoints) {
				return guardError("max_points", "query would return %d points per series, over the limit of %d (max_points); increase the step", points, l.MaxPoints)
			}
		}
	}
	if l.MaxLookback > 0 {
		earliest, err := Earliest(q.Text, q.Start, q.End)
		switch {
		case errors.Is(err, errDurationExpr):
			return guardError("max_lookback", "%v (max_lookback)", err)
		case err != nil:
			return err // the query does not parse: no limit's business
		}
		oldest := q.Now.Add(-l.MaxLookback)
		if earliest.Before(oldest) {
			return guardError("max_lookback", "query reaches back to %s, %s before now, over the limit of %s (max_lookback)",
				earliest.UTC().Format(time.RFC3339), FormatDuration(q.Now.Sub(earliest).Round(time.Second)), FormatDuration(l.MaxLookback))
		}
	}
	return nil
}

// Earliest is the earliest time the query evaluated over [start, end]
// reads, through ranges, offsets, subqueries and @, as Prometheus'
// FindMinMaxTime computes it, without the lookback delta of instant
// selectors (a limit of 7d should let a dashboard show the last 7 days).
// A query that selects nothing reaches start; one whose selectors all
// carry @ end() reaches only as far as they do.
func Earliest(query string, start, end time.Time) (time.Time, error) {
	terms, err := reachOf(query)
	if err != nil {
		return time.Time{}, err
	}
	if len(terms) == 0 {
		return start, nil
	}
	earliest := time.Unix(math.MaxInt32, 0)
	for _, t := range terms {
		var anchor time.Time
		switch t.anchor {
		case anchorStart:
			anchor = start
		case anchorEnd:
			anchor = end
		default:
			anchor = time.UnixMilli(t.at)
		}
		if at := anchor.Add(-t.back); at.Before(earliest) {
			earliest = at
		}
	}
	return earliest, nil
}

type anchor int

const (
	anchorStart anchor = iota // the query's start (no @)
	anchorEnd                 // @ end()
	anchorFixed               // @ <timestamp>
)

// reach is how far before its anchor one selector reads.
type reach struct {
	anchor anchor
	at     int64 // ms, for anchorFixed
	back   time.Duration
}

var errDurationExpr = errors.New("the reach of a query whose offsets, ranges or steps are expressions cannot be bounded")

// The parser accepts everything any upstream might: the enforcer has
// already parsed the query with the upstream's own options.
var permissive = parser.NewParser(parser.Options{EnableExperimentalFunctions: true, EnableBinopFillModifiers: true, EnableUnquotedUTF8Names: true})

// Dashboards repeat the same queries; their reach does not depend on the
// time parameters, so it is remembered. Bounded: cleared when full.
const maxCachedReaches = 4096

var reaches = struct {
	sync.Mutex
	m map[string][]reach
}{m: map[string][]reach{}}

func reachOf(query string) ([]reach, error) {
	reaches.Lock()
	r, ok := reaches.m[query]
	reaches.Unlock()
	if ok {
		return r, nil
	}
	expr, err := permissive.ParseExpr(query)
	if err != nil {
		return nil, err
	}
	r, err = analyse(expr)
	if err != nil {
		return nil, err
	}
	reaches.Lock()
	if len(reaches.m) >= maxCachedReaches {
		reaches.m = map[string][]reach{}
	}
	reaches.m[query] = r
	reaches.Unlock()
	return r, nil
}

// analyse walks expr as Prometheus' getTimeRangesForSelector does: a
// subquery's @ resets the offsets and ranges above it, a selector's @
// overrides everything above it; offsets always count (Prometheus reads
// from @ - offset).
func analyse(expr parser.Expr) ([]reach, error) {
	var out []reach
	var evalRange time.Duration
	var bad error
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		switch n := node.(type) {
		case *parser.MatrixSelector:
			if n.RangeExpr != nil {
				bad = errDurationExpr
			}
			evalRange = n.Range
		case *parser.SubqueryExpr:
			if n.OriginalOffsetExpr != nil || n.RangeExpr != nil {
				bad = errDurationExpr
			}
		case *parser.VectorSelector:
			if n.OriginalOffsetExpr != nil {
				bad = errDurationExpr
			}
			r := reach{anchor: anchorStart}
			for _, p := range path {
				sq, ok := p.(*parser.SubqueryExpr)
				if !ok {
					continue
				}
				if a, at, ok := atOf(sq.Timestamp, sq.StartOrEnd); ok {
					r = reach{anchor: a, at: at}
				}
				r.back += sq.OriginalOffset + sq.Range
			}
			if a, at, ok := atOf(n.Timestamp, n.StartOrEnd); ok {
				r = reach{anchor: a, at: at}
			}
			r.back += n.OriginalOffset + evalRange
			evalRange = 0
			out = append(out, r)
		}
		return nil
	})
	return out, bad
}

func atOf(ts *int64, startOrEnd parser.ItemType) (anchor, int64, bool) {
	switch {
	case ts != nil:
		return anchorFixed, *ts, true
	case startOrEnd == parser.START:
		return anchorStart, 0, true
	case startOrEnd == parser.END:
		return anchorEnd, 0, true
	}
	return 0, 0, false
}
