// Package promql rewrites PromQL so that it sees only the series a policy
// allows. Evaluated on the shared Prometheus, a rewritten expression answers
// what the original would answer on a Prometheus holding only the allowed
// series.
//
// The policy is a union of selectors S1..Sn. Every leaf selector V of the
// query is replaced by the union of V{S1} .. V{Sn}:
//
//   - Instant vector selectors become (V{S1} or V{S2}). `or` matches series
//     on their labels without __name__, so when V does not fix the metric
//     name, the name is first copied into a temporary label and removed after
//     the union; otherwise foo{x} and bar{x} from different selectors would
//     collapse into one.
//   - Range vector selectors cannot be combined with `or`, so the union is
//     lifted around the function that consumes them: rate(V[5m]) becomes
//     (rate(V{S1}[5m]) or rate(V{S2}[5m])). Every PromQL function taking a
//     range vector works series by series, except absent_over_time.
//     When V does not fix the name, the function may drop it, and two
//     series from different selectors may become one label set: the terms
//     are then made disjoint and the union built so that Prometheus raises
//     the same duplicate-labelset error the original query would (see lift).
//   - absent and absent_over_time answer "none of the allowed series exist":
//     the AND of the per-selector answers, with the labels the original
//     selector would have produced (not the policy's).
//   - timestamp(V) reads raw sample timestamps only from a bare selector, so
//     the union is lifted around it too.
//   - A top-level range selector (an instant query for foo[5m]) cannot be
//     expressed as one expression; the rewrite returns one expression per
//     selector and the caller merges the matrices.
//   - info() joins info series the query never selects; it is enforced
//     when the policy shows all or none of them, else refused (info.go).
//   - limitk keeps series in the order its operand yields them, which a
//     union changes: it is refused over a union.
//
// The selectors are first simplified into as few terms as select the same
// series (simplify.go): a repeated or subsumed selector is dropped, and
// selectors differing only in an equality on one label become one regex.
//
// Terms that cannot match (a conflicting equality, `__name__="x"` against
// `__name__!="x"`) are pruned. When every term is pruned, one contradictory
// term is kept: it selects nothing, so the answer is empty, never wider.
package promql

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
)

// ErrUnsupported is returned for syntax the rewriter does not know; such
// queries are refused rather than forwarded unenforced.
var ErrUnsupported = errors.New("unsupported PromQL expression")

// termLabel marks the branches of a disjoint union; see lift.
const termLabel = "__promgate_term__"

// nameLabel is the temporary label that carries __name__ through `or`.
// Labels beginning with "__" are reserved by Prometheus and never ingested
// from scrapes.
const nameLabel = "__promgate_name__"

// ErrTooLarge is returned when the rewritten query would be unreasonably
// large (deeply nested functions under a policy of several selectors).
var ErrTooLarge = errors.New("query too large once the policy is applied")

// maxExpandedNodes bounds the size of a rewritten query.
const maxExpandedNodes = 20000

// expandedSize counts the nodes of x as printed, sharing counts of repeated
// subtrees through memo.
func expandedSize(x parser.Node, memo map[parser.Node]int) int {
	if x == nil {
		return 0
	}
	if n, ok := memo[x]; ok {
		return n
	}
	n := 1
	var children []parser.Node
	if c, ok := x.(*setChain); ok {
		// As many nodes as the chain of BinaryExprs it prints as.
		n = len(c.terms) - 1
		for _, t := range c.terms {
			children = append(children, t)
		}
	} else {
		children = parser.Children(x)
	}
	for _, c := range children {
		n += expandedSize(c, memo)
		if n > maxExpandedNodes {
			break
		}
	}
	memo[x] = n
	return n
}

// Enforcer rewrites queries for one policy. It is immutable and safe for
// concurrent use.
type Enforcer struct {
	selectors [][]*labels.Matcher
	// union is selectors simplified (see simplify): the terms of the
	// unions the rewrite builds. The other uses of the policy (match[],
	// remote read, filtering answers) keep the selectors as written.
	union [][]*labels.Matcher
	lang  *Language
	id    uint64 // names the Enforcer in the cache of rewrites
}

// New returns an Enforcer for a policy of one or more selectors, for an
// upstream without feature flags.
func New(selectors [][]*labels.Matcher) (*Enforcer, error) {
	return defaultLanguage.New(selectors)
}

// New returns an Enforcer for a policy of one or more selectors, parsing
// queries as the upstream of l does; a nil Language has no features.
func (l *Language) New(selectors [][]*labels.Matcher) (*Enforcer, error) {
	if l == nil {
		l = defaultLanguage
	}
	if len(selectors) == 0 {
		return nil, errors.New("a policy needs at least one selector")
	}
	return &Enforcer{selectors: selectors, union: simplify(selectors), lang: l, id: enforcerIDs.Add(1)}, nil
}

// pql parses policy selectors and the tests' queries: selectors need no
// feature.
var pql = parser.NewParser(parser.Options{})

// ErrUnenforceable is returned for a construct that promgate cannot make
// answer exactly as on a Prometheus holding only the allowed series, under
// the policy at hand; the query is refused, with the reason.
var ErrUnenforceable = errors.New("cannot be enforced exactly under this policy")

// ParseError is a query the PromQL parser rejected.
type ParseError struct{ Err error }

func (e *ParseError) Error() string { return e.Err.Error() }
func (e *ParseError) Unwrap() error { return e.Err }

// Query parses and rewrites a query. It returns one expression, or several
// when the query is a bare range vector selector whose per-selector answers
// the caller must merge (series present in several are equal: keep one).
// Rewrites are cached; the slice returned is the caller's.
func (e *Enforcer) Query(q string) ([]string, error) {
	k := cacheKey{e.id, q}
	if out, ok := rewrites.get(k); ok {
		return append([]string(nil), out...), nil
	}
	out, err := e.query(q)
	if err != nil {
		return nil, err
	}
	rewrites.put(k, out)
	return append([]string(nil), out...), nil
}

func (e *Enforcer) query(q string) ([]string, error) {
	expr, err := e.lang.parser.ParseExpr(q)
	if err != nil {
		return nil, &ParseError{Err: err}
	}
	exprs, err := e.enforce(expr)
	if err != nil {
		return nil, err
	}
	// Lifting a union around a function repeats its other arguments once
	// per selector; nested, that grows as selectors^depth. The rewritten
	// tree shares those arguments, so its expanded size is cheap to count.
	sizes := map[parser.Node]int{}
	for _, x := range exprs {
		if expandedSize(x, sizes) > maxExpandedNodes {
			return nil, ErrTooLarge
		}
	}
	out := make([]string, len(exprs))
	for i, x := range exprs {
		out[i] = x.String()
	}
	return out, nil
}

// enforce enforces the policy on a parsed expression; see Query. The trees
// it returns are for printing: they hold setChains, which parser.Inspect
// does not know.
func (e *Enforcer) enforce(expr parser.Expr) ([]parser.Expr, error) {
	if ms, ok := unparen(expr).(*parser.MatrixSelector); ok {
		var out []parser.Expr
		for _, t := range e.terms(ms.VectorSelector.(*parser.VectorSelector)) {
			out = append(out, withRange(ms, t))
		}
		return out, nil
	}
	x, err := e.rewrite(expr)
	if err != nil {
		return nil, err
	}
	return []parser.Expr{x}, nil
}

func (e *Enforcer) rewrite(node parser.Expr) (parser.Expr, error) {
	switch n := node.(type) {
	case *parser.NumberLiteral, *parser.StringLiteral:
		return n, nil
	case *parser.VectorSelector:
		terms := e.terms(n)
		exprs := make([]parser.Expr, len(terms))
		for i, t := range terms {
			exprs[i] = t
		}
		return union(exprs, fixesName(n)), nil
	case *parser.MatrixSelector:
		// Every place a range vector may appear (function arguments, the
		// top level) is handled before recursing here.
		return nil, fmt.Errorf("%w: range vector selector %s outside a function", ErrUnsupported, n)
	case *parser.ParenExpr:
		inner, err := e.rewrite(n.Expr)
		if err != nil {
			return nil, err
		}
		return &parser.ParenExpr{Expr: inner, PosRange: n.PosRange}, nil
	case *parser.UnaryExpr:
		inner, err := e.rewrite(n.Expr)
		if err != nil {
			return nil, err
		}
		c := *n
		c.Expr = inner
		return &c, nil
	case *parser.BinaryExpr:
		lhs, err := e.rewrite(n.LHS)
		if err != nil {
			return nil, err
		}
		rhs, err := e.rewrite(n.RHS)
		if err != nil {
			return nil, err
		}
		c := *n
		c.LHS, c.RHS = lhs, rhs
		return &c, nil
	case *parser.AggregateExpr:
		if n.Op == parser.LIMITK && e.unites(n.Expr) {
			// limitk keeps the first k series in the order its operand
			// yields them; a union yields the allowed series in another
			// order than the oracle's storage, so other series would be
			// kept. limit_ratio picks by a hash of the labels: exact.
			return nil, fmt.Errorf("limitk %w: it keeps the first k series in storage order, and this policy's selectors are united in another order", ErrUnenforceable)
		}
		c := *n
		var err error
		if c.Expr, err = e.rewrite(n.Expr); err != nil {
			return nil, err
		}
		if n.Param != nil {
			if c.Param, err = e.rewrite(n.Param); err != nil {
				return nil, err
			}
		}
		return &c, nil
	case *parser.SubqueryExpr:
		inner, err := e.rewrite(n.Expr)
		if err != nil {
			return nil, err
		}
		c := *n
		c.Expr = inner
		return &c, nil
	case *parser.Call:
		return e.rewriteCall(n)
	}
	return nil, fmt.Errorf("%w: %T", ErrUnsupported, node)
}

func (e *Enforcer) rewriteCall(n *parser.Call) (parser.Expr, error) {
	switch n.Func.Name {
	case "info":
		return e.rewriteInfo(n)
	case "absent", "absent_over_time":
		if len(n.Args) == 1 {
			if x, ok := e.rewriteAbsent(n); ok {
				return x, nil
			}
		}
	case "timestamp":
		// timestamp() of a bare selector returns the samples' own
		// timestamps; of anything else, the evaluation time. Keep the
		// selector bare by lifting the union around the call.
		if len(n.Args) == 1 {
			if vs, ok := unparen(n.Args[0]).(*parser.VectorSelector); ok {
				return e.lift(vs, func(t *parser.VectorSelector) parser.Expr {
					return &parser.Call{Func: n.Func, Args: parser.Expressions{t}, PosRange: n.PosRange}
				}), nil
			}
		}
	}

	// Rewrite every argument that is not a range vector selector once.
	args := make(parser.Expressions, len(n.Args))
	matrixArg := -1
	for i, a := range n.Args {
		if _, ok := unparen(a).(*parser.MatrixSelector); ok {
			if matrixArg >= 0 {
				return nil, fmt.Errorf("%w: %s with two range vector arguments", ErrUnsupported, n.Func.Name)
			}
			matrixArg = i
			continue
		}
		x, err := e.rewrite(a)
		if err != nil {
			return nil, err
		}
		args[i] = x
	}
	if matrixArg < 0 {
		return &parser.Call{Func: n.Func, Args: args, PosRange: n.PosRange}, nil
	}

	// Lift the union around the call: the function works series by series,
	// so f(V[r]) over the union equals the union of f(V{Si}[r]).
	ms := unparen(n.Args[matrixArg]).(*parser.MatrixSelector)
	return e.lift(ms.VectorSelector.(*parser.VectorSelector), func(t *parser.VectorSelector) parser.Expr {
		a := make(parser.Expressions, len(args))
		copy(a, args)
		a[matrixArg] = withRange(ms, t)
		return &parser.Call{Func: n.Func, Args: a, PosRange: n.PosRange}
	}), nil
}

// lift returns the union of call(V{S}) over the policy's selectors S, for a
// function that works series by series.
//
// When V fixes the metric name, distinct input series give distinct outputs
// and one series matching several selectors gives the same output from each,
// so a plain `or` is exact. Otherwise the function may drop the name, and
// foo_a{x} and foo_b{x} from different selectors both become {x}: on a
// Prometheus holding only allowed series that is the error "vector cannot
// contain metrics with the same labelset", and `or` would silently keep one.
// So the terms are made disjoint (each series in exactly one), each branch
// is marked with a temporary label, and removing the marker after the union
// makes Prometheus raise that same error exactly when the original would.
func (e *Enforcer) lift(vs *parser.VectorSelector, call func(*parser.VectorSelector) parser.Expr) parser.Expr {
	if fixesName(vs) {
		terms := e.terms(vs)
		exprs := make([]parser.Expr, len(terms))
		for i, t := range terms {
			exprs[i] = call(t)
		}
		return union(exprs, true)
	}
	terms := e.disjointTerms(vs)
	if len(terms) == 1 {
		return call(terms[0])
	}
	exprs := make([]parser.Expr, len(terms))
	for i, t := range terms {
		exprs[i] = labelReplace(call(t), termLabel, strconv.Itoa(i), "", "")
	}
	return labelReplace(chain(parser.LOR, exprs, &parser.VectorMatching{Card: parser.CardManyToMany}), termLabel, "", "", "")
}

// unites reports whether the rewrite of x holds a union of several terms,
// which changes the order in which series reach the operator above.
func (e *Enforcer) unites(x parser.Node) bool {
	found := false
	parser.Inspect(x, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok && !found {
			found = len(e.terms(vs)) > 1 || (!fixesName(vs) && len(e.disjointTerms(vs)) > 1)
		}
		return nil
	})
	return found
}

// disjointTerms returns selectors that together select what the terms of V
// select, each series by exactly one: V{S1}, V{S2, not S1}, ... where
// "not S" for S = m1, m2, ... expands to the disjoint alternatives
// !m1 | m1,!m2 | m1,m2,!m3 ...
func (e *Enforcer) disjointTerms(vs *parser.VectorSelector) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	for i, sel := range e.union {
		cur := [][]*labels.Matcher{merge(vs.LabelMatchers, sel)}
		for _, prev := range e.union[:i] {
			var next [][]*labels.Matcher
			for _, ms := range cur {
				prefix := ms
				for _, m := range prev {
					if alt := merge(prefix, []*labels.Matcher{negate(m)}); !Contradicts(alt) {
						next = append(next, alt)
					}
					if prefix = merge(prefix, []*labels.Matcher{m}); Contradicts(prefix) {
						break
					}
				}
			}
			cur = next
		}
		for _, ms := range cur {
			if !Contradicts(ms) {
				t := *vs
				t.Name = ""
				t.LabelMatchers = ms
				out = append(out, &t)
			}
		}
	}
	if len(out) == 0 {
		return e.terms(vs)[:1] // nothing can match: an empty answer
	}
	return out
}

// negate returns the matcher selecting exactly the series m rejects (an
// absent label counts as the empty value, for both).
func negate(m *labels.Matcher) *labels.Matcher {
	var t labels.MatchType
	for _, t = range []labels.MatchType{labels.MatchEqual, labels.MatchNotEqual, labels.MatchRegexp, labels.MatchNotRegexp} {
		if inverse(m.Type, t) {
			break
		}
	}
	n, err := labels.NewMatcher(t, m.Name, m.Value)
	if err != nil {
		panic(err) // the value compiled for m; it compiles for its inverse
	}
	return n
}

// rewriteAbsent handles absent(V) and absent_over_time(V[r]) for a bare
// selector V. Without a bare selector absent derives no labels and the
// generic rewrite is exact.
func (e *Enforcer) rewriteAbsent(n *parser.Call) (parser.Expr, bool) {
	var vs *parser.VectorSelector
	var ms *parser.MatrixSelector
	switch a := unparen(n.Args[0]).(type) {
	case *parser.VectorSelector:
		vs = a
	case *parser.MatrixSelector:
		ms = a
		vs = a.VectorSelector.(*parser.VectorSelector)
	default:
		return nil, false
	}
	terms := e.terms(vs)
	calls := make([]parser.Expr, len(terms))
	for i, t := range terms {
		var arg parser.Expr = t
		if ms != nil {
			arg = withRange(ms, t)
		}
		calls[i] = &parser.Call{Func: n.Func, Args: parser.Expressions{arg}, PosRange: n.PosRange}
	}
	// Absent from the union means absent from every term. Each answer is
	// one series or none; `and on()` keeps the left one.
	combined := chain(parser.LAND, calls, &parser.VectorMatching{Card: parser.CardManyToMany, On: true})
	// The answer carries the labels absent derives from the first term's
	// matchers, which include the policy's. Turn them into the labels the
	// original selector gives.
	have := absentLabels(terms[0].LabelMatchers)
	want := absentLabels(vs.LabelMatchers)
	return setLabels(combined, have, want), true
}

// terms returns V{S} for every policy selector S that V can match, as new
// selectors with the metric name written as a matcher (Prometheus 2.x rejects
// `foo{__name__=~"..."}`).
func (e *Enforcer) terms(vs *parser.VectorSelector) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	var first *parser.VectorSelector
	for _, sel := range e.union {
		t := *vs
		t.Name = ""
		t.LabelMatchers = merge(vs.LabelMatchers, sel)
		t.PosRange = vs.PosRange
		if first == nil {
			first = &t
		}
		if Contradicts(t.LabelMatchers) {
			continue
		}
		out = append(out, &t)
	}
	if len(out) == 0 {
		// Nothing can match; the contradictory selector answers empty.
		out = append(out, first)
	}
	return out
}

// merge returns the conjunction of a and b, leaving out matchers of b that a
// already has.
func merge(a, b []*labels.Matcher) []*labels.Matcher {
	out := make([]*labels.Matcher, 0, len(a)+len(b))
	out = append(out, a...)
outer:
	for _, m := range b {
		for _, x := range a {
			if x.Name == m.Name && x.Type == m.Type && x.Value == m.Value {
				continue outer
			}
		}
		out = append(out, m)
	}
	return out
}

// Contradicts reports whether no series can satisfy all matchers: two
// different equalities on a label, or an equality another matcher on the
// same label rejects. Other impossible combinations (two disjoint regexes)
// are not detected; they are harmless, they only select nothing.
func Contradicts(ms []*labels.Matcher) bool {
	for i, a := range ms {
		for _, b := range ms[i+1:] {
			if a.Name == b.Name && a.Value == b.Value && inverse(a.Type, b.Type) {
				return true
			}
		}
	}
	eq := make(map[string]string, len(ms))
	for _, m := range ms {
		if m.Type != labels.MatchEqual {
			continue
		}
		if v, ok := eq[m.Name]; ok && v != m.Value {
			return true
		}
		eq[m.Name] = m.Value
	}
	for _, m := range ms {
		if v, ok := eq[m.Name]; ok && !m.Matches(v) {
			return true
		}
	}
	return false
}

func inverse(a, b labels.MatchType) bool {
	switch a {
	case labels.MatchEqual:
		return b == labels.MatchNotEqual
	case labels.MatchNotEqual:
		return b == labels.MatchEqual
	case labels.MatchRegexp:
		return b == labels.MatchNotRegexp
	case labels.MatchNotRegexp:
		return b == labels.MatchRegexp
	}
	return false
}

// fixesName reports whether every series vs selects has the same name, in
// which case a plain `or` cannot confuse two of them.
func fixesName(vs *parser.VectorSelector) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return true
		}
	}
	return false
}

// union returns the set union of exprs, in parentheses so that it can stand
// wherever the replaced node stood.
func union(exprs []parser.Expr, sameName bool) parser.Expr {
	if len(exprs) == 1 {
		return exprs[0]
	}
	if !sameName {
		for i, x := range exprs {
			exprs[i] = labelReplace(x, nameLabel, "$1", labels.MetricName, "(.+)")
		}
	}
	acc := chain(parser.LOR, exprs, &parser.VectorMatching{Card: parser.CardManyToMany})
	if !sameName {
		return labelReplace(acc, nameLabel, "", "", "")
	}
	return &parser.ParenExpr{Expr: acc}
}

// chain returns x1 op x2 op ... op xn for a set operator (or, and), which
// is associative. It prints exactly as the left-deep chain of BinaryExprs
// ((x1 op x2) op x3) ... would, and so reaches the upstream as the same
// query, but in one pass: the chain of BinaryExprs prints every prefix
// again at each level, which costs the square of the number of terms.
func chain(op parser.ItemType, exprs []parser.Expr, vm *parser.VectorMatching) parser.Expr {
	if len(exprs) == 1 {
		return exprs[0]
	}
	// The operator and its matching clause as the parser's printer writes
	// them between two operands.
	two := (&parser.BinaryExpr{Op: op, LHS: &parser.NumberLiteral{Val: 1}, RHS: &parser.NumberLiteral{Val: 2}, VectorMatching: vm}).String()
	return &setChain{op: op, vm: vm, terms: exprs, sep: strings.TrimSuffix(strings.TrimPrefix(two, "1"), "2")}
}

// setChain is x1 op x2 op ... op xn (see chain). It exists only in the
// trees the rewrite prints; expandedSize counts its terms.
type setChain struct {
	op    parser.ItemType
	vm    *parser.VectorMatching
	terms []parser.Expr
	sep   string // " op matching "
}

func (c *setChain) String() string {
	parts := make([]string, len(c.terms))
	n := len(c.sep) * (len(c.terms) - 1)
	for i, x := range c.terms {
		parts[i] = x.String()
		n += len(parts[i])
	}
	var b strings.Builder
	b.Grow(n)
	for i, p := range parts {
		if i > 0 {
			b.WriteString(c.sep)
		}
		b.WriteString(p)
	}
	return b.String()
}

// binary is the chain as the parser would build it from its text.
func (c *setChain) binary() *parser.BinaryExpr {
	var acc parser.Expr = c.terms[0]
	for _, x := range c.terms[1:] {
		vm := *c.vm
		acc = &parser.BinaryExpr{Op: c.op, LHS: acc, RHS: x, VectorMatching: &vm}
	}
	return acc.(*parser.BinaryExpr)
}

func (c *setChain) Pretty(level int) string { return c.binary().Pretty(level) }

func (c *setChain) PositionRange() posrange.PositionRange { return c.binary().PositionRange() }

func (c *setChain) Type() parser.ValueType { return parser.ValueTypeVector }

func (c *setChain) PromQLExpr() {}

func labelReplace(x parser.Expr, dst, repl, src, re string) parser.Expr {
	return &parser.Call{
		Func: parser.Functions["label_replace"],
		Args: parser.Expressions{
			x,
			&parser.StringLiteral{Val: dst},
			&parser.StringLiteral{Val: repl},
			&parser.StringLiteral{Val: src},
			&parser.StringLiteral{Val: re},
		},
	}
}

// withRange returns the range selector ms with its vector selector replaced.
func withRange(ms *parser.MatrixSelector, vs *parser.VectorSelector) *parser.MatrixSelector {
	c := *ms
	c.VectorSelector = vs
	return &c
}

func unparen(x parser.Expr) parser.Expr {
	for {
		p, ok := x.(*parser.ParenExpr)
		if !ok {
			return x
		}
		x = p.Expr
	}
}

// absentLabels returns the labels absent() gives a selector: a label takes the
// value of its equality matcher when that is the only matcher on the label;
// __name__ never appears. This mirrors Prometheus' evaluation.
func absentLabels(ms []*labels.Matcher) map[string]string {
	out := map[string]string{}
	drop := map[string]bool{}
	for _, m := range ms {
		if m.Name == labels.MetricName {
			continue
		}
		if _, seen := out[m.Name]; m.Type == labels.MatchEqual && !seen && !drop[m.Name] {
			out[m.Name] = m.Value
			continue
		}
		drop[m.Name] = true
	}
	for name := range drop {
		delete(out, name)
	}
	for name, v := range out {
		if v == "" {
			delete(out, name)
		}
	}
	return out
}

// setLabels wraps x, whose series carry the labels have, so that they carry
// exactly the labels want.
func setLabels(x parser.Expr, have, want map[string]string) parser.Expr {
	for _, name := range sortedKeys(have) {
		if _, ok := want[name]; !ok {
			x = labelReplace(x, name, "", "", "")
		}
	}
	for _, name := range sortedKeys(want) {
		if have[name] != want[name] {
			// label_replace expands $ in the replacement.
			x = labelReplace(x, name, strings.ReplaceAll(want[name], "$", "$$"), "", "")
		}
	}
	return x
}
